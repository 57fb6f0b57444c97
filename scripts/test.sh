#!/usr/bin/env bash
# The test command: start the real engines and install the other clients
# the compatibility tests drive berth with (both idempotently), then run every test
# with both engines required. Set BERTH_TEST_ENGINES to require fewer
# (e.g. `BERTH_TEST_ENGINES=docker`), or to the empty string to skip engine
# tests. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-engines.sh
scripts/setup-clients.sh
export BERTH_TEST_ENGINES="${BERTH_TEST_ENGINES-docker,podman}"
exec cargo test "$@"
