#!/usr/bin/env bash
# Make sure a Docker engine answers: start dockerd in the background when none does (root only).
# Exit 0 when an engine answers, 1 otherwise (with the reason).
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then echo "no dockerd installed (apt-get install docker.io)" >&2; exit 1; fi
if [ "$(id -u)" -ne 0 ]; then echo "dockerd needs root" >&2; exit 1; fi
# a dockerd killed with its session leaves pid files behind that block the next start
for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
  if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then rm -f "$pidfile"; fi
done
log=/tmp/mlops-dockerd.log
echo "== starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  docker info >/dev/null 2>&1 && exit 0
  if ! kill -0 "$pid" 2>/dev/null; then
    # dockerd gave up (typically inside a container without --privileged: no iptables, no mounts)
    code=0; wait "$pid" 2>/dev/null || code=$?
    reason="$({ grep -E 'failed to start daemon|level=(fatal|error)' "$log" || true; } | tail -n 1 | sed -E 's/^.*msg="?//; s/"$//' | cut -c1-300)"
    hint=""
    if [ -f /.dockerenv ] || [ -f /run/.containerenv ]; then
      hint=" (this is a container: dockerd needs --privileged, or mount the host's /var/run/docker.sock)"
    fi
    echo "dockerd exited during start-up with code $code: ${reason:-see $log}$hint" >&2
    exit 1
  fi
  sleep 0.5
done
echo "dockerd did not answer within 60s; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
