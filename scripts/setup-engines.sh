#!/usr/bin/env bash
# Install and start the container engines berth's tests run against:
# Docker (dockerd + /var/run/docker.sock) and Podman (libpod REST API on
# /run/podman/podman.sock), plus busybox-static for registry-free images
# and git (the git source's tests make their repositories with it and serve
# them with `git http-backend`; berth itself fetches with gix), and kubectl
# (the Kubernetes API tests drive berth with the real client).
#
# Idempotent: packages already installed are not reinstalled and an engine
# that already answers on its socket is reused, never restarted.
# See ../shared/design/ENGINES.md for why each step is needed on these hosts.
set -euo pipefail

log() { printf 'setup-engines: %s\n' "$*" >&2; }

need_packages=()
command -v dockerd >/dev/null 2>&1 || need_packages+=(docker.io)
command -v podman >/dev/null 2>&1 || need_packages+=(podman)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || need_packages+=(busybox-static)
command -v git >/dev/null 2>&1 || need_packages+=(git)
command -v kubectl >/dev/null 2>&1 || need_packages+=(kubectl)

if [ "${#need_packages[@]}" -gt 0 ]; then
  log "installing ${need_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

# Docker ----------------------------------------------------------------------
docker_sock=/var/run/docker.sock
docker_alive() { curl -fsS --max-time 2 --unix-socket "$docker_sock" http://localhost/_ping >/dev/null 2>&1; }
if docker_alive; then
  log "docker: reusing the engine on $docker_sock"
else
  log "docker: starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/berth-dockerd.log 2>&1 &
  for _ in $(seq 1 120); do docker_alive && break; sleep 0.5; done
  docker_alive || { log "docker: dockerd did not come up; see /var/log/berth-dockerd.log"; tail -20 /var/log/berth-dockerd.log >&2; exit 1; }
  log "docker: up"
fi

# Podman ----------------------------------------------------------------------
# Rootful containers fail with "error setting rlimit type 7" because this
# machine forbids raising rlimits; pin default ulimits below the hard limit.
conf=/etc/containers/containers.conf
ulimits='default_ulimits = ["nofile=1024:1024","nproc=1024:1024"]'
if ! grep -qs 'default_ulimits' "$conf"; then
  mkdir -p /etc/containers
  if grep -qs '^\[containers\]' "$conf"; then
    sed -i "/^\[containers\]/a $ulimits" "$conf"
  else
    printf '[containers]\n%s\n' "$ulimits" >>"$conf"
  fi
  log "podman: wrote default_ulimits to $conf"
fi
# Podman 4.3 rotates its event log at 1 MiB, and a stream open across the
# rotation can miss what follows (health_status events, in a full test
# run): give the log room for a whole run. A service started under the old
# setting is restarted.
events_size='events_logfile_max_size = "1g"'
podman_reconfigured=
if ! grep -qs '^events_logfile_max_size' "$conf"; then
  if grep -qs '^\[engine\]' "$conf"; then
    sed -i "/^\[engine\]/a $events_size" "$conf"
  else
    printf '[engine]\n%s\n' "$events_size" >>"$conf"
  fi
  podman_reconfigured=1
  log "podman: wrote events_logfile_max_size to $conf"
fi
podman_sock=/run/podman/podman.sock
podman_alive() { curl -fsS --max-time 2 --unix-socket "$podman_sock" http://d/v4.0.0/libpod/_ping >/dev/null 2>&1; }
if [ -n "$podman_reconfigured" ] && podman_alive; then
  log "podman: restarting the service for the new settings"
  pkill -f "podman system service" || true
  for _ in $(seq 1 20); do podman_alive || break; sleep 0.5; done
fi
if podman_alive; then
  log "podman: reusing the service on $podman_sock"
else
  log "podman: starting podman system service"
  mkdir -p /run/podman
  rm -f "$podman_sock"
  nohup podman system service --time=0 "unix://$podman_sock" >/var/log/berth-podman.log 2>&1 &
  for _ in $(seq 1 120); do podman_alive && break; sleep 0.5; done
  podman_alive || { log "podman: service did not come up; see /var/log/berth-podman.log"; tail -20 /var/log/berth-podman.log >&2; exit 1; }
  log "podman: up"
fi

log "ready: docker=$docker_sock podman=$podman_sock busybox=/bin/busybox"
