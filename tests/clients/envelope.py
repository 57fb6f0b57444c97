"""berth's encrypted-payload envelope (format v1), written from
docs/encryption.md with the `cryptography` package alone: the independent
implementation the integration tests check berth's against, and what the
transport tests seal their requests with.

Importable:

    import envelope
    data = envelope.seal("k1", key, "aes-256-gcm", "text", "rest:/apply", b"kind: ...")
    header, plaintext = envelope.open({"k1": key}, data)
    primary, keys = envelope.load_keyring("keys.yaml")

Command line (the venv's python):

    envelope.py encrypt --keyring FILE [--key-id ID] [--algorithm aes-256-gcm|chacha20-poly1305]
                        [--format text|protobuf] [--channel CH] [-i IN] [-o OUT]
    envelope.py decrypt --keyring FILE [--channel CH] [-i IN] [-o OUT]

`-i`/`-o` default to standard input and output; decrypt prints the header
as JSON on standard error. XChaCha20-Poly1305 (algorithm 3) is parsed but
not sealed or opened: `cryptography` has no XChaCha20.
"""

import argparse
import builtins
import base64
import json
import os
import struct
import sys
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

MAGIC = b"\x00BRT"
VERSION = 1
ALGORITHMS = {"aes-256-gcm": 1, "chacha20-poly1305": 2, "xchacha20-poly1305": 3}
NONCE_LEN = {1: 12, 2: 12, 3: 24}
FORMATS = {"text": 1, "protobuf": 2}
TAG_LEN = 16
MAX_ENVELOPE = 16 << 20


class EnvelopeError(ValueError):
    """A malformed, unknown-key or inauthentic envelope."""


def _cipher(code, key):
    if code == 1:
        return AESGCM(key)
    if code == 2:
        return ChaCha20Poly1305(key)
    raise EnvelopeError("algorithm %d is not supported here (cryptography has no XChaCha20-Poly1305)" % code)


def _code(table, value, what):
    if isinstance(value, int):
        return value
    if value not in table:
        raise EnvelopeError("unknown %s %r; use one of %s" % (what, value, ", ".join(table)))
    return table[value]


def seal(key_id, key_bytes, alg, fmt, channel, plaintext, message_id=None, issued_at_ms=None, nonce=None):
    """The envelope of `plaintext`: `alg` and `fmt` by name or code;
    a random message id and nonce, issued now, unless given."""
    code = _code(ALGORITHMS, alg, "algorithm")
    key_id = key_id.encode("ascii")
    channel = channel.encode("utf-8")
    if not 1 <= len(key_id) <= 64 or len(channel) > 1024 or len(key_bytes) != 32:
        raise EnvelopeError("key id 1-64 bytes, channel at most 1024, key 32 bytes")
    message_id = os.urandom(16) if message_id is None else message_id
    issued_at_ms = int(time.time() * 1000) if issued_at_ms is None else issued_at_ms
    nonce = os.urandom(NONCE_LEN[code]) if nonce is None else nonce
    header = (
        MAGIC
        + bytes([VERSION, code, _code(FORMATS, fmt, "format"), len(key_id)])
        + key_id
        + struct.pack(">H", len(channel))
        + channel
        + message_id
        + struct.pack(">Q", issued_at_ms)
        + nonce
    )
    return header + _cipher(code, key_bytes).encrypt(nonce, plaintext, header)


def parse_header(data):
    """The header fields and the offset where the ciphertext starts."""
    if len(data) > MAX_ENVELOPE:
        raise EnvelopeError("over 16 MiB")
    if not data.startswith(MAGIC):
        raise EnvelopeError("not a berth envelope")
    at = 4

    def take(n, field):
        nonlocal at
        if at + n > len(data):
            raise EnvelopeError("cut short inside the %s" % field)
        at += n
        return data[at - n : at]

    version, alg, fmt, n = take(4, "fixed header")
    if version != VERSION:
        raise EnvelopeError("version %d" % version)
    if alg not in NONCE_LEN or fmt not in (1, 2) or not 1 <= n <= 64:
        raise EnvelopeError("bad algorithm, format or key id length")
    key_id = take(n, "key id").decode("ascii")
    (m,) = struct.unpack(">H", take(2, "channel length"))
    if m > 1024:
        raise EnvelopeError("channel length %d" % m)
    channel = take(m, "channel").decode("utf-8")
    message_id = take(16, "message id")
    (issued_at_ms,) = struct.unpack(">Q", take(8, "issued-at"))
    nonce = take(NONCE_LEN[alg], "nonce")
    if len(data) - at < TAG_LEN:
        raise EnvelopeError("cut short inside the tag")
    header = {
        "version": version,
        "algorithm": {v: k for k, v in ALGORITHMS.items()}[alg],
        "format": {v: k for k, v in FORMATS.items()}[fmt],
        "key_id": key_id,
        "channel": channel,
        "message_id": message_id.hex(),
        "issued_at_ms": issued_at_ms,
        "nonce": nonce.hex(),
    }
    return header, at


def open(keys, data):  # noqa: A001 - the module's API mirrors berth's seal/open
    """(header, plaintext) of an envelope; `keys` maps key ids to key bytes."""
    header, at = parse_header(data)
    key = keys.get(header["key_id"])
    if key is None:
        raise EnvelopeError("unknown key id %r (have %s)" % (header["key_id"], ", ".join(keys)))
    code = ALGORITHMS[header["algorithm"]]
    try:
        plaintext = _cipher(code, key).decrypt(bytes.fromhex(header["nonce"]), data[at:], data[:at])
    except InvalidTag:
        raise EnvelopeError("does not authenticate with key %r" % header["key_id"]) from None
    return header, plaintext


def load_keyring(path):
    """(primary id, {id: key bytes}) of a berth keyring file."""
    import yaml

    with builtins.open(path) as file:
        document = yaml.safe_load(file)
    keys = {str(k): base64.b64decode(v, validate=True) for k, v in document["keys"].items()}
    return str(document["primary"]), keys


def main(argv):
    parser = argparse.ArgumentParser(description="berth envelope v1 (AES-256-GCM, ChaCha20-Poly1305)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("encrypt", "decrypt"):
        command = commands.add_parser(name)
        command.add_argument("--keyring", required=True)
        command.add_argument("-i", "--input", default="-")
        command.add_argument("-o", "--output", default="-")
    commands.choices["encrypt"].add_argument("--key-id", help="default: the keyring's primary")
    commands.choices["encrypt"].add_argument("--algorithm", default="aes-256-gcm", choices=list(ALGORITHMS)[:2])
    commands.choices["encrypt"].add_argument("--format", default="text", choices=list(FORMATS))
    commands.choices["encrypt"].add_argument("--channel", default="*")
    commands.choices["decrypt"].add_argument("--channel", help="refuse an envelope bound elsewhere")
    args = parser.parse_args(argv)

    primary, keys = load_keyring(args.keyring)
    data = sys.stdin.buffer.read() if args.input == "-" else builtins.open(args.input, "rb").read()
    try:
        if args.command == "encrypt":
            key_id = args.key_id or primary
            out = seal(key_id, keys[key_id], args.algorithm, args.format, args.channel, data)
        else:
            header, out = open(keys, data)
            if args.channel is not None and header["channel"] not in ("*", args.channel):
                raise EnvelopeError("bound to channel %r, not %r" % (header["channel"], args.channel))
            print(json.dumps(header), file=sys.stderr)
    except EnvelopeError as error:
        print("envelope.py: %s" % error, file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.buffer.write(out)
    else:
        with builtins.open(args.output, "wb") as file:
            file.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
