"""Drift at serve time (issue 18): render-dockerfile profiles a sample of the training data
(``--reference-data``, as the action passes it), the server (a real gunicorn process with two
workers, no Docker) bins every request into a sliding window shared by its workers, and
/monitoring/drift and /metrics give per-feature PSI that stays near zero for training-like traffic,
rises for shifted traffic, and comes back down once the window has slid past the shift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import served_locally
from mlops_actions.core.paths import resource
from mlops_actions.serving import profile

COLORS = ["red", "green", "blue"]


def _rows(n: int, seed: int, shift: float = 0.0, color: str | None = None) -> pd.DataFrame:
    """Synthetic table rows (no data set is downloaded): two numbers and a colour."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x1": rng.normal(0.0, 1.0, n) + shift,
        "x2": rng.uniform(0.0, 10.0, n),
        "color": [color or c for c in rng.choice(COLORS, n, p=[0.5, 0.3, 0.2])],
    })


def _label(df: pd.DataFrame) -> np.ndarray:
    return ((df["x1"] + 0.1 * df["x2"] + (df["color"] == "red")) > 1.0).astype(int).to_numpy()


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """A logistic regression on two numbers and a category, rendered with a reference sample."""
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("drift")
    train = _rows(2000, 1)
    model = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["color"])], remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(train, _label(train))
    mlflow.sklearn.save_model(model, str(root / "model"), input_example=train.head(3))
    train.head(1000).to_csv(root / "reference.csv", index=False)
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(root / "out.txt"),
           "GITHUB_STEP_SUMMARY": str(root / "summary.md"), "PYTHONPATH": str(resource("scripts"))}
    cmd = [sys.executable, "-m", "mlops_actions", "render-dockerfile", "--model-dir", str(root / "model"),
           "--output-dir", str(root / "ctx"), "--runtime", "native", "--reference-data", str(root / "reference.csv")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "ctx", train.head(1000), (root / "summary.md").read_text()


def _send(url: str, df: pd.DataFrame, batch: int = 100) -> None:
    for start in range(0, len(df), batch):
        part = df.iloc[start : start + batch]
        body = {"dataframe_split": {"columns": list(part.columns), "data": part.values.tolist()}}
        req = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=30).read()


def _drift(url: str, rows: int) -> dict:
    """/monitoring/drift once the window holds ``rows`` rows (binning runs after each answer)."""
    deadline = time.monotonic() + 30
    while True:
        report = json.loads(urllib.request.urlopen(f"{url}/monitoring/drift", timeout=5).read())
        if report["window"]["rows"] >= rows or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def _drift_stage(url: str, out: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The drift stage as the action runs it, reading the running service (``--service-url``)."""
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out / "out.txt"),
           "GITHUB_STEP_SUMMARY": str(out / "summary.md"), "PYTHONPATH": str(resource("scripts"))}
    cmd = [sys.executable, "-m", "mlops_actions", "drift", "--service-url", url, "--output-dir", str(out / "d"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    text = (out / "out.txt").read_text() if (out / "out.txt").is_file() else ""
    return proc, dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_profile_is_bins_and_shares_not_rows(context):
    ctx, reference, summary = context
    built = json.loads((ctx / "drift-profile.json").read_text())
    assert [(f["name"], f["kind"]) for f in built["features"]] == [("x1", "numeric"), ("x2", "numeric"), ("color", "category")]
    assert built["rows"] == 1000 and built["source"] == "reference.csv, 1000 rows"
    for f in built["features"]:
        assert abs(sum(f["ref"]) - 1) < 1e-3 and len(f["ref"]) == profile.width(f)
    assert built["features"][2]["values"] == ["red", "green", "blue"]
    assert set(built["predictions"]["values"]) == {"0", "1"}
    text = (ctx / "drift-profile.json").read_text()
    assert not any(f"{v:.6f}"[:8] in text for v in reference["x1"].head(50))  # no reference value, only deciles
    assert "COPY drift-profile.json /app/drift-profile.json" in (ctx / "Dockerfile").read_text()
    assert "drift reference profile: predicted-class shares of the model on 1000 rows" in summary


def test_psi_is_low_for_training_like_traffic_high_for_shifted_and_the_window_slides(context, tmp_path):
    ctx, _, _ = context
    with served_locally(ctx / "model", ctx / "model-info.json", env={"DRIFT_WINDOW": "2000"}) as url:
        _send(url, _rows(1000, 7))
        calm = _drift(url, 1000)
        psi = {f["name"]: f["psi"] for f in calm["features"]}
        assert max(psi.values()) < 0.1 and calm["predictions"]["psi"] < 0.1 and calm["drifted"] == [], calm
        (tmp_path / "calm").mkdir()
        stage, outputs = _drift_stage(url, tmp_path / "calm", "--min-rows", "500")
        assert stage.returncode == 0 and outputs["drift-detected"] == "false", stage.stdout + stage.stderr
        (tmp_path / "few").mkdir()
        stage, outputs = _drift_stage(url, tmp_path / "few", "--min-rows", "5000")
        assert outputs["drift-detected"] == "false" and "not decided" in (tmp_path / "few" / "summary.md").read_text()

        _send(url, _rows(2500, 8, shift=2.5, color="purple"))
        shifted = _drift(url, 1900)
        psi = {f["name"]: f["psi"] for f in shifted["features"]}
        assert psi["x1"] > 1.0 and psi["color"] > 1.0 and psi["x2"] < 0.2, shifted
        assert shifted["predictions"]["psi"] > 0.25 and {"x1", "color", "prediction"} <= set(shifted["drifted"])
        assert shifted["window"]["rows"] <= 2000 + 2 * 100  # the window slid: the calm rows are gone
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        assert f'mlserve_drift_psi{{feature="x1"}} {psi["x1"]}' in metrics
        assert "mlserve_drift_prediction_psi " in metrics and "mlserve_drift_window_rows " in metrics
        (tmp_path / "shifted").mkdir()
        stage, outputs = _drift_stage(url, tmp_path / "shifted", "--min-rows", "500")
        assert stage.returncode == 0 and outputs["drift-detected"] == "true", stage.stdout + stage.stderr
        assert set(outputs["drifted-features"].split(",")) == {"x1", "color", "prediction"}
        assert "drift detected" in (tmp_path / "shifted" / "summary.md").read_text()

        _send(url, _rows(2500, 9))
        back = _drift(url, 1900)
        assert max(f["psi"] for f in back["features"]) < 0.15 and back["drifted"] == [], back
        print(f"\n[drift] calm {calm['features']}\nshifted {shifted['features']} {shifted['predictions']}")


def test_without_a_profile_drift_is_404_with_the_fix(context, tmp_path):
    ctx, _, _ = context
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"flavor": "sklearn", "runtime": "native"}))
    with served_locally(ctx / "model", info, env={"DRIFT_PROFILE": str(tmp_path / "none.json")}) as url:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}/monitoring/drift", timeout=5)
        assert err.value.code == 404 and "render it with reference-data" in err.value.read().decode()
        stage, _ = _drift_stage(url, tmp_path)
        errors = [line for line in stage.stdout.splitlines() + stage.stderr.splitlines() if line.startswith("::error")]
        assert stage.returncode != 0 and len(errors) == 1 and "service-url" in errors[0] and "reference-data" in errors[0]
        assert not (tmp_path / "d").exists()


def test_bad_drift_setting_is_one_line(context):
    ctx, _, _ = context
    cmd = [sys.executable, "-m", "mlops_actions.serving.server", "--model", str(ctx / "model"), "--port", "0",
           "--info", str(ctx / "model-info.json")]
    for name, value, line in [("DRIFT_WINDOW", "3", "DRIFT_WINDOW=3 is below 8; fix: set DRIFT_WINDOW to an integer >= 8"),
                              ("DRIFT_SAMPLE", "2", "DRIFT_SAMPLE='2' is not a ratio; fix: set DRIFT_SAMPLE to a number from 0 to 1"),
                              ("DRIFT_THRESHOLD", "-1", "DRIFT_THRESHOLD='-1' is not a number above 0; fix: set DRIFT_THRESHOLD to e.g. 0.2")]:
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, name: value}, timeout=60)
        assert (proc.returncode, proc.stderr.strip()) == (2, line)  # one line naming only the bad variable


def test_text_and_tensor_features():
    texts = ["short one", "a somewhat longer review of the phone", "ok"] * 20
    built = profile.build({"review_text": texts + [f"word{i}" for i in range(30)]}, predictions=None)
    assert built["features"][0]["kind"] == "text"  # many distinct values: binned by word count
    monitor = profile.DriftMonitor(built, workers=1, window=1000)
    monitor.add({"review_text": texts}, None, None)
    assert monitor.report(0.2)["features"][0]["psi"] < 0.5
    monitor = profile.DriftMonitor(built, workers=1, window=1000)
    monitor.add({"review_text": [" ".join(["long"] * 40)] * 60}, None, None)
    assert monitor.report(0.2)["drifted"] == ["review_text"]

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (200, 8, 8, 3))
    built = profile.build(None, tensor=images, predictions=[[0.9, 0.1]] * 150 + [[0.2, 0.8]] * 50)
    assert [f["name"] for f in built["features"]] == ["input mean", "input std"]
    monitor = profile.DriftMonitor(built, workers=2, window=1000)
    monitor.add(None, rng.uniform(0, 1, (100, 8, 8, 3)), [[0.9, 0.1]] * 75 + [[0.2, 0.8]] * 25)
    calm = monitor.report(0.2)
    assert calm["drifted"] == [] and calm["predictions"]["psi"] < 0.05
    monitor.add(None, rng.uniform(0.5, 1.5, (400, 8, 8, 3)), [[0.2, 0.8]] * 400)  # brighter images, one class
    assert set(monitor.report(0.2)["drifted"]) == {"input mean", "prediction"}


def test_psi_of_equal_shares_is_zero_and_grows_with_the_shift():
    ref = [0.25, 0.25, 0.25, 0.25]
    assert profile.psi(ref, [25, 25, 25, 25]) == 0
    assert 0 < profile.psi(ref, [30, 25, 25, 20]) < profile.psi(ref, [70, 10, 10, 10])
    assert profile.psi(ref, [0, 0, 0, 0]) is None
