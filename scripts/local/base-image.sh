#!/usr/bin/env bash
# Build a local stand-in for python:3.11-slim (Debian bookworm, python3.11, pip, venv) with
# debootstrap, for machines without Docker Hub access. Idempotent: does nothing when the tag exists.
#   usage: scripts/local/base-image.sh [TAG]     (default TAG: python:3.11-slim)
set -euo pipefail
tag="${1:-python:3.11-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "error: debootstrap missing; fix: apt-get install -y debootstrap" >&2; exit 1; }
root="$(mktemp -d /tmp/mlops-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "building $tag from Debian bookworm with debootstrap (about a minute)"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$root" "$mirror" >/tmp/mlops-debootstrap.log 2>&1 \
  || { tail -n 20 /tmp/mlops-debootstrap.log >&2; exit 1; }
ln -sf python3 "$root/usr/bin/python"
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' - "$tag" >/dev/null
echo "built $tag"
