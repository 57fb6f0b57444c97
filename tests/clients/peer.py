"""What every transport test's peer does to a berth request, written
from docs/transports.md, docs/encryption.md and the committed
proto/berth/ingress/v1/ingress.proto alone: build the payload (text, or a
protobuf `berth.ingress.v1.Request` encoded by Google's `protobuf`
package from that .proto), seal it (envelope.py, `cryptography`), and
read the reply (open it, decode a protobuf `Reply`).

Importable by the transport peers (mqtt5.py, mq.py, dbus.py):

    import peer
    payload, content_type = peer.request("apply", manifest_text, protobuf=True, request_id="r1")
    payload = peer.seal(payload, "mqtt:berth/box/cmd/apply", keyring="keys.yaml", protobuf=True)
    reply = peer.reply(data, content_type, keyring="keys.yaml")   # a dict
"""

import importlib
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import envelope  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO = os.path.join(ROOT, "proto")
ENCRYPTED = "application/vnd.berth.encrypted"
_module = None


def proto():
    """The `ingress_pb2` module, compiled now from the committed .proto
    with grpc_tools' protoc (no protoc on the machine needed)."""
    global _module
    if _module is None:
        out = tempfile.mkdtemp(prefix="berth-proto-")
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO, "--python_out", out,
             "berth/ingress/v1/ingress.proto"],
            check=True,
        )
        sys.path.insert(0, out)
        _module = importlib.import_module("berth.ingress.v1.ingress_pb2")
    return _module


def request(verb, argument, protobuf=False, request_id=None, dry_run=False, force=False, source=None):
    """(payload, content type) of a request: text is the verb's argument
    as is (manifests, or `{kind, namespace, name}`); protobuf wraps it."""
    if not protobuf:
        data = argument.encode() if isinstance(argument, str) else argument
        return data, "application/yaml"
    pb = proto()
    message = pb.Request(id=request_id or "")
    if verb in ("apply", "plan"):
        apply = getattr(message, verb)
        apply.manifest = argument.encode() if isinstance(argument, str) else argument
        apply.dry_run = dry_run
        apply.force = force
        apply.source = source or ""
    else:
        import yaml

        ref = yaml.safe_load(argument) if argument else None
        target = getattr(message, verb)
        target.SetInParent()
        if ref:
            target.kind = ref["kind"]
            target.namespace = ref.get("namespace", "")
            target.name = ref["name"]
    return message.SerializeToString(), "application/x-protobuf"


def seal(payload, channel, keyring, protobuf=False, algorithm="aes-256-gcm", key_id=None, **fields):
    """`payload` sealed for `channel` with a key of `keyring` (the
    primary one unless `key_id`); `fields` go to envelope.seal
    (message_id, issued_at_ms)."""
    primary, keys = envelope.load_keyring(keyring)
    key_id = key_id or primary
    key = keys.get(key_id, b"\0" * 32)
    return envelope.seal(key_id, key, algorithm, "protobuf" if protobuf else "text", channel, payload, **fields)


def sealed(payload, channel, args):
    """`payload` sealed as the peers' shared flags say: `--keyring`,
    `--protobuf`, `--algorithm`, `--key-id`; `--stale` dates it an hour
    back and `--tamper` flips its last byte (the tests' bad envelopes)."""
    import time

    fields = {"issued_at_ms": int((time.time() - 3600) * 1000)} if args.stale else {}
    data = seal(payload, channel, args.keyring, args.protobuf, args.algorithm, args.key_id, **fields)
    return data[:-1] + bytes([data[-1] ^ 1]) if args.tamper else data


def reply(data, content_type, keyring=None):
    """A reply as a dict: `json` (the REST shape), and for a protobuf
    reply `ok`, `code`, `items`, `error` too; `encrypted` says whether it
    came sealed (then `channel` is the channel it was bound to; without
    a keyring only the header is read)."""
    result = {"encrypted": False}
    if envelope.MAGIC == data[: len(envelope.MAGIC)]:
        if keyring is None:
            header, _ = envelope.parse_header(data)
            result.update(encrypted=True, channel=header["channel"], algorithm=header["algorithm"], json=None)
            return result
        _, keys = envelope.load_keyring(keyring)
        header, data = envelope.open(keys, data)
        result.update(encrypted=True, channel=header["channel"], key_id=header["key_id"])
        content_type = "application/x-protobuf" if header["format"] == "protobuf" else "application/json"
    if content_type == "application/x-protobuf":
        from google.protobuf.json_format import MessageToDict

        decoded = proto().Reply()
        decoded.ParseFromString(data)
        result.update(MessageToDict(decoded, preserving_proto_field_name=True))
        result["json"] = json.loads(decoded.json) if decoded.json else None
        result["protobuf"] = True
    else:
        result["json"] = json.loads(data) if data else None
        result["protobuf"] = False
    return result


def main(argv):
    """peer.py request --verb V [-f FILE | --text T] [--protobuf] [--id ID]
                       [--keyring K [--channel CH] [--algorithm A] [--key-id ID] [--tamper] [--stale]] -o OUT
       peer.py reply -i IN --type MEDIA [--keyring K]      (prints the reply as JSON)"""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("request")
    build.add_argument("--verb", required=True)
    build.add_argument("-f", "--file")
    build.add_argument("--text", default="")
    build.add_argument("--protobuf", action="store_true")
    build.add_argument("--id")
    build.add_argument("--keyring")
    build.add_argument("--channel", default="*")
    build.add_argument("--algorithm", default="aes-256-gcm")
    build.add_argument("--key-id")
    build.add_argument("--tamper", action="store_true")
    build.add_argument("--stale", action="store_true")
    build.add_argument("-o", "--output", required=True)
    read = commands.add_parser("reply")
    read.add_argument("-i", "--input", required=True)
    read.add_argument("--type", default="application/json")
    read.add_argument("--keyring")
    args = parser.parse_args(argv)
    if args.command == "request":
        text = open(args.file).read() if args.file else args.text
        payload, content_type = request(args.verb, text, protobuf=args.protobuf, request_id=args.id)
        if args.keyring:
            payload, content_type = sealed(payload, args.channel, args), ENCRYPTED
        with open(args.output, "wb") as out:
            out.write(payload)
        print(content_type)
    else:
        with open(args.input, "rb") as data:
            print(json.dumps(reply(data.read(), args.type, args.keyring)))



if __name__ == "__main__":
    main(sys.argv[1:])
