#!/usr/bin/env bash
# The other people's clients berth's compatibility tests drive it with,
# beside kubectl (setup-engines.sh installs that): the Python `kubernetes`
# client, openapi-spec-validator, check-jsonschema and openapi-python-client
# (a client generated from berth's /openapi.json), and the ingress peers
# (paho-mqtt, posix_ipc, cryptography, protobuf and grpcio-tools, whose
# bundled protoc compiles berth's .proto for Python) in one virtualenv;
# promtool, taken out of Debian's prometheus package (only the checker is
# needed, not the server and its service); and Debian's mosquitto broker
# and clients (the tests start their own broker; the package's service is
# not used).
#
# Installed under ${BERTH_TOOLS:-$HOME/.cache/berth-tools}, which the tests
# read too. Idempotent: what is there and works is kept.
set -euo pipefail

log() { printf 'setup-clients: %s\n' "$*" >&2; }

tools="${BERTH_TOOLS:-$HOME/.cache/berth-tools}"
mkdir -p "$tools/bin"

venv="$tools/venv"
if ! "$venv/bin/python" -c 'import kubernetes, openapi_spec_validator, paho.mqtt, posix_ipc, cryptography, google.protobuf, grpc_tools' 2>/dev/null \
  || ! [ -x "$venv/bin/check-jsonschema" ] || ! [ -x "$venv/bin/openapi-python-client" ]; then
  log "installing the Python clients into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    'kubernetes>=31,<38' 'openapi-spec-validator>=0.7,<0.8' 'check-jsonschema>=0.29,<1' \
    'openapi-python-client>=0.21,<1' 'paho-mqtt>=2,<3' 'posix_ipc>=1.1,<2' 'cryptography>=42' \
    'protobuf>=5,<7' 'grpcio-tools>=1.60,<2'
fi

if ! command -v mosquitto >/dev/null || ! command -v mosquitto_pub >/dev/null; then
  log "installing Debian's mosquitto broker and clients"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null; }
  # The tests start their own brokers on loopback; the packaged one is not needed.
  (systemctl disable --now mosquitto 2>/dev/null || service mosquitto stop 2>/dev/null || true) >/dev/null
fi

# The D-Bus tests start a private dbus-daemon and call berth with busctl
# (systemd) and gdbus (libglib2.0-bin); the policy test runs a caller as
# `nobody` through runuser (util-linux).
if ! command -v dbus-daemon >/dev/null || ! command -v busctl >/dev/null || ! command -v gdbus >/dev/null; then
  log "installing dbus-daemon, busctl and gdbus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends dbus-daemon systemd libglib2.0-bin >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends dbus-daemon systemd libglib2.0-bin >/dev/null; }
fi

if ! [ -x "$tools/bin/promtool" ]; then
  log "extracting promtool from Debian's prometheus package"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && apt-get download -qq prometheus 2>/dev/null); then
    apt-get update -qq
    (cd "$work" && apt-get download -qq prometheus)
  fi
  dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
  install -m 0755 "$work/root/usr/bin/promtool" "$tools/bin/promtool"
fi

# The dashboard's browser test: Debian's Chromium (playwright-core drives
# it; no browser is downloaded) and the pinned npm packages of
# tests/browser and ui (whose copies in ui/assets/vendor a test compares).
if ! [ -x /usr/bin/chromium ]; then
  log "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
for dir in tests/browser ui; do
  # The lockfile as installed last, to skip an install that would change nothing.
  if ! cmp -s "$repo/$dir/package-lock.json" "$repo/$dir/node_modules/.berth-installed-lock" 2>/dev/null; then
    log "installing the npm packages of $dir"
    (cd "$repo/$dir" && npm ci --no-audit --no-fund --silent && cp package-lock.json node_modules/.berth-installed-lock)
  fi
done

log "ready: $tools ($("$venv/bin/python" -c 'import kubernetes; print("kubernetes", kubernetes.__version__)'), $("$tools/bin/promtool" --version 2>&1 | head -1))"
