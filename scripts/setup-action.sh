#!/usr/bin/env bash
# Used by every action.yml: install the mlops CLI from this checkout (so the code always matches
# the action's ref) into a virtualenv shared by all mlops-actions steps of the job, and print the
# path of the `mlops` executable on stdout. The venv is keyed on the code, the constraints and the
# interpreter, so a second step of the same job reuses it; a lock keeps parallel steps from
# building it twice, and an interrupted build is redone. --system-site-packages lets a runner with
# the libraries preinstalled skip the install altogether (scripts/deps-missing.py decides).
# MLOPS_EXTRAS (e.g. dvc) installs optional extras too, in a venv of its own.
# On a bare runner the libraries come pinned by this ref's constraints.txt, through uv and its
# cache (~/.cache/uv, or UV_CACHE_DIR: hand it to actions/cache to make a cold job warm). uv reads
# UV_INDEX_URL / UV_EXTRA_INDEX_URL and SSL_CERT_FILE (proxies, private mirrors).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${MLOPS_PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  shown="${python//%/%25}"; shown="${shown//$'\r'/%0D}"; shown="${shown//$'\n'/%0A}"  # escaped: the value cannot forge a command
  echo "::error::input 'python': '$shown' not found; fix: run actions/setup-python before this step or give an interpreter path" >&2
  exit 2
fi
extras="${MLOPS_EXTRAS:-}"
stamp="$(cd "$root" && { "$python" -c 'import sys; print(sys.version)'; echo "extras=$extras"; cat pyproject.toml constraints.txt; find scripts/mlops_actions -type f -name '*.py' | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)"
venv="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlops-actions-$stamp"
exec 9>"$venv.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  echo "::group::install mlops-actions ($stamp)" >&2
  "$python" -m venv --system-site-packages --without-pip "$venv" >&2
  # only what the interpreter lacks goes through pip (a runner with the libraries preinstalled
  # needs no network); the package itself is pure Python and is used from this checkout
  if ! missing="$("$venv/bin/python" "$root/scripts/deps-missing.py" "$root/pyproject.toml" "$extras" 2>/dev/null)"; then
    "$venv/bin/python" -m ensurepip --default-pip >/dev/null 2>&1  # no pip/packaging on the system: bring pip's
    missing="$("$venv/bin/python" "$root/scripts/deps-missing.py" "$root/pyproject.toml" "$extras")"
  fi
  if [ -n "$missing" ]; then
    # pip and uv (and any build step of a package they fetch) run without the step's secrets:
    # constraints.txt pins the direct requirements only, so the environment of the install keeps
    # just what an install needs (paths, temp, locale, proxies, index and TLS settings) and no
    # token, password or tracking credential the step's env holds for the stage itself
    clean=(env -i)
    for name in $(compgen -e); do
      case "$name" in
        PATH|HOME|USER|LANG|LC_*|TMPDIR|RUNNER_TEMP|XDG_CACHE_HOME|UV_*|PIP_*|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|\
        HTTP_PROXY|HTTPS_PROXY|NO_PROXY|http_proxy|https_proxy|no_proxy) clean+=("$name=${!name}") ;;
      esac
    done
    started=$(date +%s.%N)
    printf '%s\n' "$missing" >"$venv/requirements.txt"
    echo "installing (pinned by constraints.txt of this ref): $(tr '\n' ' ' <"$venv/requirements.txt")" >&2
    # uv first (one wheel, from pip's cache when warm), then everything else through uv's cache. uv
    # comes from the interpreter's own pip into a folder of the venv: the venv needs no pip of its
    # own (ensurepip alone costs about 4 s a job); an interpreter without pip gets one in the venv.
    uv=("$venv/bin/python" -m uv)
    if ! "${clean[@]}" "${uv[@]}" --version >/dev/null 2>&1; then
      pip=("$python" -m pip)
      if ! "${clean[@]}" "${pip[@]}" --version >/dev/null 2>&1; then
        "${clean[@]}" "$venv/bin/python" -m ensurepip --default-pip >/dev/null 2>&1 || true
        pip=("$venv/bin/python" -m pip)
      fi
      "${clean[@]}" PIP_ROOT_USER_ACTION=ignore "${pip[@]}" install --disable-pip-version-check --quiet --target "$venv/uv-bootstrap" \
        -c "$root/constraints.txt" uv >&2
      uv=("$venv/uv-bootstrap/bin/uv")
    fi
    "${clean[@]}" "${uv[@]}" pip install --python "$venv/bin/python" --quiet \
      -c "$root/constraints.txt" -r "$venv/requirements.txt" >&2
    echo "setup: installed in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s" >&2
  fi
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  printf '%s\n' "$root/scripts" >"$site/mlops-actions.pth"
  printf '#!/bin/sh\nexec "%s" -m mlops_actions "$@"\n' "$venv/bin/python" >"$venv/bin/mlops"
  chmod +x "$venv/bin/mlops"
  "$venv/bin/mlops" --version >&2
  echo "::endgroup::" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/mlops"
