"""README command (1), ``bash scripts/demo.sh``, the way a newcomer runs it.

The machine is a clean container of the local base image (``python:3.11-slim``, built by
scripts/local/base-image.sh: Debian bookworm with python3, pip, venv and ca-certificates, nothing
else), as root, with no Docker engine inside. The repository is a fresh clone of this checkout
that holds its working-tree state (uncommitted and untracked-but-not-ignored files included) as
one commit. From the host come only the CA bundle (what users behind a TLS-inspecting proxy point
PIP_CERT, SSL_CERT_FILE and REQUESTS_CA_BUNDLE at) and package caches (pip's and uv's wheels);
apt, the venv, the package and the project's training environment are installed by the demo.

The in-process variant runs the demo where a Docker engine answers: it covers the image stage
(build, smoke test, push to a registry with login), which the container run skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from mlops_actions.demo import run_demo
from mlops_actions.core.local_services import free_port
from mlops_actions.core.paths import resource

pytestmark = pytest.mark.docker

ROOT = resource(".")
IMAGE = "python:3.11-slim"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_CONTAINER = "/etc/ssl/host-ca-certificates.crt"  # not over the container's own bundle: apt may rewrite that one
CACHE = Path(os.environ.get("MLOPS_TEST_CACHE", "/var/cache/mlops-tests"))
TIMEOUT = 1200  # cold cache: mlflow and its dependencies are downloaded twice (the venv, then the project's uv env)
# the demo runs ungated (every run proposed): the gate row says so, every other stage succeeds
STAGES = ("train", "fetch-artifacts", "scan", "render-dockerfile", "smoke-test", "open-pr", "push-image")
BRANCH = "mlops/model-update"


def _git(*args: str, cwd: Path) -> str:
    # the container wrote some of these repositories as root: trust them whoever runs the tests
    return subprocess.run(["git", "-c", "safe.directory=*", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def fresh_clone(dest: Path) -> Path:
    """``git clone`` of this checkout plus its working-tree state (what ``git ls-files --cached
    --others --exclude-standard`` lists, deletions included), committed: what a newcomer gets from
    ``git clone`` once these edits are pushed."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the README command test needs a clone")
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dest)], check=True)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode()
    for rel in sorted(set(filter(None, listed.split("\0")))):
        src, target = ROOT / rel, dest / rel
        if src.is_file() or src.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            shutil.copy2(src, target, follow_symlinks=False)
        elif target.is_file() or target.is_symlink():
            target.unlink()  # deleted in the working tree
    _git("add", "-A", cwd=dest)
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=dest).returncode != 0:
        _git("-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "-m", "working tree", cwd=dest)
    return dest


def _cache_dirs() -> dict[str, Path]:
    root = CACHE
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK):
            raise PermissionError(root)
    except OSError:
        root = Path.home() / ".cache" / "mlops-tests"
    dirs = {"pip": root / "pip", "uv": root / "uv"}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def run_in_clean_debian(clone: Path, command: list[str], timeout: float = TIMEOUT) -> tuple[int, str]:
    """``command`` (argv) in a throwaway root container of the base image, the clone mounted at its own
    path as the working directory; output streamed to ours and returned."""
    caches = _cache_dirs()
    name = f"mlops-demo-test-{uuid.uuid4().hex[:10]}"
    cmd = ["docker", "run", "--rm", "--name", name, "--network", "host", "--user", "0:0",
           "-v", f"{clone}:{clone}", "-w", str(clone),
           "-v", f"{caches['pip']}:/root/.cache/pip", "-v", f"{caches['uv']}:/root/.cache/uv"]
    if HOST_CA.is_file():
        cmd += ["-v", f"{HOST_CA}:{CA_IN_CONTAINER}:ro"]
        cmd += [arg for var in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE") for arg in ("-e", f"{var}={CA_IN_CONTAINER}")]
    cmd += [IMAGE, *command]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)  # only the container this test started

    timer = threading.Timer(timeout, stop)
    timer.start()
    lines = []
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            sys.stdout.write("  | " + line)
            sys.stdout.flush()
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            stop()
            proc.wait()
    out = "".join(lines)
    if expired.is_set():
        pytest.fail(f"{' '.join(command)} did not finish within {timeout:.0f}s; last output:\n{out[-4000:]}")
    return code, out


@pytest.mark.slow
def test_readme_demo_command_in_clean_debian(tmp_path, docker_engine):
    started = time.monotonic()
    clone = fresh_clone(tmp_path / "mlops-actions")
    cold = not any(any(path.iterdir()) for path in _cache_dirs().values())
    code, out = run_in_clean_debian(clone, ["bash", "scripts/demo.sh"])
    took = time.monotonic() - started
    print(f"\nREADME demo command in a clean Debian container: exit {code} in {took:.0f}s ({'cold' if cold else 'warm'} package cache)")

    assert code == 0, f"bash scripts/demo.sh exited {code}; last output:\n{out[-4000:]}"
    assert "ModuleNotFoundError" not in out
    # no engine inside: dockerd dies at start-up, start-docker.sh says so at once, the demo skips the image
    assert "dockerd exited during start-up" in out
    assert "push-image SKIPPED: no Docker engine could be started" in out
    assert "image=skipped" in out

    ws = clone / ".mlops" / "demo"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("demo-sentiment")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert 0.5 < run.data.metrics["test_accuracy"] <= 1.0
    print(f"MLflow run {run.info.run_id}: {run.data.metrics}, env {run.data.tags.get('mlflow.project.env')}")

    origin = ws / "origin.git"
    head = _git("rev-parse", "--verify", f"refs/heads/{BRANCH}", cwd=origin).strip()
    files = _git("ls-tree", "-r", "--name-only", head, "models/sentiment", cwd=origin).split()
    assert "models/sentiment/MANIFEST.sha256" in files
    assert run.info.run_id[:12] in _git("log", "-1", "--format=%s", head, cwd=origin)

    body = (ws / "pr-body.md").read_text(encoding="utf-8")
    assert "| test_accuracy |" in body
    assert run.info.run_id in body
    assert (ws / "image" / "Dockerfile").is_file()


@pytest.mark.slow
def test_demo_in_process_with_engine(tmp_path, docker_engine):
    """The same demo where an engine answers: all five stages, the image pushed to a local
    registry with login; a second run reuses the workspace and updates the same branch."""
    registry = f"127.0.0.1:{free_port()}"
    ws = tmp_path / "demo"
    out = run_demo(ws, registry=registry)
    assert out["stages"] == {"gate": "⚠️", **{s: "✅" for s in STAGES}}
    assert (ws / "mlflow.db").is_file() and (ws / "artifacts" / "MANIFEST.sha256").is_file()
    _git("rev-parse", "--verify", f"refs/heads/{BRANCH}", cwd=ws / "origin.git")
    assert "| test_accuracy |" in (ws / "pr-body.md").read_text(encoding="utf-8")
    assert out["image"].startswith(f"{registry}/demo/sentiment@sha256:")
    again = run_demo(ws, registry=registry, skip_image=True)
    assert again["pr-branch"] == BRANCH and again["image"] == "skipped"
