"""Faults against the real services, broken on cue through a TCP proxy (tests/chaos.py).

Each test checks three things: the stage fails (or recovers) with one clear line after a bounded
number of retries, and nothing half-done is left behind: no pull request, no pushed branch, no
image tag, no partly replaced artifact folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from chaos import ChaosProxy
from conftest import git, registry_tags
from github_double.server import git_branches
from mlops_actions.core import manifest, tracking as trk
from mlops_actions.stages.fetch_artifacts import fetch
from mlops_actions.core.errors import MlopsError
from mlops_actions.stages.push_image import PushRequest, push_image
from mlops_actions.stages.open_pr import PrRequest, open_pr

MLOPS = [sys.executable, "-m", "mlops_actions"]
REPO = "acme/faults"

SLOW_PROJECT = {
    "MLproject": "name: slow\nentry_points:\n  main:\n    command: \"python train.py\"\n",
    "train.py": (
        "import os, pathlib, time\n"
        "import mlflow, numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "mlflow.log_metric('test_accuracy', 0.9)\n"
        "pathlib.Path(os.environ['STARTED_FLAG']).touch()\n"
        "time.sleep(6)  # the tracking server dies here\n"
        "x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])\n"
        "mlflow.sklearn.log_model(LogisticRegression().fit(x, y), name='model', input_example=x[:2])\n"
    ),
}


def _registry_digest(registry, name: str, tag: str) -> str:
    import base64

    req = urllib.request.Request(f"{registry.url}/v2/{name}/manifests/{tag}", method="HEAD", headers={
        "Authorization": "Basic " + base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode(),
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
    return urllib.request.urlopen(req, timeout=10).headers["Docker-Content-Digest"]


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("::error")]


@pytest.fixture
def mlflow_proxy(mlflow_server):
    u = urlparse(mlflow_server.url)
    proxy = ChaosProxy(u.hostname, u.port).up()
    yield proxy
    proxy.down()


def test_mlflow_dies_during_training_no_pr_no_image(mlflow_proxy, github_api, git_remote, registry, tmp_path):
    """The whole chain (root action's `mlops pipeline`): the server goes away mid-run, so the
    model cannot be logged. One error line, exit non-zero, and nothing reaches git, GitHub or the
    registry."""
    project = tmp_path / "slow"
    project.mkdir()
    for name, text in SLOW_PROJECT.items():
        (project / name).write_text(text)
    flag = tmp_path / "started"
    github_api.add_repo(REPO)
    github_api.branches_of = lambda owner, repo: git_branches(git_remote.origin)
    out = tmp_path / "gh-output"
    env = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(out), GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"),
               STARTED_FLAG=str(flag), GITHUB_TOKEN=github_api.token, REGISTRY_PASSWORD=registry.password,
               MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1")
    image = f"{registry.host}/acme/faults-train"
    proc = subprocess.Popen(
        MLOPS + ["pipeline", "--gate", "false", "--project-path", str(project), "--env-manager", "local", "--tracking-uri", mlflow_proxy.url, "--experiment", "faults",
                 "--artifacts-path", str(tmp_path / "artifacts"), "--repo-path", "models/slow", "--repository", REPO,
                 "--api-url", github_api.url, "--context-dir", str(tmp_path / "ctx"), "--image", image,
                 "--username", registry.username],
        cwd=git_remote.clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.1)
    mlflow_proxy.down()
    started = time.monotonic()
    log, _ = proc.communicate(timeout=300)
    took = time.monotonic() - started
    assert proc.returncode != 0, log[-3000:]
    errors = _error_lines(log)
    assert len(errors) == 1, log[-3000:]
    assert "Traceback" not in log.split(errors[0])[-1]
    print(f"\nfailed {took:.1f}s after the server died: {errors[0]}")
    assert took < 120  # bounded: MLflow's own retries (2) and ours, not minutes of hanging
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "ctx").exists()
    assert set(git_branches(git_remote.origin)) == {"main"}
    assert github_api.pulls.get(REPO, []) == []
    assert registry_tags(registry, "acme/faults-train") == []


def test_mlflow_dies_during_artifact_download_leaves_the_old_copy(trained, mlflow_proxy, tmp_path):
    dest = tmp_path / "artifacts"
    dest.mkdir()
    (dest / "old.txt").write_text("the artifacts of the previous run\n")
    (dest / ".mlops-output").write_text("fetch-artifacts\n")  # written by an earlier fetch (a foreign folder is refused)
    manifest.write(dest)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    mlflow_proxy.cut_after(60_000)  # the metadata calls pass, the download breaks half-way
    with pytest.raises(MlopsError) as exc:
        fetch(trained.run_id, dest, tracking=trk.Tracking(uri=mlflow_proxy.url))
    line = exc.value.line()
    assert "\n" not in line and len(line) < 400
    print(f"\n{mlflow_proxy.bytes_down} bytes got through; error: {line}")
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before  # untouched, still verifies
    manifest.verify(dest)
    assert not list(tmp_path.glob(".artifacts*")) and not list(tmp_path.glob("artifacts.*"))  # no temp folder left
    mlflow_proxy.up()  # the server is back: the same call now replaces the folder whole
    result = fetch(trained.run_id, dest, tracking=trk.Tracking(uri=mlflow_proxy.url))
    assert not (dest / "old.txt").exists() and (dest / "model" / "MLmodel").is_file()
    manifest.verify(result.path)


def _tiny_context(tmp_path: Path, label: str) -> Path:
    ctx = tmp_path / f"ctx-{label}"
    ctx.mkdir()
    # a few MB of layer so that the push is still under way when the registry goes away
    (ctx / "payload.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    (ctx / "Dockerfile").write_text(f"FROM python:3.11-slim\nCOPY payload.bin /payload.bin\nLABEL test.label={label}\n")
    return ctx


def test_registry_dies_during_push_no_tag_points_at_a_half_pushed_image(registry, docker_engine, tmp_path, monkeypatch):
    u = urlparse(registry.url)
    proxy = ChaosProxy(u.hostname, u.port).up()
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("GITHUB_SHA", "c0ffee0" + "0" * 33)
    name = "acme/faults-push"
    req = PushRequest(context=_tiny_context(tmp_path, "cut"), image=f"{proxy.host}/{name}", version="1.0.0",
                      username=registry.username, password=registry.password, smoke_test=False)
    pushed = threading.Event()

    def cut_when_uploading():  # let login and the first calls through, then break the upload
        deadline = time.monotonic() + 300
        while proxy.bytes_up < 2 * 1024 * 1024 and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy.down()
        pushed.set()

    threading.Thread(target=cut_when_uploading, daemon=True).start()
    try:
        with pytest.raises(MlopsError) as exc:
            push_image(req)
        assert pushed.is_set(), "the push finished before the registry went away"
        print(f"\n{proxy.bytes_up} bytes uploaded before the cut; error: {exc.value.line()}")
        assert "\n" not in exc.value.line()
        assert registry_tags(registry, name) == []  # nothing tagged in the registry
        assert not docker_engine.images.list(name=f"{proxy.host}/{name}")  # no local tag left behind either
    finally:
        proxy.down()


def test_two_runs_of_the_same_commit_at_once_open_one_pr(fetched, github_api, git_remote, tmp_path):
    """Two jobs racing on the same commit (concurrency not configured by the caller): each has its
    own checkout; the bot branch gets one commit and the repository one pull request."""
    github_api.add_repo(REPO)
    github_api.branches_of = lambda owner, repo: git_branches(git_remote.origin)
    second = tmp_path / "clone2"
    git("clone", "--quiet", str(git_remote.origin), str(second), cwd=tmp_path)
    results, errors = [], []

    def job(workdir):
        try:
            results.append(open_pr(PrRequest(source_dir=fetched.path, repo_path="models/sentiment", workdir=workdir,
                                             repository=REPO, api_url=github_api.url, token=github_api.token)))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(w,)) for w in (git_remote.clone, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(r.operation for r in results) in (["created", "unchanged"], ["created", "updated"])
    assert len(github_api.pulls[REPO]) == 1
    assert len({r.pr_number for r in results}) == 1
    commits = git("rev-list", "--count", "main..mlops/model-update", cwd=git_remote.origin)
    assert commits == "1"  # the loser found its change already there and pushed nothing


def test_two_pushes_of_the_same_build_give_one_set_of_tags(registry, docker_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("GITHUB_SHA", "abcdef1" + "0" * 33)
    ctx = _tiny_context(tmp_path, "twice")
    req = dict(context=ctx, image=f"{registry.host}/acme/faults-twice", version="2.0.0", username=registry.username,
               password=registry.password, smoke_test=False)
    results = []
    threads = [threading.Thread(target=lambda: results.append(push_image(PushRequest(**req)))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 2
    tags = registry_tags(registry, "acme/faults-twice")
    assert sorted(tags) == sorted(t.rsplit(":", 1)[1] for t in results[0].tags)
    # whichever build won the race, every tag names one and the same image
    digests = {tag: _registry_digest(registry, "acme/faults-twice", tag) for tag in tags}
    assert len(set(digests.values())) == 1, digests
    assert set(digests.values()) <= {r.digest for r in results}
    shutil.rmtree(ctx)
