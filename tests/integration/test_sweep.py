"""sweep through the real CLI against a real MLflow server: plan, runs tagged as the train action
tags them (one per point, some reused from an older sweep), select picks the best."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

MLOPS = [sys.executable, "-m", "mlops_actions"]


def mlops(cwd: Path, *args: str, sha: str = "c" * 40) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    out = cwd / f"out-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(out), GITHUB_STEP_SUMMARY=str(cwd / "summary"),
               GITHUB_SHA=sha, GITHUB_WORKSPACE=str(cwd))
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(MLOPS + ["sweep", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    return proc, read_outputs(out)


def read_outputs(path: Path) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: name=value lines and name<<DELIMITER blocks."""
    outputs, lines = {}, path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            outputs[name] = "\n".join(lines[i + 1:end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            outputs[name] = value
            i += 1
    return outputs


def errors(proc) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("::error")]


@pytest.fixture(scope="module")
def swept(mlflow_server, tmp_path_factory):
    """A plan of k = 2..5 and one finished run per point, as the matrix's train jobs leave them."""
    import mlflow
    from sklearn.dummy import DummyClassifier

    cwd = tmp_path_factory.mktemp("sweep")
    proc, plan = mlops(cwd, "--operation", "plan", "--sweep", "{k: [2, 3, 4, 5]}", "--params", "rows=300")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    points = json.loads(plan["points"])
    experiment = f"sweep-{uuid.uuid4().hex[:6]}"
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment(experiment)
    model = DummyClassifier(strategy="most_frequent").fit([[0], [1]], [0, 1])
    silhouette = {"p1": 0.61, "p2": 0.74, "p3": 0.83, "p4": 0.70}
    runs = {}
    for point in points:
        key, value = point["tags"].split("=", 1)
        with mlflow.start_run(tags={key: value}) as run:
            mlflow.log_params(dict(line.split("=", 1) for line in point["params"].splitlines()))
            mlflow.sklearn.log_model(model, name="model")
            mlflow.log_metric("silhouette", silhouette[point["id"]])
            mlflow.log_metric("inertia", 100 - 10 * int(point["params"].split("k=")[1]))
        runs[point["id"]] = run.info.run_id
    mlflow.set_tracking_uri("")
    return {"cwd": cwd, "plan": plan, "points": points, "experiment": experiment, "runs": runs, "server": mlflow_server}


def select(state, *extra: str, metric: str = "silhouette", points: str | None = None):
    return mlops(state["cwd"], "--operation", "select", "--sweep-id", state["plan"]["sweep-id"],
                 "--points", points or state["plan"]["points"], "--metric", metric,
                 "--experiment", state["experiment"], "--tracking-uri", state["server"].url, *extra)


def test_plan_outputs_the_matrix(swept):
    plan = swept["plan"]
    assert plan["size"] == "4" and plan["swept"] == "k" and len(plan["sweep-id"]) == 12
    assert [p["label"] for p in swept["points"]] == ["k=2", "k=3", "k=4", "k=5"]
    assert all(p["params"].startswith("rows=300\n") for p in swept["points"])


def test_select_picks_the_best_point_and_writes_the_table_and_chart(swept):
    proc, out = select(swept)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["run-id"] == swept["runs"]["p3"] and out["best-point"] == "p3" and out["best-params"] == "k=4"
    assert json.loads(out["metrics"])["silhouette"] == pytest.approx(0.83)
    assert out["model-uri"].startswith(("models:/", "runs:/")), out["model-uri"]
    table = out["table"]
    assert "| ★ p3 | k=4 | 0.83 |" in table and len(re.findall(r"^\| p\d \|", table, re.M)) == 3, table
    assert "```mermaid\nxychart-beta" in table and 'x-axis "k" ["2", "3", "4", "5"]' in table
    assert "line [0.61, 0.74, 0.83, 0.7]" in table
    assert "★ p3" in (swept["cwd"] / "summary").read_text()


def test_minimize_picks_the_lowest(swept):
    proc, out = select(swept, "--direction", "minimize", metric="inertia")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["best-point"] == "p4" and out["run-id"] == swept["runs"]["p4"]


def test_a_point_without_a_run_or_the_metric_is_one_line(swept):
    extra = swept["points"] + [{"id": "p5", "label": "k=6", "params": "rows=300\nk=6", "values": {"k": "6"},
                                     "tags": "x=y"}]
    proc, out = select(swept, points=json.dumps(extra))
    assert proc.returncode == 1 and not out.get("run-id")
    [line] = errors(proc)
    assert "point(s) p5" in line and "rerun the workflow" in line
    proc, _ = select(swept, metric="accuracy")
    assert proc.returncode == 2
    [line] = errors(proc)
    assert "input 'metric'" in line and "did not log 'accuracy'" in line and "silhouette" in line


def test_another_commit_is_another_sweep(swept):
    """The same points on another commit: another sweep id, so none of these runs is taken."""
    proc, plan = mlops(swept["cwd"], "--operation", "plan", "--sweep", "{k: [2, 3, 4, 5]}", "--params", "rows=300",
                       sha="d" * 40)
    assert proc.returncode == 0 and plan["sweep-id"] != swept["plan"]["sweep-id"]
    proc, _ = mlops(swept["cwd"], "--operation", "select", "--sweep-id", plan["sweep-id"], "--points", plan["points"],
                    "--metric", "silhouette", "--experiment", swept["experiment"], "--tracking-uri", swept["server"].url)
    assert proc.returncode == 1 and "p1, p2, p3, p4" in errors(proc)[0]


def test_bad_operation_and_sweep_are_one_line(swept):
    proc, _ = mlops(swept["cwd"], "--operation", "search")
    assert proc.returncode == 2 and "input 'operation'" in errors(proc)[0]
    proc, _ = mlops(swept["cwd"], "--operation", "plan", "--sweep", "{k: []}")
    assert proc.returncode == 2 and "input 'sweep'" in errors(proc)[0]
