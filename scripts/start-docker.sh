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
echo "== starting dockerd (log: /tmp/mlops-dockerd.log)"
nohup dockerd >/tmp/mlops-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd did not come up; see /tmp/mlops-dockerd.log" >&2
tail -n 20 /tmp/mlops-dockerd.log >&2 || true
exit 1
