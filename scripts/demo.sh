#!/usr/bin/env bash
# The main job on embedded defaults, on a fresh Debian machine: install, then run all five stages
# locally on the sentiment project (SYNTHETIC data). Output lands in .mlops/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/start-docker.sh || echo "note: no Docker engine; the demo will skip building and pushing the image"
exec .venv/bin/mlops demo "$@"
