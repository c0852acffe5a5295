"""Per-job setup time of the actions on a bare runner, cold and warm.

Every mlops-actions step starts with ``scripts/setup-action.sh``: on a bare GitHub-hosted runner
(python3, pip, venv; no ML library) it installs the package's dependencies, pinned by this ref's
constraints.txt. A job on GitHub is a fresh machine, so what a team can keep between jobs is the
package cache (actions/cache of ~/.cache/uv and ~/.cache/pip). This measures, in the act runner
image of ``tests/infra/runner-image.sh`` (bare, like ubuntu-latest):

* cold: empty caches (a first run, or a cache miss);
* warm: the caches the cold run filled (what actions/cache restores);

for the plain stages and for the two that install extras (render-dockerfile: onnx, dvc: dvc),
and prints the warm/cold ratio measured in the same run. It also times the train stage's
job's whole setup (the stage's install, then uv building the sentiment project's python_env.yaml),
cold and warm.

    python benchmarks/setup_time.py [--repeats 3] [--json out.json]

Needs the Docker engine and the runner image (bash tests/infra/runner-image.sh). No test times
anything; this prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("MLOPS_ACT_RUNNER_IMAGE", "mlops-actions/runner:bookworm")
KINDS = {"stage": "", "render-dockerfile (onnx)": "onnx", "dvc": "dvc"}
TRAIN_ENV = (
    "set -e; s=$(date +%s.%N); mlops=$(/a/scripts/setup-action.sh 2>/dev/null); py=$(dirname \"$mlops\")/python; "
    "cd /tmp && cp -r /a/model_project/sentiment p && "
    "PATH=$(dirname \"$mlops\"):$PATH \"$py\" -c 'from pathlib import Path; from mlflow.utils.environment import _PythonEnv; "
    "from mlflow.utils.virtualenv import _create_virtualenv, _get_virtualenv_name; "
    "p = Path(\"p\").resolve(); e = _PythonEnv.from_yaml(\"p/python_env.yaml\"); "
    "_create_virtualenv(local_model_path=p, python_env=e, env_dir=Path(\"/tmp/env\") / _get_virtualenv_name(e, p), env_manager=\"uv\", capture_output=True)' && "
    "echo \"seconds=$(awk -v a=$s -v b=$(date +%s.%N) 'BEGIN{print b-a}')\""
)


def snapshot(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def run_in_runner(repo: Path, cache: Path, script: str, extras: str = "") -> float:
    """Seconds the command took inside a fresh runner container (a new job), caches mounted."""
    (cache / "pip").mkdir(parents=True, exist_ok=True)
    (cache / "uv").mkdir(parents=True, exist_ok=True)
    cmd = ["docker", "run", "--rm", "--network", "host", "-v", f"{repo}:/a:ro",
           "-v", f"{cache / 'pip'}:/root/.cache/pip", "-v", f"{cache / 'uv'}:/root/.cache/uv",
           "-e", f"MLOPS_EXTRAS={extras}", "-e", "RUNNER_TEMP=/tmp", IMAGE, "bash", "-c", script]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith("seconds="):
            return float(line.split("=", 1)[1])
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = snapshot(Path(tmp) / "repo")
        jobs = {name: ("/a/scripts/setup-action.sh >/dev/null", extras) for name, extras in KINDS.items()}
        jobs["train job: stage + project environment (uv, sentiment)"] = (TRAIN_ENV, "")
        for name, (script, extras) in jobs.items():
            cold, warm = [], []
            for _ in range(args.repeats):
                cache = Path(tempfile.mkdtemp(dir=tmp))
                cold.append(run_in_runner(repo, cache, script, extras))
                warm.append(run_in_runner(repo, cache, script, extras))
                shutil.rmtree(cache, ignore_errors=True)
            c, w = statistics.median(cold), statistics.median(warm)
            rows.append({"job": name, "cold_s": round(c, 1), "warm_s": round(w, 1), "warm_over_cold": round(w / c, 2)})
            print(f"{name}: cold {c:.1f} s, warm {w:.1f} s", flush=True)
    print("\n| job setup on a bare runner | cold (empty cache) | warm (cache restored) | warm / cold |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['job']} | {r['cold_s']:.1f} s | {r['warm_s']:.1f} s | {r['warm_over_cold']:.2f}× |")
    print(f"\nmedians of {args.repeats}; each a new container of {IMAGE} (a new job); same machine, same run")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
