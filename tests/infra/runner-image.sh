#!/usr/bin/env bash
# Build the local GitHub Actions runner image that `act` runs jobs in: Debian bookworm with git,
# curl, node, the docker client and python3 with this project's dependencies preinstalled in the
# system interpreter (as a self-hosted runner would have them). Test-only, never published: it
# trusts the host CA bundle so pip works behind this machine's TLS proxy.
#   usage: tests/infra/runner-image.sh [TAG]   (default mlops-actions/runner:bookworm)
set -euo pipefail
tag="${1:-mlops-actions/runner:bookworm}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
stamp="$(cat "$here/constraints.txt" "$0" | sha256sum | cut -c1-12)"
if [ "$(docker image inspect -f '{{ index .Config.Labels "mlops.stamp" }}' "$tag" 2>/dev/null)" = "$stamp" ]; then
  echo "runner image $tag is current"
  exit 0
fi
root="$(mktemp -d /tmp/mlops-runner.XXXXXX)"
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
echo "building runner image $tag (debootstrap + pip, a few minutes)"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates,git,curl,nodejs,docker.io,procps \
  bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/tmp/mlops-runner-debootstrap.log 2>&1 \
  || { tail -n 20 /tmp/mlops-runner-debootstrap.log >&2; exit 1; }
ca="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
cp "$ca" "$root/usr/local/share/ca-certificates/host-ca.crt"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$here/constraints.txt" "$root/tmp/constraints.txt"
mount -t proc proc "$root/proc"
chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
chroot "$root" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
  python3 -m pip install --break-system-packages --no-cache-dir -q -c /tmp/constraints.txt \
  mlflow PyGithub docker jinja2 pyyaml click requests scikit-learn pandas setuptools wheel \
  scipy dvc dvc-s3 tensorflow-cpu pillow matplotlib onnx onnxruntime skl2onnx tf2onnx
umount "$root/proc"
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED "$root/tmp/constraints.txt"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
ln -sf python3 "$root/usr/bin/python"
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change "LABEL mlops.stamp=$stamp" \
  --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "built $tag"
