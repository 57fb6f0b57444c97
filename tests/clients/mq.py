"""A POSIX message-queue client of berth (posix_ipc), written from
docs/transports.md: creates its own reply queue, sends one request to
berth's queue (split into numbered chunks when it is larger than the
queue's message size), reads the reply frames back (joining chunks), and
prints the reply as JSON: {"code": ..., "type": ..., "chunks": ...,
"json": ..., "encrypted": ..., ...}. With --times 2 the same bytes are
sent twice (a replay) and a JSON list of both replies is printed.

    mq.py --queue /NAME --verb apply [-f FILE | --text TEXT] [--protobuf]
          [--id ID] [--header KEY=VALUE ...] [--reply-msgsize N]
          [--keyring FILE [--algorithm A] [--key-id ID] [--channel CH]
           [--tamper] [--stale]] [--times N]
"""

import argparse
import json
import os
import sys
import time
import uuid

import posix_ipc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer  # noqa: E402

MAGIC = "berth/1"


def frames(verb, payload, msgsize, header_words):
    """The request frames of `payload`: one, or numbered chunks that fit."""
    line = " ".join([MAGIC, verb] + header_words)
    single = (line + "\n").encode() + payload
    if len(single) <= msgsize:
        return [single]
    if not any(w.startswith("id=") for w in header_words):
        sys.exit("a chunked request needs --id")
    room = msgsize - len(line) - len(" chunk=9999/9999\n")
    pieces = [payload[i : i + room] for i in range(0, len(payload), room)] or [b""]
    return [("%s chunk=%d/%d\n" % (line, i + 1, len(pieces))).encode() + p for i, p in enumerate(pieces)]


def parse(frame):
    line, _, body = frame.partition(b"\n")
    words = line.decode().split(" ")
    assert words[:2] == [MAGIC, "reply"], line
    return dict(w.split("=", 1) for w in words[2:]), body


def read_reply(queue, timeout, keyring):
    """One reply, its chunks joined."""
    pieces, total, fields = {}, None, None
    deadline = time.time() + timeout
    while total is None or len(pieces) < total:
        remaining = deadline - time.time()
        if remaining <= 0:
            sys.exit("no (complete) reply within %ss: %d chunks" % (timeout, len(pieces)))
        frame, _ = queue.receive(remaining)
        header, body = parse(frame)
        fields = fields or header
        index, total = map(int, header.get("chunk", "1/1").split("/"))
        pieces[index] = body
    data = b"".join(pieces[i] for i in sorted(pieces))
    result = peer.reply(data, fields["type"], keyring)
    result.update(code=int(fields["code"]), type=fields["type"], chunks=total, id=fields.get("id"))
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", required=True)
    parser.add_argument("--verb", required=True)
    parser.add_argument("-f", "--file")
    parser.add_argument("--text", default="")
    parser.add_argument("--protobuf", action="store_true")
    parser.add_argument("--id")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--reply-msgsize", type=int, default=8192)
    parser.add_argument("--keyring")
    parser.add_argument("--algorithm", default="aes-256-gcm")
    parser.add_argument("--key-id")
    parser.add_argument("--channel")
    parser.add_argument("--tamper", action="store_true")
    parser.add_argument("--stale", action="store_true")
    parser.add_argument("--times", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()

    text = open(args.file).read() if args.file else args.text
    payload, content_type = peer.request(args.verb, text, protobuf=args.protobuf, request_id=args.id)
    if args.keyring:
        channel = args.channel or "mq:%s/%s" % (args.queue, args.verb)
        payload, content_type = peer.sealed(payload, channel, args), peer.ENCRYPTED

    reply_name = "/berth-peer-" + uuid.uuid4().hex[:12]
    reply = posix_ipc.MessageQueue(reply_name, posix_ipc.O_CREX, mode=0o600, max_messages=10,
                                   max_message_size=args.reply_msgsize)
    try:
        request = posix_ipc.MessageQueue(args.queue)
        words = ["reply=" + reply_name, "type=" + content_type] + (["id=" + args.id] if args.id else []) + args.header
        to_send = frames(args.verb, payload, request.max_message_size, words)
        results = []
        for _ in range(args.times):
            for frame in to_send:
                request.send(frame, args.timeout)
            result = read_reply(reply, args.timeout, args.keyring)
            result["sent_chunks"] = len(to_send)
            results.append(result)
        print(json.dumps(results[0] if args.times == 1 else results))
    finally:
        reply.close()
        reply.unlink()


if __name__ == "__main__":
    main()
