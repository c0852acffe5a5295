"""The lean scoring server as a real pre-forked process (no Docker): every MLflow payload shape,
JSON and CSV, /metrics summed over workers, and the ONNX runtime chosen by render-dockerfile
giving the native model's answers. The image-level checks are in tests/integration/test_lean_image.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_actions.stages.render_dockerfile import render
from mlops_actions.core.errors import InputError
from mlops_actions.core.local_services import free_port
from mlops_actions.core.paths import resource

TEXTS = ["love it, great and fast", "crashes, awful and slow", "great great phone, really great", "awful awful battery"]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A small TF-IDF (bigrams, sublinear tf) + LogisticRegression pipeline, saved by MLflow."""
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    words_pos, words_neg = ["great", "love", "fast", "nice"], ["awful", "slow", "crashes", "broken"]
    rng = np.random.default_rng(0)
    rows = [(" ".join(rng.choice(words_pos if y else words_neg, 4)) + " phone", y) for y in rng.integers(0, 2, 200)]
    df = pd.DataFrame(rows, columns=["review_text", "label"])
    model = Pipeline([("features", ColumnTransformer([("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), "review_text")])),
                      ("clf", LogisticRegression(max_iter=500))])
    model.fit(df[["review_text"]], df["label"])
    root = tmp_path_factory.mktemp("text-model")
    mlflow.sklearn.save_model(model, str(root / "model"), input_example=df[["review_text"]].head(2))
    held = root / "heldout.csv"
    pd.DataFrame({"review_text": TEXTS * 5}).to_csv(held, index=False)
    return root / "model", held, model


def _wait(url: str, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if urllib.request.urlopen(url + "/ping", timeout=1).status == 200:
                return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"server did not start: {proc.stderr.read().decode() if proc.poll() is not None else 'timeout'}")
        time.sleep(0.1)


def _serve(model_dir: Path, info: Path, workers: int = 2, env: dict | None = None):
    port = free_port()
    cmd = [sys.executable, "-m", "mlops_actions.serving.server", "--model", str(model_dir), "--port", str(port),
           "--workers", str(workers), "--info", str(info)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env={**os.environ, "ACCESS_LOG": "0", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    _wait(url, proc)
    return proc, url


def _post(url: str, body, ctype: str = "application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + "/invocations", data=data, headers={"Content-Type": ctype, "Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _metrics(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) (\S+)$", text, re.M)}


PAYLOADS = [
    ({"dataframe_split": {"columns": ["review_text"], "data": [[t] for t in TEXTS]}}, "application/json"),
    ({"dataframe_records": [{"review_text": t} for t in TEXTS]}, "application/json"),
    ({"instances": [{"review_text": t} for t in TEXTS]}, "application/json"),
    ({"inputs": {"review_text": TEXTS}}, "application/json"),
    ({"instances": TEXTS}, "application/json"),
    (("review_text\n" + "\n".join(f'"{t}"' for t in TEXTS) + "\n").encode(), "text/csv"),
]


@pytest.mark.parametrize("runtime", ["native", "onnx"])
def test_every_payload_shape_and_metrics_across_workers(text_model, tmp_path, runtime):
    model_dir, held, model = text_model
    ctx = render(model_dir, tmp_path / "ctx", runtime=runtime, check_data=str(held)).context
    info = json.loads((ctx / "model-info.json").read_text())
    assert info["runtime"] == runtime
    env = {"ONNX_MODEL": str(ctx / "model.onnx")} if runtime == "onnx" else {}
    if runtime == "onnx":
        assert info["onnx_check"]["max_abs_diff"] <= 1e-4 and info["onnx_check"]["rows"] == 2 + len(TEXTS) * 5
        reqs = (ctx / "requirements.txt").read_text().split()
        assert [r.split("==")[0] for r in reqs] == ["numpy", "onnxruntime", "pyyaml"]  # no pandas, no scikit-learn
        assert f"onnxruntime=={__import__('onnxruntime').__version__}" in reqs
    proc, url = _serve(ctx / "model", ctx / "model-info.json", workers=2, env=env)
    try:
        want = model.predict(pd.DataFrame({"review_text": TEXTS})).tolist()
        assert set(want) == {0, 1}
        for body, ctype in PAYLOADS:
            assert _post(url, body, ctype) == (200, {"predictions": want}), body
        assert _post(url, {"dataframe_split": {"columns": ["other"], "data": [["x"]]}})[0] == 400
        assert _post(url, {"nothing": 1})[0] == 400
        assert _post(url, b"x", "text/plain")[0] == 415
        # every request above used a new connection, so both workers answered some; the counters
        # are summed over workers whichever one answers the scrape. A worker counts a request
        # right after sending its answer, so give the last one a moment before scraping.
        time.sleep(0.2)
        for _ in range(3):
            m = _metrics(url)
            assert m['mlserve_requests_total{path="/invocations",status="200"}'] == len(PAYLOADS)
            assert m['mlserve_requests_total{path="/invocations",status="400"}'] == 2
            assert m['mlserve_requests_total{path="/invocations",status="415"}'] == 1
            assert m['mlserve_request_duration_seconds_count{path="/invocations"}'] == len(PAYLOADS) + 3
            assert m['mlserve_request_duration_seconds_bucket{path="/invocations",le="+Inf"}'] == len(PAYLOADS) + 3
            assert m['mlserve_predictions_total{class="0"}'] == len(PAYLOADS) * want.count(0)
            assert m['mlserve_predictions_total{class="1"}'] == len(PAYLOADS) * want.count(1)
            assert m["mlserve_workers"] == 2
        for _ in range(20):  # scrapes count themselves too, whichever worker answers
            _metrics(url)
        time.sleep(0.2)
        assert _metrics(url)['mlserve_requests_total{path="/metrics",status="200"}'] == 3 + 20  # a scrape is counted once answered
    finally:
        proc.terminate()
        proc.wait(10)


def test_runtime_input_is_checked_and_unconvertible_models_fall_back(tmp_path):
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40)})
    y = (x["a"] > 0.5).astype(int)
    model = Pipeline([("log", FunctionTransformer(np.log1p)), ("clf", LogisticRegression())]).fit(x, y)
    mlflow.sklearn.save_model(model, str(tmp_path / "m"), input_example=x.head(2), serialization_format="cloudpickle")
    res = render(tmp_path / "m", tmp_path / "auto", runtime="auto")
    assert res.runtime == "native" and res.runtime_reason.startswith("ONNX not used: skl2onnx cannot convert it")
    assert not (res.context / "model.onnx").exists() and "COPY model.onnx" not in (res.context / "Dockerfile").read_text()
    assert "scikit-learn" in (res.context / "requirements.txt").read_text()
    with pytest.raises(InputError, match="input 'runtime': 'onnx' is not possible for this model: skl2onnx cannot convert"):
        render(tmp_path / "m", tmp_path / "onnx", runtime="onnx")
    with pytest.raises(InputError, match="'fast' is not a runtime"):
        render(tmp_path / "m", tmp_path / "bad", runtime="fast")
    assert not (tmp_path / "onnx").exists() and not (tmp_path / "bad").exists()
    res = render(tmp_path / "m", tmp_path / "native", runtime="native")
    assert res.runtime == "native" and res.runtime_reason == "runtime 'native' asked for"


def test_cli_writes_runtime_outputs_and_summary(text_model, tmp_path):
    model_dir, held, _ = text_model
    out, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary),
           "PYTHONPATH": str(resource("scripts"))}
    proc = subprocess.run([sys.executable, "-m", "mlops_actions", "render-dockerfile", "--model-dir", str(model_dir),
                           "--output-dir", str(tmp_path / "ctx"), "--runtime", "auto", "--onnx-check-data", str(held)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    outputs = out.read_text()
    assert "runtime=onnx" in outputs and "runtime-reason=ONNX equivalent to the native model" in outputs
    assert "runtime **onnx**: ONNX equivalent" in summary.read_text()


def test_conversion_gives_the_same_bytes_in_every_process(text_model, tmp_path):
    """A rerun of the pipeline must rebuild no layer: two renders in processes with different
    string hash seeds write the same model.onnx (the converters' random graph name and set-ordered
    opsets are normalised)."""
    model_dir, held, _ = text_model
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(resource("scripts"))}
        ctx = tmp_path / f"ctx{seed}"
        proc = subprocess.run([sys.executable, "-m", "mlops_actions", "render-dockerfile", "--model-dir", str(model_dir),
                               "--output-dir", str(ctx), "--runtime", "onnx"], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        digests.add(hashlib.sha256((ctx / "model.onnx").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_onnx_regressor_on_numeric_columns_answers_like_sklearn(tmp_path):
    import mlflow
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = pd.DataFrame({"size": rng.normal(size=60), "age": rng.normal(size=60)})
    model = make_pipeline(StandardScaler(), Ridge()).fit(x, 3 * x["size"] - x["age"])
    mlflow.sklearn.save_model(model, str(tmp_path / "m"), input_example=x.head(3))
    res = render(tmp_path / "m", tmp_path / "ctx", runtime="onnx")
    assert res.runtime == "onnx"
    proc, url = _serve(res.context / "model", res.context / "model-info.json", workers=1, env={"ONNX_MODEL": str(res.context / "model.onnx")})
    try:
        code, body = _post(url, {"dataframe_split": {"columns": ["size", "age"], "data": x.head(4).values.tolist()}})
        assert code == 200 and np.allclose(body["predictions"], model.predict(x.head(4)), atol=1e-4)
        csv = ("size,age\n" + "\n".join(f"{a},{b}" for a, b in x.head(2).values)).encode()
        code, body = _post(url, csv, "text/csv")
        assert code == 200 and np.allclose(body["predictions"], model.predict(x.head(2)), atol=1e-4)
    finally:
        proc.terminate()
        proc.wait(10)
