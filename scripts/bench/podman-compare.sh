#!/usr/bin/env bash
# berth on Podman against podman-compose and `podman kube play`, in one run.
#
# The same stack three ways: 1 network, 1 volume, N containers (default 20;
# busybox `sleep` and `httpd` alternately, each on the network and mounting
# the volume, 1 s stop grace), from one image built here from the host's
# static busybox. Three phases per tool, each timed from the command's start
# to the state it promises:
#
#   cold     nothing exists            -> every container running
#   reapply  nothing changed           -> the tool is done
#   change   one container's env edited -> that container replaced, running
#
# berth runs as a one-shot `berth serve` per phase (the release binary,
# started on the same state directory, stopped with SIGTERM once the phase is
# over), so that process start and its first full look at the engine are
# counted, as a compose or kube command's are. "Done" for berth: the phase's
# engine state (cold, change), or its first `reconcile queue idle` log line
# (reapply). podman-compose and kube play are done when their command
# returns. kube play has no diff: a re-apply is `--replace` (every pod torn
# down and made again), and it runs one pod (plus its infra container) per
# container.
#
# Usage: scripts/bench/podman-compare.sh [N]   (needs root, Podman 4 on
# /run/podman/podman.sock, /bin/busybox, and pip for podman-compose)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-20}"
SOCK=/run/podman/podman.sock
IMAGE=localhost/berth-bench/busybox:latest
NS=bench-podman
WORK="$(mktemp -d /tmp/berth-podman-bench.XXXXXX)"
BERTH="${CARGO_TARGET_DIR:-target}/release/berth"

log() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$(now) - $1:.2f}')"; }
api() { curl -fsS --unix-socket "$SOCK" "http://d/v4.0.0/libpod/$1"; }
# Running containers carrying label $1 (key=value).
running() {
  api "containers/json?filters=$(python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.dumps({"label":[sys.argv[1]],"status":["running"]})))' "$1")" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
id_of() { podman ps -q --no-trunc --filter "label=$1" --filter status=running | head -1; }

command -v podman-compose >/dev/null || { log "installing podman-compose (PyPI)"; pip install -q podman-compose; }
# kube play builds its pause image around catatonit.
command -v catatonit >/dev/null || { log "installing catatonit"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq catatonit >/dev/null; }
[ -x "$BERTH" ] || { log "building the release berth"; cargo build --release --bin berth >/dev/null; }

cleanup() {
  podman-compose -p benchcompose -f "$WORK/compose.yaml" down -t 0 >/dev/null 2>&1 || true
  podman pod rm -f -t 0 $(podman pod ps -q --filter name=benchkube-) >/dev/null 2>&1 || true
  podman rm -f -t 0 $(podman ps -aq --filter "label=berth.dev/namespace=$NS") >/dev/null 2>&1 || true
  podman network rm -f "berth-$NS-net" benchcompose_default benchkube-net >/dev/null 2>&1 || true
  podman volume rm -f "berth-$NS-data" benchcompose_data benchkube-data >/dev/null 2>&1 || true
}
trap 'cleanup; rm -rf "$WORK"' EXIT
cleanup

# The image, once, for all three.
mkdir -p "$WORK/image" && cp /bin/busybox "$WORK/image/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n' >"$WORK/image/Dockerfile"
podman build -q -t "$IMAGE" "$WORK/image" >/dev/null

cmd() { if [ $(($1 % 2)) -eq 0 ]; then echo '["sleep", "3600"]'; else echo '["httpd", "-f", "-p", "8080", "-h", "/data"]'; fi; }

# $1: value of MODE for container c07 (the changed one).
write_stacks() {
  local mode="$1" i name
  mkdir -p "$WORK/manifests"
  printf 'apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: net, namespace: %s}\nspec: {}\n---\napiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata: {name: data, namespace: %s}\nspec: {}\n' "$NS" "$NS" >"$WORK/manifests/base.yaml"
  printf 'services:\n' >"$WORK/compose.yaml"
  # The claim names a volume made beforehand (a PVC document would be made
  # again, and refused, by every `--replace`).
  : >"$WORK/kube.yaml"
  for i in $(seq 0 $((N - 1))); do
    name=$(printf 'c%02d' "$i")
    local env="" yenv="" kenv=""
    if [ "$name" = c07 ]; then
      env="  env: [{name: MODE, value: $mode}]"
      yenv="    environment: {MODE: $mode}"
      kenv="      env: [{name: MODE, value: $mode}]"
    fi
    cat >"$WORK/manifests/$name.yaml" <<EOF
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: $name, namespace: $NS}
spec:
  image: $IMAGE
  command: $(cmd "$i")
  stopGracePeriod: 1s
  volumeMounts: [{volume: data, mountPath: /data}]
  networks: [{name: net}]
$env
EOF
    cat >>"$WORK/compose.yaml" <<EOF
  $name:
    image: $IMAGE
    command: $(cmd "$i")
    stop_grace_period: 1s
    volumes: [data:/data]
$yenv
EOF
    cat >>"$WORK/kube.yaml" <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: benchkube-$name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: $name
      image: $IMAGE
      command: $(cmd "$i")
      volumeMounts: [{name: data, mountPath: /data}]
$kenv
  volumes: [{name: data, persistentVolumeClaim: {claimName: benchkube-data}}]
EOF
  done
  printf 'volumes:\n  data: {}\n' >>"$WORK/compose.yaml"
}

# berth serve, one phase: $1 = phase, prints seconds.
berth_phase() {
  local phase="$1" start line before
  before=$(id_of "berth.dev/name=c07")
  start=$(now)
  RUST_LOG=berth=debug "$BERTH" --log-format json serve --engine podman --manifests "$WORK/manifests" \
    --state-dir "$WORK/state" --listen 127.0.0.1:0 >"$WORK/berth-$phase.log" 2>&1 &
  local pid=$!
  while :; do
    case "$phase" in
      cold) [ "$(running "berth.dev/namespace=$NS")" -ge "$N" ] && break ;;
      reapply) grep -qs '"reconcile queue idle"' "$WORK/berth-$phase.log" && break ;;
      change) now_id=$(id_of "berth.dev/name=c07"); [ -n "$now_id" ] && [ "$now_id" != "$before" ] && break ;;
    esac
    kill -0 "$pid" 2>/dev/null || { log "berth exited; see $WORK/berth-$phase.log"; tail -5 "$WORK/berth-$phase.log" >&2; exit 1; }
    sleep 0.05
  done
  elapsed "$start"
  kill -TERM "$pid"; wait "$pid" || true
}

compose_phase() {
  local start; start=$(now)
  podman-compose -p benchcompose -f "$WORK/compose.yaml" up -d >"$WORK/compose-$1.log" 2>&1 || { log "podman-compose failed: $(tail -3 "$WORK/compose-$1.log")"; }
  elapsed "$start"
}

kube_failed() { log "podman kube play failed ($1):"; tail -3 "$WORK/kube-$1.log" >&2; exit 1; }

kube_phase() {
  local start; start=$(now)
  if [ "$1" = cold ]; then
    podman network create benchkube-net >/dev/null
    podman volume create benchkube-data >/dev/null
    podman kube play --network benchkube-net "$WORK/kube.yaml" >"$WORK/kube-$1.log" 2>&1 || kube_failed "$1"
  else
    podman kube play --replace --network benchkube-net "$WORK/kube.yaml" >"$WORK/kube-$1.log" 2>&1 || kube_failed "$1"
  fi
  elapsed "$start"
}

declare -A T
write_stacks blue
for phase in cold reapply change; do
  [ "$phase" = change ] && write_stacks green
  T[berth,$phase]=$(berth_phase "$phase")
  c07_before=$(id_of "com.docker.compose.service=c07")
  T[compose,$phase]=$(compose_phase "$phase")
  [ "$phase" = change ] && [ "$(id_of "com.docker.compose.service=c07")" = "$c07_before" ] && T[compose,note]="(podman-compose up -d left c07 as it was: the change was not applied)"
  T[kube,$phase]=$(kube_phase "$phase")
  log "$phase: berth ${T[berth,$phase]} s, podman-compose ${T[compose,$phase]} s, kube play ${T[kube,$phase]} s"
done
check=$(running "berth.dev/namespace=$NS"); log "berth left $check of $N containers running"

printf '\npodman-compare: %s containers, 1 network, 1 volume (Podman %s)\n' "$N" "$(podman version --format '{{.Server.Version}}' 2>/dev/null || podman --version)"
printf '%-8s %10s %16s %14s %18s %16s\n' phase "berth (s)" "podman-compose" "kube play" "compose/berth" "kube/berth"
for phase in cold reapply change; do
  b=${T[berth,$phase]} c=${T[compose,$phase]} k=${T[kube,$phase]}
  printf '%-8s %10s %16s %14s %17sx %15sx\n' "$phase" "$b" "$c" "$k" \
    "$(python3 -c "print(f'{$c/$b:.2f}')")" "$(python3 -c "print(f'{$k/$b:.2f}')")"
done
[ -n "${T[compose,note]:-}" ] && printf '%s\n' "${T[compose,note]}"
exit 0
