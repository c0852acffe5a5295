#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine (root): install everything, start the Docker
# engine, build the local base and runner images, then pytest. The tests start MLflow servers, the
# registry and the GitHub API double themselves. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
bash scripts/start-docker.sh
export MLOPS_REQUIRE_DOCKER=1 PATH="$PWD/.venv/bin:$PATH"
echo "== local images (python:3.11-slim stand-in, act runner)"
bash scripts/local/base-image.sh
bash tests/infra/runner-image.sh
echo "== pytest"
exec .venv/bin/python -m pytest -q --durations=40 "$@"
