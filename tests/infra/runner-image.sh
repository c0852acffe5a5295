#!/usr/bin/env bash
# Build the local GitHub Actions runner image that `act` runs jobs in, shaped like GitHub's bare
# ubuntu-latest for Python: Debian bookworm with python3, pip, venv, git, curl, node and the docker
# client, and no machine-learning library at all: the actions must
# install what they need, as they do on GitHub. Test-only, never published: it trusts the host CA
# bundle so pip and uv work behind this machine's TLS proxy (what users behind a proxy configure).
#   usage: tests/infra/runner-image.sh [TAG]   (default mlops-actions/runner:bookworm)
set -euo pipefail
tag="${1:-mlops-actions/runner:bookworm}"
stamp="$(sha256sum <"$0" | cut -c1-12)"
if [ "$(docker image inspect -f '{{ index .Config.Labels "mlops.stamp" }}' "$tag" 2>/dev/null)" = "$stamp" ]; then
  echo "runner image $tag is current"
  exit 0
fi
root="$(mktemp -d /tmp/mlops-runner.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "building runner image $tag (debootstrap, about a minute)"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates,git,curl,nodejs,docker.io,procps \
  bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/tmp/mlops-runner-debootstrap.log 2>&1 \
  || { tail -n 20 /tmp/mlops-runner-debootstrap.log >&2; exit 1; }
ca="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
cp "$ca" "$root/usr/local/share/ca-certificates/host-ca.crt"
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
ln -sf python3 "$root/usr/bin/python"
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change "LABEL mlops.stamp=$stamp" \
  --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "built $tag"
