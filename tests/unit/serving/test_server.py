"""The lean scoring server as a real pre-forked process (no Docker): every MLflow payload shape,
JSON and CSV, /metrics summed over workers, the ONNX runtime chosen by render-dockerfile giving the
native model's answers, and any MLflow model (xgboost, LightGBM, an ONNX-flavor model, a custom
pyfunc with code_paths and params) answering exactly what ``mlflow.pyfunc.load_model(dir).predict``
answers. The image-level checks are in tests/integration/test_lean_image.py."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import save_small_keras_model, serve_locally
from mlops_actions.core.errors import InputError
from mlops_actions.core.paths import resource
from mlops_actions.serving.server import Metrics, Model
from mlops_actions.stages.render_dockerfile import render

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
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer([("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), "review_text")]),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    model.fit(df[["review_text"]], df["label"])
    root = tmp_path_factory.mktemp("text-model")
    mlflow.sklearn.save_model(model, str(root / "model"), input_example=df[["review_text"]].head(2))
    held = root / "heldout.csv"
    pd.DataFrame({"review_text": TEXTS * 5}).to_csv(held, index=False)
    return root / "model", held, model


def _post(url: str, body, ctype: str = "application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        url + "/invocations", data=data, headers={"Content-Type": ctype, "Connection": "close"}
    )
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
        check = info["onnx_check"]
        assert check["max_abs_diff"] <= 1e-4 and check["labels_compared"] is True
        # the input example, 500 rows synthesized around it and the held-out CSV, all compared
        assert check["rows_by_source"]["synthesized"] == 500 and check["rows_by_source"]["check data"] == len(TEXTS) * 5
        assert check["rows"] == sum(check["rows_by_source"].values())
        reqs = (ctx / "requirements.txt").read_text().split()
        assert [r.split("==")[0] for r in reqs] == ["gunicorn", "numpy", "onnxruntime", "pyyaml"]  # no pandas, no scikit-learn
        assert f"onnxruntime=={__import__('onnxruntime').__version__}" in reqs
    proc, url = serve_locally(ctx / "model", ctx / "model-info.json", workers=2, env=env)
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
        # a scrape is counted once answered
        assert _metrics(url)['mlserve_requests_total{path="/metrics",status="200"}'] == 3 + 20
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
    assert (
        not (res.context / "model.onnx").exists() and "COPY model.onnx" not in (res.context / "Dockerfile").read_text()
    )
    assert "scikit-learn" in (res.context / "requirements.txt").read_text()
    with pytest.raises(
        InputError, match="input 'runtime': 'onnx' is not possible for this model: skl2onnx cannot convert"
    ):
        render(tmp_path / "m", tmp_path / "onnx", runtime="onnx")
    with pytest.raises(InputError, match="'fast' is not a runtime"):
        render(tmp_path / "m", tmp_path / "bad", runtime="fast")
    assert not (tmp_path / "onnx").exists() and not (tmp_path / "bad").exists()
    res = render(tmp_path / "m", tmp_path / "native", runtime="native")
    assert res.runtime == "native" and res.runtime_reason == "runtime 'native' asked for"


def _render_cli(model_dir: Path, out: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """``mlops render-dockerfile`` in a process of its own, as the action runs it."""
    cmd = [sys.executable, "-m", "mlops_actions", "render-dockerfile", "--model-dir", str(model_dir)]
    return subprocess.run([*cmd, "--output-dir", str(out), *args], capture_output=True, text=True, env=env)


def test_cli_writes_runtime_outputs_and_summary(text_model, tmp_path):
    model_dir, held, _ = text_model
    out, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
        "PYTHONPATH": str(resource("scripts")),
    }
    proc = _render_cli(model_dir, tmp_path / "ctx", env, "--runtime", "auto", "--onnx-check-data", str(held))
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
        proc = _render_cli(model_dir, ctx, env, "--runtime", "onnx")
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
    proc, url = serve_locally(
        res.context / "model",
        res.context / "model-info.json",
        workers=1,
        env={"ONNX_MODEL": str(res.context / "model.onnx")},
    )
    try:
        code, body = _post(url, {"dataframe_split": {"columns": ["size", "age"], "data": x.head(4).values.tolist()}})
        assert code == 200 and np.allclose(body["predictions"], model.predict(x.head(4)), atol=1e-4)
        csv = ("size,age\n" + "\n".join(f"{a},{b}" for a, b in x.head(2).values)).encode()
        code, body = _post(url, csv, "text/csv")
        assert code == 200 and np.allclose(body["predictions"], model.predict(x.head(2)), atol=1e-4)
    finally:
        proc.terminate()
        proc.wait(10)


# --- any MLflow model: native xgboost, LightGBM and ONNX flavor, sklearn signatures, pyfunc ------


REQS = {"pip_requirements": ["mlflow"]}  # skips MLflow's requirement inference (a subprocess, seconds per model)


def _table(n: int = 260, seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "size": rng.normal(size=n),
            "age": rng.integers(18, 90, n),
            "score": rng.normal(size=n),
            "rate": rng.uniform(size=n),
        }
    )
    return x, ((x["size"] + x["score"] > 0) ^ (x["age"] > 60)).astype(int)


def _bodies(df: pd.DataFrame) -> dict[str, tuple[object, str]]:
    """The same rows as dataframe_split, dataframe_records, inputs (columns) and CSV; Python's own
    float repr, so every value arrives exactly (date-times as ISO strings)."""
    plain = df.copy()
    for col in plain.columns:
        if pd.api.types.is_datetime64_any_dtype(plain[col]):
            plain[col] = plain[col].dt.strftime("%Y-%m-%dT%H:%M:%S")
    cols = {c: [v.item() if hasattr(v, "item") else v for v in plain[c]] for c in plain.columns}
    rows = [list(r) for r in zip(*cols.values(), strict=True)]
    return {
        "dataframe_split": ({"dataframe_split": {"columns": list(cols), "data": rows}}, "application/json"),
        "dataframe_records": (
            {"dataframe_records": [dict(zip(cols, r, strict=True)) for r in rows]},
            "application/json",
        ),
        "inputs": ({"inputs": cols}, "application/json"),
        "csv": (plain.to_csv(index=False).encode(), "text/csv"),
    }


def _mlflow_answer(model, data, params=None):
    """What MLflow's scoring server answers: the pyfunc's predictions through its own serializer."""
    from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

    raw = model.predict(data, params=params) if params is not None else model.predict(data)
    return json.loads(json.dumps(_get_jsonable_obj(raw, pandas_orient="records"), cls=NumpyEncoder))


@contextlib.contextmanager
def _server(model_dir: Path, tmp_path: Path, flavor: str, runtime: str, log: list | None = None):
    """The server for ``model_dir`` with a model-info.json as render-dockerfile writes it; its
    stderr lands in ``log`` once it has stopped."""
    info = tmp_path / f"{flavor}-{runtime}-{model_dir.name}.json"
    info.write_text(json.dumps({"flavor": flavor, "runtime": runtime}))
    proc, url = serve_locally(model_dir, info, workers=1)
    try:
        health = json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())
        assert health == {"status": "ok", "flavor": flavor, "runtime": runtime}
        yield url
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        if log is not None:
            log.append(err.decode())


def _assert_every_body(url: str, df: pd.DataFrame, want, skip: tuple[str, ...] = ()) -> None:
    for name, (body, ctype) in _bodies(df).items():
        if name not in skip:
            assert _post(url, body, ctype) == (200, {"predictions": want}), name


NO_MLFLOW = """
import json, sys
from serve.server import Model
for model_dir, body in json.loads(sys.argv[1]):
    Model(model_dir).predict(body)
assert not [name for name in sys.modules if name.split(".")[0] == "mlflow"], "mlflow was imported"
"""


def _assert_served_without_mlflow(tmp_path: Path, *cases: tuple[Path, dict]) -> None:
    """The native runtimes load and predict with the flavor's library alone, as in the image: the
    serving folder copied as package ``serve`` (what render-dockerfile puts in the image), no mlflow imported."""
    image = tmp_path / "image"
    if not (image / "serve").exists():
        shutil.copytree(resource("scripts/mlops_actions/serving"), image / "serve",
                        ignore=shutil.ignore_patterns("__pycache__"))
    arg = json.dumps([[str(d), body] for d, body in cases])
    proc = subprocess.run([sys.executable, "-c", NO_MLFLOW, arg], cwd=image, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_xgboost_classifier_and_booster_answer_like_mlflow_pyfunc(tmp_path):
    import mlflow
    import xgboost as xgb
    from mlflow.models import infer_signature

    x, y = _table()
    train, held = x.iloc[:200], x.iloc[200:212]
    clf = xgb.XGBClassifier(n_estimators=12, max_depth=3).fit(train, y.iloc[:200])
    signature = infer_signature(train, clf.predict(train), params={"output_margin": False})
    mlflow.xgboost.save_model(clf, str(tmp_path / "clf"), signature=signature, input_example=train.head(2), **REQS)
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "clf"))
    want = _mlflow_answer(pyfunc, held)
    margins = _mlflow_answer(pyfunc, held, {"output_margin": True})
    assert set(want) == {0, 1} and all(isinstance(m, float) for m in margins)
    log: list[str] = []
    with _server(tmp_path / "clf", tmp_path, "xgboost", "native", log) as url:
        _assert_every_body(url, held, want)
        split = _bodies(held)["dataframe_split"][0]
        # params reach XGBClassifier.predict, as MLflow's wrapper passes them; undeclared ones are ignored
        assert _post(url, {**split, "params": {"output_margin": True, "nope": 1}}) == (200, {"predictions": margins})
        code, body = _post(url, {**split, "params": {"output_margin": "yes"}})
        assert code == 400 and "output_margin" in body["message"]
        bad = json.loads(json.dumps(split))
        bad["dataframe_split"]["data"][0][0] = "big"
        code, body = _post(url, bad)
        assert code == 400 and "column 'size'" in body["message"] and "\n" not in body["message"]
        bad["dataframe_split"]["data"][0][0], bad["dataframe_split"]["data"][0][1] = 0.5, 41.5
        code, body = _post(url, bad)
        assert code == 400 and body["message"] == "column 'age' (long): 41.5 is not a whole number"
        code, body = _post(url, {"dataframe_records": [{"size": 1.0, "age": 3}]})
        assert code == 400 and body["message"] == "missing input column(s): score, rate"
        version = json.loads(urllib.request.urlopen(url + "/version", timeout=5).read())
        assert version["engine"].startswith(f"xgboost {xgb.__version__} (XGBClassifier, 1 thread")
    assert "runtime native: xgboost" in log[0] and "params ['nope'] ignored" in log[0]

    # a raw Booster with a tensor signature: numpy float32 [-1, 4]
    arr = x.to_numpy(dtype="float32")
    booster = xgb.train({"max_depth": 3, "objective": "binary:logistic"}, xgb.DMatrix(arr[:200], label=y[:200]), 8)
    mlflow.xgboost.save_model(booster, str(tmp_path / "booster"), input_example=arr[:2], **REQS)
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "booster"))
    want = _mlflow_answer(pyfunc, arr[200:212])
    log = []
    with _server(tmp_path / "booster", tmp_path, "xgboost", "native", log) as url:
        rows = arr[200:212].tolist()
        for body in (
            {"inputs": rows},
            {"instances": rows},
            {"dataframe_split": {"data": rows}},
            {"inputs": rows, "params": {"ignored": True}},
        ):
            assert _post(url, body) == (200, {"predictions": want}), body
        code, body = _post(url, {"inputs": [r[:3] for r in rows]})
        assert code == 400 and body["message"] == "input: shape [12, 3] does not match the signature's [-1, 4]"
    assert "params ['ignored'] ignored: the model's signature declares no params" in log[0]
    _assert_served_without_mlflow(tmp_path, (tmp_path / "clf", split), (tmp_path / "booster", {"inputs": rows}))


def test_lightgbm_classifier_and_booster_answer_like_mlflow_pyfunc(tmp_path):
    import lightgbm as lgb
    import mlflow

    x, y = _table(seed=5)
    train, held = x.iloc[:200], x.iloc[200:215]
    labels = y.map({0: "no", 1: "yes"})
    clf = lgb.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1).fit(train, labels.iloc[:200])
    mlflow.lightgbm.save_model(
        clf, str(tmp_path / "clf"), input_example=train.head(2), serialization_format="cloudpickle", **REQS
    )
    want = _mlflow_answer(mlflow.pyfunc.load_model(str(tmp_path / "clf")), held)
    assert set(want) == {"no", "yes"}
    with _server(tmp_path / "clf", tmp_path, "lightgbm", "native") as url:
        _assert_every_body(url, held, want)
        time.sleep(0.2)
        m = _metrics(url)
        assert m['mlserve_predictions_total{class="yes"}'] == 4 * want.count("yes")  # string labels, by name

    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1}, lgb.Dataset(train, y.iloc[:200]), 10)
    mlflow.lightgbm.save_model(booster, str(tmp_path / "booster"), input_example=train.head(2), **REQS)
    want = _mlflow_answer(mlflow.pyfunc.load_model(str(tmp_path / "booster")), held)
    assert all(0 < p < 1 for p in want)
    with _server(tmp_path / "booster", tmp_path, "lightgbm", "native") as url:
        _assert_every_body(url, held, want)
    body = _bodies(held)["dataframe_records"][0]
    _assert_served_without_mlflow(tmp_path, (tmp_path / "clf", body), (tmp_path / "booster", body))


def test_onnx_flavor_model_answers_like_mlflow_pyfunc(tmp_path):
    import mlflow
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    x, _ = _table(seed=7)
    x = x[["size", "score", "rate"]]
    ridge = Ridge().fit(x.iloc[:200], 2 * x["size"].iloc[:200] - x["rate"].iloc[:200])
    onx = convert_sklearn(ridge, initial_types=[("features", FloatTensorType([None, 3]))], target_opset=17)
    mlflow.onnx.save_model(onx, str(tmp_path / "onnx"), input_example=x.head(2), **REQS)
    held = x.iloc[200:210]
    want = _mlflow_answer(mlflow.pyfunc.load_model(str(tmp_path / "onnx")), held)
    assert list(want[0]) == ["variable"] and len(want) == 10  # a DataFrame of the outputs: records
    with _server(tmp_path / "onnx", tmp_path, "onnx", "native") as url:
        _assert_every_body(url, held, want)
    _assert_served_without_mlflow(tmp_path, (tmp_path / "onnx", _bodies(held)["inputs"][0]))


def test_sklearn_signature_datetime_and_optional_columns(tmp_path):
    """A datetime column arrives as nanoseconds like MLflow's (the tree splits on them) and an
    optional column may be left out."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(11)
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 365, 240), unit="s")
    df = pd.DataFrame({"when": when, "x": rng.normal(size=240), "note": rng.choice(["a", "b"], 240)})
    target = df["when"].dt.month + df["x"]
    model = make_pipeline(
        ColumnTransformer(
            [
                ("when", FunctionTransformer(np.asarray, kw_args={"dtype": "int64"}), ["when"]),
                ("x", "passthrough", ["x"]),
            ]
        ),
        DecisionTreeRegressor(max_depth=5, random_state=0),
    ).fit(df.iloc[:200].assign(when=df["when"].iloc[:200].astype("datetime64[ns]")), target.iloc[:200])
    signature = ModelSignature(
        inputs=Schema([ColSpec("datetime", "when"), ColSpec("double", "x"), ColSpec("string", "note", required=False)])
    )
    mlflow.sklearn.save_model(
        model, str(tmp_path / "m"), signature=signature, serialization_format="cloudpickle", **REQS
    )
    held = df.iloc[200:212][["when", "x"]]  # no "note"
    want = _mlflow_answer(mlflow.pyfunc.load_model(str(tmp_path / "m")), held)
    assert len(set(want)) > 3
    with _server(tmp_path / "m", tmp_path, "sklearn", "native") as url:
        _assert_every_body(url, held, want)
        code, body = _post(url, {"dataframe_records": [{"when": "someday", "x": 1.0}]})
        assert code == 400 and body["message"].startswith("column 'when' (datetime): ")
        code, body = _post(url, {"dataframe_records": [{"x": 1.0, "note": "a"}]})
        assert code == 400 and body["message"] == "missing input column(s): when"


HELPER = """
import mlflow.pyfunc
import numpy as np
import pandas as pd


def score(frame, scale):
    return frame["a"] * scale + frame["b"] - frame["n"]


class Scorer(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        params = params or {}
        values = score(model_input, params.get("scale", 1.0))
        if params.get("as_frame"):
            return pd.DataFrame({"value": values, "high": values > 0})
        return np.asarray(values)
"""


def test_pyfunc_model_with_code_paths_and_params_answers_like_mlflow(tmp_path):
    import mlflow
    from mlflow.models import infer_signature

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "scorer_helper_7f3.py").write_text(HELPER)
    sys.path.insert(0, str(tmp_path / "code"))
    try:
        import scorer_helper_7f3  # the class is pickled by reference: the server imports it from code_paths
    finally:
        sys.path.remove(str(tmp_path / "code"))
    rng = np.random.default_rng(13)
    df = pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30), "n": rng.integers(0, 5, 30)})
    signature = infer_signature(df, np.zeros(30), params={"scale": 1.0, "as_frame": False})
    mlflow.pyfunc.save_model(
        str(tmp_path / "m"),
        python_model=scorer_helper_7f3.Scorer(),
        signature=signature,
        code_paths=[str(tmp_path / "code" / "scorer_helper_7f3.py")],
        **REQS,
    )
    del sys.modules["scorer_helper_7f3"]
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    held = df.iloc[20:]
    want = _mlflow_answer(pyfunc, held)
    scaled = _mlflow_answer(pyfunc, held, {"scale": 3.0, "as_frame": True})
    assert scaled != want and isinstance(scaled[0], dict) and set(scaled[0]) == {"value", "high"}
    log: list[str] = []
    with _server(tmp_path / "m", tmp_path, "python_function", "pyfunc", log) as url:
        _assert_every_body(url, held, want)
        split = _bodies(held)["dataframe_split"][0]
        assert _post(url, {**split, "params": {"scale": 3.0, "as_frame": True}}) == (200, {"predictions": scaled})
        code, body = _post(url, {**split, "params": {"scale": "big"}})
        assert code == 400 and body["message"].startswith("Invalid parameters found") and "scale" in body["message"]
        code, body = _post(url, {"dataframe_split": {"columns": ["a"], "data": [[1.0]]}})
        assert code == 400 and "missing inputs" in body["message"]
        time.sleep(0.2)
        assert _metrics(url)['mlserve_requests_total{path="/invocations",status="400"}'] == 2
    assert "runtime pyfunc: mlflow " in log[0]
    with pytest.raises(
        RuntimeError, match="flavor 'python_function' has no native runtime; serve it with runtime 'pyfunc'"
    ):
        Model(tmp_path / "m")


def test_class_counts_take_records_and_dicts_of_outputs():
    metrics = Metrics(1, ["no", "yes"])
    metrics.count_predictions([{"label": "yes", "p": [0.2, 0.8]}, {"label": "no"}, {"p": {"a": 1}}])
    metrics.count_predictions({"label": ["yes", "yes"], "probabilities": [[0.1, 0.9], [0.3, 0.7]]})
    metrics.count_predictions("an LLM's text")
    metrics.count_predictions(None)
    text = metrics.render()
    assert 'mlserve_predictions_total{class="yes"} 3' in text and 'mlserve_predictions_total{class="no"} 1' in text
    assert 'class="other"' not in text


@pytest.mark.parametrize("runtime", ["native", "onnx"])
def test_a_keras_tensor_model_takes_every_mlflow_format_as_mlflow_pyfunc_does(tmp_path, runtime):
    """An unnamed [-1, 4] tensor signature: instances/inputs as the list they are, and
    dataframe_split, dataframe_records and CSV as the frame's rows, which is how mlflow.pyfunc reads
    them. The answers equal the pyfunc's on held-out rows, served natively and through the ONNX
    conversion render-dockerfile checked."""
    if runtime == "onnx":
        pytest.importorskip("tf2onnx")
    pytest.importorskip("keras")
    import mlflow

    rng = np.random.default_rng(1)
    save_small_keras_model(tmp_path / "m", rng, **REQS)
    held = rng.normal(size=(6, 4)).astype("float32")
    want = np.asarray(mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(held))
    frame = pd.DataFrame(held, columns=["a", "b", "c", "d"])
    assert np.allclose(np.asarray(mlflow.pyfunc.load_model(str(tmp_path / "m")).predict(frame)), want, atol=1e-6)
    ctx = render(tmp_path / "m", tmp_path / "ctx", runtime=runtime).context
    env = {"ONNX_MODEL": str(ctx / "model.onnx")} if runtime == "onnx" else {}
    rows = held.tolist()
    bodies = [
        ({"instances": rows}, "application/json"),
        ({"inputs": rows}, "application/json"),
        ({"dataframe_split": {"columns": list(frame.columns), "data": rows}}, "application/json"),
        ({"dataframe_split": {"data": rows}}, "application/json"),
        ({"dataframe_records": frame.to_dict(orient="records")}, "application/json"),
        ({"dataframe_split": {"columns": ["pixels"], "data": [[r] for r in rows]}}, "application/json"),
        (("a,b,c,d\n" + "\n".join(",".join(repr(v) for v in r) for r in rows) + "\n").encode(), "text/csv"),
    ]
    proc, url = serve_locally(ctx / "model", ctx / "model-info.json", workers=1, env=env)
    try:
        for body, ctype in bodies:
            status, answer = _post(url, body, ctype)
            assert status == 200, (body, answer)
            assert np.allclose(np.asarray(answer["predictions"]), want, atol=1e-5), body
        status, answer = _post(url, {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}})
        assert status == 400 and "[1, 2]" in answer["message"] and "4" in answer["message"], answer
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
