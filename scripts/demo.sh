#!/usr/bin/env bash
# The main job on embedded defaults, on a fresh Debian machine: install, then run all five stages
# locally on the sentiment project (SYNTHETIC data). Output lands in .mlops/demo/.
# `mlops demo` starts dockerd itself when none answers (scripts/start-docker.sh) and says that it
# skips building and pushing the image when no engine can be started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# the venv, as if activated: its python, mlops and uv come first for everything the demo starts
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/mlops demo "$@"
