"""A REST client of berth's POST /apply (urllib only), written from
docs/encryption.md and docs/transports.md: posts one request (text,
protobuf, or an envelope sealed by `cryptography` through envelope.py),
and prints the reply as JSON: {"status": ..., "content_type": ...,
"json": ..., "encrypted": ..., ...}. With --times 2 the same bytes are
posted twice (a replay) and a list of both replies is printed.

    rest.py --url URL --token-file FILE [-f FILE | --text TEXT | --raw FILE --type MEDIA]
            [--protobuf] [--id ID] [--query dryRun=true]
            [--keyring FILE [--algorithm A] [--key-id ID] [--channel CH] [--tamper] [--stale]]
            [--times N]
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer  # noqa: E402


def post(url, token, payload, content_type, keyring):
    request = urllib.request.Request(url, data=payload, method="POST")
    request.add_header("Authorization", "Bearer " + token)
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, media, body = response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as error:
        status, media, body = error.code, error.headers.get("Content-Type"), error.read()
    result = peer.reply(body, (media or "").split(";")[0], keyring)
    result.update(status=status, content_type=media)
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("-f", "--file")
    parser.add_argument("--text", default="")
    parser.add_argument("--raw")
    parser.add_argument("--type", default="application/yaml")
    parser.add_argument("--protobuf", action="store_true")
    parser.add_argument("--id")
    parser.add_argument("--query", default="")
    parser.add_argument("--keyring")
    parser.add_argument("--algorithm", default="aes-256-gcm")
    parser.add_argument("--key-id")
    parser.add_argument("--channel", default="rest:/apply")
    parser.add_argument("--tamper", action="store_true")
    parser.add_argument("--stale", action="store_true")
    parser.add_argument("--times", type=int, default=1)
    args = parser.parse_args()

    token = open(args.token_file).read().strip()
    if args.raw:
        payload, content_type = open(args.raw, "rb").read(), args.type
    else:
        text = open(args.file).read() if args.file else args.text
        payload, content_type = peer.request("apply", text, protobuf=args.protobuf, request_id=args.id)
        if args.keyring:
            payload, content_type = peer.sealed(payload, args.channel, args), peer.ENCRYPTED
    url = args.url.rstrip("/") + "/apply" + ("?" + args.query if args.query else "")
    results = [post(url, token, payload, content_type, args.keyring) for _ in range(args.times)]
    print(json.dumps(results[0] if args.times == 1 else results))


if __name__ == "__main__":
    main()
