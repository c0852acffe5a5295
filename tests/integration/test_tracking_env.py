"""MLFLOW_TRACKING_URI and its credentials from the job's ``env:``, through the real console script
the way a workflow step runs it (no --tracking-uri): the run lands on that server, nothing goes to
the workspace sqlite store, and the step output names the server. With nothing set, the sqlite
store in the workspace is used. Loopback servers only."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import requests

from mlops_actions.core.local_services import free_port

MLOPS = str(Path(sys.executable).with_name("mlops"))

FIT = """
    import os, mlflow, mlflow.sklearn, pandas as pd
    from sklearn.linear_model import LogisticRegression
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}); y = [0, 0, 1, 1]
    with mlflow.start_run():
        mlflow.set_tag("child.tracking_uri", os.environ.get("MLFLOW_TRACKING_URI", ""))
        mlflow.set_tag("child.username", os.environ.get("MLFLOW_TRACKING_USERNAME", ""))
        model = LogisticRegression().fit(x, y)
        mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])  # no requirement inference: fast
"""


@functools.cache
def local_env_flags() -> tuple[str, ...]:
    """Train in the test's interpreter (fast, offline) when the CLI has env managers."""
    help_text = subprocess.run([MLOPS, "train", "--help"], capture_output=True, text=True, timeout=60).stdout
    return ("--env-manager", "local") if "--env-manager" in help_text else ()


def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "proj").mkdir(parents=True)
    (ws / "proj" / "fit.py").write_text(textwrap.dedent(FIT), encoding="utf-8")
    (ws / "proj" / "requirements.txt").write_text("mlflow>=3.1,<4\nscikit-learn\npandas\n", encoding="utf-8")
    return ws


def run_train(ws: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    """``mlops train`` as a step would run it: the job's env plus the runner's GITHUB_* files."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DAGSHUB_", "GITHUB_", "INPUT_"))}
    base.update(GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(ws), GITHUB_OUTPUT=str(ws.parent / "gh-output"),
                GITHUB_STEP_SUMMARY=str(ws.parent / "gh-summary"), MLOPS_RETRY_BASE_DELAY="0.05", MLOPS_RETRY_ATTEMPTS="2")
    base.update(env)
    args = [MLOPS, "train", "--project-path", "proj", "--script", "fit.py", "--autolog", "false", "--experiment", "tests-tracking-env",
            *local_env_flags(), *extra]
    return subprocess.run(args, cwd=ws, env=base, capture_output=True, text=True, timeout=600)


def step_outputs(ws: Path) -> dict[str, str]:
    path = ws.parent / "gh-output"
    out: dict[str, str] = {}
    if not path.exists():
        return out
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            name, delimiter = line.split("<<", 1)
            value = []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            out[name] = "\n".join(value)
        else:
            name, _, value = line.partition("=")
            out[name] = value
    return out


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("::error")]


def shown_without_masks(proc: subprocess.CompletedProcess) -> str:
    """Everything the step printed except the ::add-mask:: registrations (which the runner hides)."""
    kept = [line for line in proc.stdout.splitlines() if not line.startswith("::add-mask::")]
    return "\n".join(kept) + proc.stderr


def test_env_uri_and_credentials_are_honoured_and_the_workspace_store_is_untouched(mlflow_auth_server, tmp_path):
    ws = workspace(tmp_path)
    env = {"MLFLOW_TRACKING_URI": mlflow_auth_server.url, "MLFLOW_TRACKING_USERNAME": mlflow_auth_server.username,
           "MLFLOW_TRACKING_PASSWORD": mlflow_auth_server.password}
    proc = run_train(ws, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = step_outputs(ws)
    assert out["tracking-uri"] == mlflow_auth_server.url
    assert out["run-url"].startswith(mlflow_auth_server.url + "/#/experiments/")

    auth = (mlflow_auth_server.username, mlflow_auth_server.password)
    got = requests.get(mlflow_auth_server.url + "/api/2.0/mlflow/runs/get", params={"run_id": out["run-id"]}, auth=auth, timeout=30)
    assert got.status_code == 200, got.text
    run = got.json()["run"]
    assert run["info"]["status"] == "FINISHED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["child.tracking_uri"] == mlflow_auth_server.url  # the training code logged to the same server
    assert tags["child.username"] == mlflow_auth_server.username
    exp = requests.get(mlflow_auth_server.url + "/api/2.0/mlflow/experiments/get", params={"experiment_id": run["info"]["experiment_id"]},
                       auth=auth, timeout=30).json()["experiment"]
    assert exp["name"] == "tests-tracking-env"

    assert not (ws / ".mlops").exists()  # no workspace sqlite store, no artifacts beside it
    assert not (ws / "proj" / "mlruns").exists() and not (ws / "mlruns").exists()
    assert f"::add-mask::{mlflow_auth_server.password}" in proc.stdout
    assert mlflow_auth_server.password not in shown_without_masks(proc)


def test_with_nothing_set_the_workspace_sqlite_store_is_used(tmp_path):
    ws = workspace(tmp_path)
    proc = run_train(ws, {})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = step_outputs(ws)
    db = ws.resolve() / ".mlops" / "mlflow.db"
    assert out["tracking-uri"] == f"sqlite:///{db}"
    assert db.is_file() and out["run-url"] == ""
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").get_run(out["run-id"])
    assert run.info.status == "FINISHED" and run.data.tags["child.tracking_uri"] == f"sqlite:///{db}"


def test_the_tracking_uri_input_still_wins_over_the_env(mlflow_server, tmp_path):
    ws = workspace(tmp_path)
    proc = run_train(ws, {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}, "--tracking-uri", mlflow_server.url)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = step_outputs(ws)
    assert out["tracking-uri"] == mlflow_server.url
    run = mlflow.MlflowClient(tracking_uri=mlflow_server.url).get_run(out["run-id"])
    assert run.data.tags["child.tracking_uri"] == mlflow_server.url  # the child was pointed at the input too


def test_a_wrong_password_is_one_error_line_naming_the_credential_variables(mlflow_auth_server, tmp_path):
    ws = workspace(tmp_path)
    wrong = "wrong-pass-" + os.urandom(6).hex()
    proc = run_train(ws, {"MLFLOW_TRACKING_URI": mlflow_auth_server.url, "MLFLOW_TRACKING_USERNAME": "admin",
                          "MLFLOW_TRACKING_PASSWORD": wrong})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = errors(proc)
    assert len(lines) == 1, proc.stdout
    assert "input 'MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD'" in lines[0]
    assert "HTTP 401" in lines[0] and "credentials refused" in lines[0] and "; fix: " in lines[0]
    assert "Traceback" not in proc.stderr
    assert f"::add-mask::{wrong}" in proc.stdout and wrong not in shown_without_masks(proc)
    assert not (ws / ".mlops").exists() and step_outputs(ws) == {}


def test_a_bad_env_uri_is_named_and_a_token_in_it_never_printed(tmp_path):
    ws = workspace(tmp_path)
    proc = run_train(ws, {"MLFLOW_TRACKING_URI": "ftp://127.0.0.1/x"})
    assert proc.returncode == 2 and len(errors(proc)) == 1
    assert "input 'MLFLOW_TRACKING_URI'" in errors(proc)[0] and "no supported scheme" in errors(proc)[0]

    secret = "tok" + os.urandom(8).hex()
    proc = run_train(ws, {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}/?token={secret}"})
    assert proc.returncode == 2 and len(errors(proc)) == 1, proc.stdout
    assert "input 'MLFLOW_TRACKING_URI'" in errors(proc)[0] and "token=***" in errors(proc)[0]
    assert f"::add-mask::{secret}" in proc.stdout and secret not in shown_without_masks(proc)
    assert secret not in (ws.parent / "gh-summary").read_text()
    assert not (ws / ".mlops").exists()
