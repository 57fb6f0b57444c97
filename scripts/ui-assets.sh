#!/usr/bin/env bash
# The dashboard's third-party browser code: installs the versions pinned in
# ui/package.json (ui/package-lock.json) and copies the files berth embeds
# into ui/assets/vendor. berth's own pages need no build step; cargo build
# needs no Node. `--check` only compares, and fails when the committed
# files are not those of the lockfile (the dashboard test runs it).
set -euo pipefail
cd "$(dirname "$0")/../ui"
if ! cmp -s package-lock.json node_modules/.berth-installed-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --silent
  cp package-lock.json node_modules/.berth-installed-lock
fi
files=(
  "node_modules/@xterm/xterm/lib/xterm.mjs:xterm.mjs"
  "node_modules/@xterm/xterm/css/xterm.css:xterm.css"
  "node_modules/@xterm/xterm/LICENSE:LICENSE-xterm"
  "node_modules/@xterm/addon-fit/lib/addon-fit.mjs:addon-fit.mjs"
  "node_modules/@xterm/addon-fit/LICENSE:LICENSE-addon-fit"
)
status=0
for pair in "${files[@]}"; do
  from="${pair%%:*}" to="assets/vendor/${pair##*:}"
  if [ "${1-}" = --check ]; then
    cmp -s "$from" "$to" || { echo "ui-assets: $to is not $from; run scripts/ui-assets.sh" >&2; status=1; }
  else
    install -D -m 0644 "$from" "$to"
  fi
done
exit "$status"
