#!/usr/bin/env bash
# Install what mlops-actions needs on a Debian machine (root): Docker engine, registry, debootstrap,
# git, and a virtualenv at .venv with the package. With --test also the test and lint tools.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in docker.io docker-registry debootstrap apache2-utils git python3-venv ca-certificates curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "$with_tests" = 1 ] && ! command -v node >/dev/null 2>&1; then need+=(nodejs npm); fi
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; else SUDO=""; fi
  echo "== apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== python venv .venv ($("$python" --version))"
  "$python" -m venv .venv
fi
extras=""
[ "$with_tests" = 1 ] && extras="[test]"
stamp=".venv/.installed"
if [ "$with_tests" = 1 ]; then stamp=".venv/.installed-test"; fi
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== pip install -e .$extras (constraints.txt)"
  .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip
  .venv/bin/python -m pip install --disable-pip-version-check -q -c constraints.txt -e ".$extras"
  echo "$want" > "$stamp"
fi
if [ "$with_tests" = 1 ]; then
  PATH="$PWD/.venv/bin:$PATH" bash tests/infra/install-linters.sh >/dev/null
  bash tests/infra/fetch-openapi.sh >/dev/null
fi
