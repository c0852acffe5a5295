"""The root action's chain (``mlops pipeline`` / pipeline.run_pipeline) on real services: the gate
stops a losing challenger before anything is proposed, a failed smoke test opens no pull request,
a gate without a metric fails before any training, image names are lowercased. The session's
``trained`` run is reused (same project files, entry point and params), so nothing trains here."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from conftest import SENTIMENT, registry_tags
from github_double.server import git_branches
from mlops_actions.core import tracking as trk
from mlops_actions.core.errors import StageError
from mlops_actions.stages.push_image import PushRequest
from mlops_actions.pipeline import GateConfig, PipelineConfig, default_model_name, lowercase_image, run_pipeline
from mlops_actions.stages.open_pr import PrRequest

MLOPS = [sys.executable, "-m", "mlops_actions"]
REPO = "acme/root-pipeline"
CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"  # this machine's TLS-intercepting proxy, for the build


@pytest.mark.parametrize("given, used", [
    ("ghcr.io/Acme/Sentiment", "ghcr.io/acme/sentiment"),
    ("127.0.0.1:5000/Acme/Root-Model", "127.0.0.1:5000/acme/root-model"),
    ("Acme/Model:V1.0-RC", "acme/model:V1.0-RC"),  # the tag is never touched (push-image refuses it anyway)
    ("ghcr.io/acme/model@sha256:" + "a" * 64, "ghcr.io/acme/model@sha256:" + "a" * 64),
    ("localhost:5000/x", "localhost:5000/x"),
])
def test_image_repository_is_lowercased_never_the_tag(given, used):
    assert lowercase_image(given) == used


def test_default_model_name_is_the_project_folder(tmp_path):
    assert default_model_name("model_project/sentiment") == "sentiment"
    assert default_model_name(str(tmp_path / "Reviews")) == "Reviews"


def test_gate_on_without_metric_is_one_error_before_any_training(tmp_path):
    """No metric with the gate on: one ::error:: line naming the input and both fixes, exit 2, and
    MLflow is never contacted (the tracking URI points at a closed port)."""
    env = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(tmp_path / "out"), GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    proc = subprocess.run(MLOPS + ["pipeline", "--project-path", str(SENTIMENT), "--tracking-uri", "http://127.0.0.1:9",
                                   "--artifacts-path", str(tmp_path / "artifacts")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1, proc.stdout
    assert "input 'metric': is empty" in errors[0] and "fix: set metric: <name>, or gate: 'false'" in errors[0], errors
    assert not (tmp_path / "artifacts").exists()
    assert "Traceback" not in proc.stdout + proc.stderr


def test_bad_direction_is_one_error(tmp_path):
    env = dict(os.environ, GITHUB_ACTIONS="true")
    proc = subprocess.run(MLOPS + ["pipeline", "--project-path", str(SENTIMENT), "--tracking-uri", "http://127.0.0.1:9",
                                   "--metric", "test_accuracy", "--direction", "up"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert proc.returncode == 2 and len(errors) == 1 and "input 'direction': 'up' is not max or min" in errors[0], proc.stdout


@pytest.fixture
def gh(github_api, git_remote):
    github_api.branches_of = lambda owner, repo: git_branches(git_remote.origin)
    github_api.add_repo(REPO)
    return github_api


def _config(trained, mlflow_server, gh, git_remote, tmp_path, **kw) -> PipelineConfig:
    """The session's trained run again: same project, entry point, params and experiment → reused."""
    base = dict(
        project_path=str(SENTIMENT), tracking=trk.Tracking(uri=mlflow_server.url), experiment="tests-sentiment",
        params={"rows": "600"}, reuse=True, artifacts_dir=tmp_path / "artifacts", context_dir=tmp_path / "image",
        pr=PrRequest(source_dir=tmp_path / "unused", repo_path="models/sentiment", workdir=git_remote.clone, repository=REPO,
                     api_url=gh.url, token=gh.token),
    )
    base.update(kw)
    return PipelineConfig(**base)


def _champion(mlflow_server, model: str, value: float) -> None:
    """A tiny model registered as ``model``'s champion, its run logging test_accuracy = value."""
    import mlflow
    from sklearn.dummy import DummyClassifier

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        mlflow.set_experiment("tests-root-champion")
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="model")
            mlflow.log_metric("test_accuracy", value)
        version = mlflow.register_model(info.model_uri, model)
        client.set_registered_model_alias(model, "champion", version.version)
    finally:
        mlflow.set_tracking_uri(previous)
    assert run.info.run_id


def test_losing_challenger_stops_cleanly(trained, mlflow_server, gh, git_remote, tmp_path, monkeypatch):
    """The champion holds test_accuracy 1.0: the reused run loses. decision rejected, success, no
    fetch, no branch, no pull request, no image; the summary says why; the config is untouched."""
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    model = f"root-lose-{uuid.uuid4().hex[:6]}"
    _champion(mlflow_server, model, 1.0)
    push = PushRequest(context=tmp_path / "unused", image="127.0.0.1:9/Acme/Never", username="u", password="p")
    cfg = _config(trained, mlflow_server, gh, git_remote, tmp_path, push=push,
                  gate=GateConfig(metric="test_accuracy", model_name=model, direction="max"))
    before = repr(cfg)
    out = run_pipeline(cfg)
    assert repr(cfg) == before  # the caller's config (and its requests) are not changed
    assert out["reused"] == "true" and out["run-id"] == trained.run_id, out
    assert out["decision"] == "rejected" and out["model-version"] == "2" and out["champion-version"] == "1", out
    assert out["reason"].startswith("test_accuracy ") and "≤ champion 1 (v1)" in out["reason"], out
    assert out["stages"]["gate"] == "⏸️" and all(out["stages"][s] == "⏭️" for s in ("fetch-artifacts", "open-pr", "push-image")), out
    assert "pr-url" not in out and "image" not in out
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "image").exists()
    assert set(git_branches(git_remote.origin)) == {"main"} and gh.pulls.get(REPO, []) == []
    text = summary.read_text()
    assert "does not replace the champion" in text and "challenger lost the gate" in text and "### 🥊 gate" in text, text
    # a rerun answers with the recorded decision: still rejected, same version, nothing moved
    again = run_pipeline(cfg)
    assert (again["decision"], again["model-version"]) == ("rejected", "2"), again


@pytest.mark.docker
def test_failed_smoke_test_opens_no_pull_request(trained, mlflow_server, gh, git_remote, registry, tmp_path, monkeypatch):
    """Gate off, a request body the model refuses: the smoke test fails after the build, before the
    pull request. One StageError; no branch, no pull request, nothing in the registry."""
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    payload = tmp_path / "bad.json"
    payload.write_text('{"dataframe_split": {"columns": ["no_such_column"], "data": [[1]]}}')
    name = f"acme/root-smoke-{uuid.uuid4().hex[:6]}"
    push = PushRequest(context=tmp_path / "unused", image=f"{registry.host}/{name}", username=registry.username,
                       password=registry.password, smoke_payload=payload, smoke_timeout=120)
    cfg = _config(trained, mlflow_server, gh, git_remote, tmp_path, push=push, gate=None, ca_bundle=CA)
    with pytest.raises(StageError) as exc:
        run_pipeline(cfg)
    assert exc.value.line().startswith("smoke test:"), exc.value.line()
    assert set(git_branches(git_remote.origin)) == {"main"} and gh.pulls.get(REPO, []) == []
    assert registry_tags(registry, name) == []
    text = summary.read_text()
    assert "| smoke-test | ❌ | smoke test:" in text and "| open-pr | ⏭️ | an earlier stage failed |" in text, text


def test_repo_path_inside_project_path_is_warned_about(tmp_path, monkeypatch, capsys):
    """Merging the bot's pull request would change the project's fingerprint (so the next run
    trains again): said once, up front. The tracking server is not there, so train fails, and the
    summary table marks train failed and the rest skipped."""
    from mlops_actions.core.errors import MlopsError

    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    cfg = PipelineConfig(project_path=str(SENTIMENT), tracking=trk.Tracking(uri="http://127.0.0.1:9"),
                         pr=PrRequest(source_dir=tmp_path, repo_path="sentiment/models", workdir=SENTIMENT.parent))
    with pytest.raises(MlopsError):
        run_pipeline(cfg)
    assert "repo-path 'sentiment/models' lies inside project-path" in capsys.readouterr().err
    text = summary.read_text()
    assert "| train | ❌ |" in text and "| open-pr | ⏭️ | an earlier stage failed |" in text, text
