#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine (root): install everything, start the Docker
# engine, build the local base and runner images, then pytest. The tests start MLflow servers, the
# registry and the GitHub API double themselves, in two pytest processes at once. Extra arguments
# go to pytest, in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
bash scripts/start-docker.sh
export MLOPS_REQUIRE_DOCKER=1 PATH="$PWD/.venv/bin:$PATH"
echo "== local images (python:3.11-slim stand-in, act runner)"
bash scripts/local/base-image.sh
bash tests/infra/runner-image.sh
echo "== pytest"
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -q --durations=40 "$@"
fi
# The whole suite runs as two pytest processes at once. The act modules spend most of their time
# waiting on job containers, image pulls and servers, so on a 2-core machine the two halves take
# about as long as the longer one. Every line says which half wrote it; either half failing fails.
# The halves are balanced on measured durations (2026-12-01, fresh clone: 2518 s and 3260 s with
# the root action and the demo in the first; the per-flavor images, about 350 s, moved after that).
first=(tests/act/test_snippets_act.py tests/act/test_pipeline.py tests/act/test_release.py tests/act/test_actions.py
       tests/act/test_root_action.py tests/integration/test_demo.py tests/integration/test_flavors.py)
rest=()
for module in "${first[@]}"; do rest+=(--ignore "$module"); done
.venv/bin/python -m pytest -q --durations=25 "${first[@]}" 2>&1 | sed -u 's/^/[1] /' &
one=$!
.venv/bin/python -m pytest -q --durations=25 "${rest[@]}" 2>&1 | sed -u 's/^/[2] /' &
two=$!
status=0
wait "$one" || status=$?
wait "$two" || status=$?
exit "$status"
