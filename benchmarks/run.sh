#!/usr/bin/env bash
# One command: bash benchmarks/run.sh [--models sentiment,rice] [--repeats 3] [--seconds 10]
# Needs the Docker engine, the local base image (scripts/local/base-image.sh) and wrk (apt-get install -y wrk).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${MLOPS_PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3
export PYTHONPATH="$root/scripts${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$root/benchmarks/run.py" "$@"
