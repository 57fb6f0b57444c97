#!/usr/bin/env bash
# `berth exec` and `berth cp` against `docker exec` and `docker cp` on the
# same replica, in one run: the example stack on Docker under a berth of its
# own (a temporary state directory, free ports, namespace bench-exec), then
#   - exec: N runs of `true` each way (a fresh CLI process and connection
#     per run, as a person or a script runs them); median seconds and ratio;
#   - cp in and out of a SIZE MiB file into the replica's /www (a tmpfs:
#     berth goes through tar in the container there, docker cp cannot);
#     docker cp's baseline copies into / (its archive API), as it only can.
# Usage: scripts/bench/exec-cp.sh [N=20] [SIZE=4] (the tmpfs holds 8 MiB)   (needs a built berth:
# target/debug/berth, or BERTH=path; Docker; static /bin/busybox)
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-20}" size="${2:-4}"
berth="${BERTH:-target/debug/berth}"
work="$(mktemp -d)"
trap 'kill "${pid:-0}" 2>/dev/null || true; docker rm -f $(docker ps -aq --filter label=berth.dev/namespace=bench-exec) >/dev/null 2>&1 || true; docker network rm berth-bench-exec-app >/dev/null 2>&1 || true; docker volume rm berth-bench-exec-api-data >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir "$work/manifests"
for f in examples/*.yaml; do
  sed -e 's/^  name: \(.*\)$/  name: \1\n  namespace: bench-exec/' -e 's|berth.local/demo/|berth.local/bench-exec/|' "$f" > "$work/manifests/$(basename "$f")"
done
cp -r examples/busybox "$work/manifests/" 2>/dev/null || true
"$berth" serve --manifests "$work/manifests" --engine docker --state-dir "$work/state" --listen 127.0.0.1:0 \
  --dns-listen off --proxy-listen off --tls-listen off > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "REST API on" "$work/log" && break; sleep 0.1; done
export BERTH_SERVER="$(grep -o 'REST API on http://[^ ]*' "$work/log" | head -1 | cut -d' ' -f4)" BERTH_STATE_DIR="$work/state"
for _ in $(seq 600); do "$berth" get containers -n bench-exec 2>/dev/null | grep -q "^web .*2/2" && break; sleep 0.2; done
id="$(docker ps -q --filter label=berth.dev/namespace=bench-exec --filter label=berth.dev/name=web --filter label=berth.dev/replica=0)"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { local start end; start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N); echo "$end - $start" | bc -l; }
berth_exec=$(for _ in $(seq "$n"); do timed "$berth" exec web -n bench-exec -- true; done | median)
docker_exec=$(for _ in $(seq "$n"); do timed docker exec "$id" true; done | median)
head -c "$((size << 20))" /dev/urandom > "$work/blob"
mkdir "$work/out-berth" "$work/out-docker"
berth_in=$(timed "$berth" cp -n bench-exec "$work/blob" web:/www/)
docker_in=$(timed docker cp "$work/blob" "$id:/blob")
berth_out=$(timed "$berth" cp -n bench-exec web:/www/blob "$work/out-berth/")
docker_out=$(timed docker cp "$id:/blob" "$work/out-docker/")
cmp -s "$work/blob" "$work/out-berth/blob" || { echo "berth cp changed the file" >&2; exit 1; }
printf '%-28s %10s %10s %8s\n' "" berth docker ratio
row() { printf '%-28s %9.3fs %9.3fs %7.2fx\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)"; }
row "exec true (median of $n)" "$berth_exec" "$docker_exec"
row "cp in ${size} MiB" "$berth_in" "$docker_in"
row "cp out ${size} MiB" "$berth_out" "$docker_out"
