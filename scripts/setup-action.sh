#!/usr/bin/env bash
# Used by every action.yml: install the mlops CLI from this checkout (so the code always matches
# the action's ref) into a virtualenv shared by all mlops-actions steps of the job, and print the
# path of the `mlops` executable on stdout. The venv is keyed on the code, so a second step of the
# same job reuses it. --system-site-packages lets a runner with the libraries preinstalled skip them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${MLOPS_PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || { echo "::error::input 'python': '$python' not found; fix: use actions/setup-python before this step or give an interpreter path" >&2; exit 2; }
stamp="$(cd "$root" && { echo "$("$python" -c 'import sys; print(sys.version)')"; cat pyproject.toml; find scripts/mlops_actions -type f -name '*.py' | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)"
venv="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlops-actions-$stamp"
if [ ! -x "$venv/bin/mlops" ]; then
  tmp="$venv.partial-$$"
  rm -rf "$tmp"
  echo "::group::install mlops-actions ($stamp)" >&2
  "$python" -m venv --system-site-packages "$tmp" >&2
  "$tmp/bin/python" -m pip install --disable-pip-version-check --quiet ${MLOPS_PIP_ARGS:-} "$root" >&2
  echo "::endgroup::" >&2
  # relocate: the venv's scripts carry absolute shebangs, so build in place then rename atomically
  if [ -x "$venv/bin/mlops" ]; then rm -rf "$tmp"; else
    rm -rf "$venv"; mv "$tmp" "$venv"
    sed -i "1s|^#!.*$tmp/bin/python|#!$venv/bin/python|" "$venv/bin/mlops"
    sed -i "s|$tmp|$venv|g" "$venv/pyvenv.cfg" "$venv"/bin/activate* 2>/dev/null || true
  fi
fi
echo "$venv/bin/mlops"
