"""gate (champion/challenger) through the real CLI against a real MLflow server and its Model
Registry: runs carrying a small logged model and a chosen metric value, gated one after the other."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

MLOPS = [sys.executable, "-m", "mlops_actions"]


@pytest.fixture(scope="module")
def make_run(mlflow_server):
    """``make_run(**metrics) -> run_id``: a finished run logging a tiny sklearn model and the metrics."""
    import mlflow
    from sklearn.dummy import DummyClassifier

    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment("tests-gate")
    model = DummyClassifier(strategy="most_frequent").fit([[0], [1]], [0, 1])

    def make(**metrics) -> str:
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(model, name="model")
            mlflow.log_metrics(metrics)
        return run.info.run_id

    yield make
    mlflow.set_tracking_uri("")


def gate(cwd: Path, server, run_id: str, model: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    out = cwd / f"out-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(out), GITHUB_STEP_SUMMARY=str(cwd / "summary"))
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(MLOPS + ["gate", "--run-id", run_id, "--model-name", model, "--tracking-uri", server.url, *extra],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines()) if out.exists() else {}
    return proc, outputs


def errors(proc) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("::error")]


def client(server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def alias(server, model: str, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client(server).get_model_version_by_alias(model, name).version)
    except MlflowException:
        return None


def test_champion_challenger_sequence(make_run, mlflow_server, tmp_path):
    model = f"gate-{uuid.uuid4().hex[:6]}"
    first = make_run(accuracy=0.90)
    proc, out = gate(tmp_path, mlflow_server, first, model, "--metric", "accuracy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_url = out.pop("run-url")
    assert out == {"promoted": "true", "challenger-value": "0.9", "champion-value": "", "model-version": "1",
                   "champion-version": "", "reason": "no champion yet", "metric": "accuracy", "delta": "",
                   "champion-run-url": "", "champion-run-id": ""}
    assert run_url.endswith(f"/runs/{first}") and run_url.startswith(mlflow_server.url), run_url
    assert alias(mlflow_server, model, "champion") == "1" and alias(mlflow_server, model, "challenger") is None

    # a tie loses: challenger alias, champion stays
    tie = make_run(accuracy=0.90)
    proc, out = gate(tmp_path, mlflow_server, tie, model, "--metric", "accuracy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["promoted"] == "false" and out["model-version"] == "2" and out["champion-version"] == "1"
    assert out["reason"] == "accuracy 0.9 ≤ champion 0.9 (v1)" and out["delta"] == "0"
    assert (alias(mlflow_server, model, "champion"), alias(mlflow_server, model, "challenger")) == ("1", "2")

    # better, but not by the required margin: loses
    small = make_run(accuracy=0.905)
    proc, out = gate(tmp_path, mlflow_server, small, model, "--metric", "accuracy", "--min-improvement", "0.01")
    assert out["promoted"] == "false" and out["reason"] == "accuracy 0.905 ≤ champion 0.9 (v1) + 0.01", proc.stdout
    assert (alias(mlflow_server, model, "champion"), alias(mlflow_server, model, "challenger")) == ("1", "3")

    # a clear win moves the champion alias
    win = make_run(accuracy=0.93)
    proc, out = gate(tmp_path, mlflow_server, win, model, "--metric", "accuracy", "--min-improvement", "0.01")
    assert out["promoted"] == "true" and out["champion-value"] == "0.9" and out["challenger-value"] == "0.93", proc.stdout
    assert out["reason"] == "accuracy 0.93 > champion 0.9 (v1) + 0.01" and out["model-version"] == "4"
    assert out["delta"] == "+0.03" and out["champion-run-url"].endswith(f"/runs/{first}"), out
    assert out["champion-run-id"] == first  # what the pipeline fetches to put it beside the new one in shadow
    assert alias(mlflow_server, model, "champion") == "4"
    tags = client(mlflow_server).get_model_version(model, "4").tags
    assert tags["mlops.gate.decision"] == "promoted" and tags["mlops.gate.champion-version"] == "1"
    assert client(mlflow_server).get_model_version(model, "2").tags["mlops.gate.decision"] == "rejected"
    summary = (tmp_path / "summary").read_text()
    assert "### 🥊 gate" in summary and "accuracy 0.93 > champion 0.9 (v1) + 0.01" in summary

    # rerun of the same run: same version, same recorded decision, nothing moves
    proc, again = gate(tmp_path, mlflow_server, win, model, "--metric", "accuracy", "--min-improvement", "0.01")
    assert proc.returncode == 0 and again == out, proc.stdout + proc.stderr
    # rerun of a losing run does not take the challenger alias back from nothing / keep versions at 4
    proc, again_small = gate(tmp_path, mlflow_server, small, model, "--metric", "accuracy", "--min-improvement", "0.01")
    assert again_small["promoted"] == "false" and again_small["model-version"] == "3"
    assert len(client(mlflow_server).search_model_versions(f"name = '{model}'")) == 4
    assert alias(mlflow_server, model, "champion") == "4"


def test_minimize_and_no_challenger_alias(make_run, mlflow_server, tmp_path):
    model = f"gate-min-{uuid.uuid4().hex[:6]}"
    first = make_run(rmse=0.5)
    assert gate(tmp_path, mlflow_server, first, model, "--metric", "rmse", "--direction", "minimize")[1]["promoted"] == "true"
    worse = make_run(rmse=0.6)
    proc, out = gate(tmp_path, mlflow_server, worse, model, "--metric", "rmse", "--direction", "minimize", "--challenger-alias", "")
    assert out["promoted"] == "false" and out["reason"] == "rmse 0.6 ≥ champion 0.5 (v1)", proc.stdout
    assert alias(mlflow_server, model, "challenger") is None
    better = make_run(rmse=0.4)
    proc, out = gate(tmp_path, mlflow_server, better, model, "--metric", "rmse", "--direction", "minimize", "--min-improvement", "0.05")
    assert out["promoted"] == "true" and out["reason"] == "rmse 0.4 < champion 0.5 (v1) − 0.05", proc.stdout
    assert alias(mlflow_server, model, "champion") == "3"


@pytest.mark.parametrize("args,input_name", [
    (["--metric", "f1"], "metric"),
    (["--metric", "accuracy", "--direction", "up"], "direction"),
    (["--metric", "accuracy", "--min-improvement", "a lot"], "min-improvement"),
    (["--metric", "accuracy", "--min-improvement", "-0.1"], "min-improvement"),
    (["--metric", "accuracy", "--challenger-alias", "champion"], "challenger-alias"),
])
def test_bad_inputs_one_error_line_nothing_registered(make_run, mlflow_server, tmp_path, args, input_name):
    model = f"gate-bad-{uuid.uuid4().hex[:6]}"
    run_id = make_run(accuracy=0.8)
    proc, out = gate(tmp_path, mlflow_server, run_id, model, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = errors(proc)
    assert len(lines) == 1 and f"input '{input_name}'" in lines[0], proc.stdout
    assert out == {}
    assert client(mlflow_server).search_registered_models(f"name = '{model}'") == []


def test_unknown_run(mlflow_server, tmp_path):
    proc, out = gate(tmp_path, mlflow_server, uuid.uuid4().hex, "gate-unknown", "--metric", "accuracy")
    assert proc.returncode == 2 and out == {}
    lines = errors(proc)
    assert len(lines) == 1 and "input 'run-id'" in lines[0] and "no run" in lines[0], proc.stdout
