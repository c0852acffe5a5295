"""Any MLflow model gets a serving image: per flavor, from the user's entry point to the running
image, against the real Docker engine.

For each model (trained here on synthetic rows; answers checked on held-out rows drawn with another
seed) the ``mlops render-dockerfile --runtime auto`` console script runs as the action runs it
(``GITHUB_ACTIONS``, outputs parsed from ``$GITHUB_OUTPUT``), the context is built with the default
base image (python:3.11-slim, the model's Python) and run with a read-only root file system, and
its ``/invocations`` answers are compared with what MLflow's own scoring protocol gives for
``mlflow.pyfunc.load_model(model_dir).predict(...)`` (``predictions_to_json``):

1. xgboost (``XGBClassifier``, 3 classes): runtime ``native``; equal answers for
   ``dataframe_split``, ``dataframe_records`` and CSV; ``xgboost-cpu`` in the requirements; no
   mlflow in the image (nor scikit-learn unless the model's requirements list it); ``/health`` and
   ``/version`` say runtime native, flavor xgboost.
2. lightgbm (a ``Booster``): runtime ``native``; the image loads it (libgomp1 is there) and answers
   within 1e-9 of pyfunc.
3. a custom ``mlflow.pyfunc.PythonModel`` whose predict imports a helper module of a package
   directory shipped with ``code_paths`` (importable nowhere else), with a ``threshold`` param in
   its signature: runtime ``pyfunc``; equal answers; ``"params": {"threshold": 0.9}`` changes the
   answer exactly as ``predict(..., params=...)`` does; an invalid param answers 400, not 500; the
   image has mlflow-skinny at the model's mlflow version, not mlflow.
4. the onnx flavor (a LogisticRegression through skl2onnx, ``mlflow.onnx.save_model``): runtime
   ``native`` (onnxruntime, no mlflow in the image), answers equal pyfunc's (label and probability).
5. statsmodels (a ``Logit`` results object) and 6. catboost (a 3-class ``CatBoostClassifier``), each
   saved by its MLflow flavor with the signature inferred from the input example: no native loader,
   so runtime ``pyfunc`` with a reason naming the flavor; mlflow-skinny at the model's mlflow
   version, not mlflow, and the flavor library at the model's version; answers equal pyfunc's
   (statsmodels' probabilities within 1e-9, catboost's labels exactly).
7. a model whose MLmodel declares one flavor and no python_function: the CLI exits non-zero with one
   error line naming the input and the flavor, and writes nothing.

Build times and image sizes are printed (``-s``). Images are built one after another and removed at
the end without pruning their parents (the layer cache stays)."""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import serve_image

pytestmark = pytest.mark.docker
CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
FEATURES = ["a", "b", "c", "d"]
TRAIN_ROWS, HELD_ROWS = 300, 40
TRAIN_SEED, HELD_SEED = 20261130, 77
PROBE = (
    "import importlib.metadata as m, importlib.util as u, json; print(json.dumps({"
    "'modules': sorted(n for n in ('mlflow', 'sklearn', 'xgboost', 'lightgbm', 'onnxruntime') if u.find_spec(n)), "
    "'dists': {d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}}))"
)


def _mlops() -> list[str]:
    """The ``mlops`` console script next to this interpreter (as installed), else the module."""
    script = Path(sys.executable).parent / "mlops"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mlops_actions"]


def run_cli(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """Run ``mlops`` as a workflow step does; (process, its $GITHUB_OUTPUT values)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLFLOW_", "RUNNER_"))}
    out_file, summary = cwd / "gh-output", cwd / "gh-summary"
    out_file.unlink(missing_ok=True)
    env.update(GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(out_file), GITHUB_STEP_SUMMARY=str(summary))
    proc = subprocess.run(_mlops() + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return proc, parse_outputs(out_file.read_text(encoding="utf-8") if out_file.is_file() else "")


def parse_outputs(text: str) -> dict[str, str]:
    """``name=value`` and ``name<<DELIM ... DELIM`` records of a $GITHUB_OUTPUT file."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body = []
            for more in lines:
                if more == delim:
                    break
                body.append(more)
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def rows(n: int, seed: int) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(seed).normal(size=(n, len(FEATURES))), columns=FEATURES)


@pytest.fixture(scope="module")
def train_rows() -> pd.DataFrame:
    return rows(TRAIN_ROWS, TRAIN_SEED)


@pytest.fixture(scope="module")
def held_out() -> pd.DataFrame:
    """Rows the models never saw (another seed)."""
    return rows(HELD_ROWS, HELD_SEED)


def mlflow_answer(model_dir: Path, frame: pd.DataFrame, params: dict | None = None) -> dict:
    """What MLflow's scoring protocol answers: pyfunc's predict, serialized by its scoring server."""
    import mlflow.pyfunc
    from mlflow.pyfunc.scoring_server import predictions_to_json

    predictions = mlflow.pyfunc.load_model(str(model_dir)).predict(frame, params=params)
    buf = io.StringIO()
    predictions_to_json(predictions, buf)
    return json.loads(buf.getvalue())


def same(got, want, tol: float = 0.0, where: str = "predictions") -> None:
    """``got`` equals ``want`` as JSON: same shape, same types (int is not float), floats within tol."""
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        assert abs(got - want) <= tol, f"{where}: {got!r} != {want!r} (tolerance {tol})"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {got!r} != {want!r}"
        for key in want:
            same(got[key], want[key], tol, f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {str(got)[:200]} != {str(want)[:200]}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, tol, f"{where}[{i}]")
    else:
        assert type(got) is type(want) and got == want, f"{where}: {got!r} != {want!r}"


def post(url: str, body: bytes, ctype: str = "application/json") -> tuple[int, dict]:
    req = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def get(url: str, path: str) -> dict:
    with urllib.request.urlopen(f"{url}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def split_body(frame: pd.DataFrame, **extra) -> bytes:
    return json.dumps(
        {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}, **extra}
    ).encode()


def records_body(frame: pd.DataFrame, **extra) -> bytes:
    return json.dumps({"dataframe_records": frame.to_dict(orient="records"), **extra}).encode()


@dataclass
class Built:
    """A model rendered by the CLI and built: its outputs, context, tag and what the image holds."""

    name: str
    model_dir: Path
    outputs: dict
    context: Path
    tag: str
    image: object
    probe: dict
    url: str = ""


@pytest.fixture(scope="module")
def build(docker_engine, tmp_path_factory):
    """``build(name, model_dir)``: render with the CLI (runtime auto), build, probe; the images are
    removed at the end of the module (untagged, their parent layers kept as build cache)."""
    stats: list[str] = []
    tags: list[str] = []

    def _build(name: str, model_dir: Path) -> Built:
        work = tmp_path_factory.mktemp(f"render-{name}")
        started = time.monotonic()
        proc, outputs = run_cli(
            [
                "render-dockerfile",
                "--model-dir",
                str(model_dir),
                "--output-dir",
                str(work / "image"),
                "--ca-bundle",
                CA,
                "--runtime",
                "auto",
                "--version",
                "1.0.0",
            ],
            work,
        )
        assert proc.returncode == 0, f"render-dockerfile failed for {name}: {proc.stdout}{proc.stderr}"
        rendered = time.monotonic()
        tag = f"mlops-actions-test/flavor-{name}:{secrets.token_hex(4)}"
        image, _ = docker_engine.images.build(path=outputs["context"], tag=tag, rm=True)
        tags.append(tag)
        built = time.monotonic()
        probe = json.loads(
            docker_engine.containers.run(tag, entrypoint=["python3", "-c", PROBE], remove=True).decode().strip()
        )
        stats.append(
            f"{name}: runtime {outputs.get('runtime')}, render {rendered - started:.1f}s, "
            f"build {built - rendered:.1f}s, image {image.attrs['Size'] / 1e6:.0f} MB"
        )
        print(f"\n[test_flavors] {stats[-1]}", file=sys.stderr)
        return Built(name, model_dir, outputs, Path(outputs["context"]), tag, image, probe)

    yield _build
    print("\n[test_flavors] " + "; ".join(stats), file=sys.stderr)
    for tag in tags:
        try:
            docker_engine.images.remove(tag, force=True, noprune=True)
        except Exception as exc:  # noqa: BLE001 - clean-up must try every image
            print(f"[test_flavors] could not remove {tag}: {exc}", file=sys.stderr)


def served(build, name: str, model_dir: Path, engine):
    """Build ``model_dir``'s image and run it read-only for the module's tests (fixture body)."""
    built = build(name, model_dir)
    with serve_image(engine, built.tag, read_only=True) as url:
        built.url = url
        yield built


def model_requirements(model_dir: Path) -> set[str]:
    from packaging.requirements import Requirement

    lines = (model_dir / "requirements.txt").read_text().splitlines()
    return {Requirement(line).name.lower() for line in lines if line.strip() and not line.startswith("#")}


def rendered_requirements(built: Built) -> dict[str, str]:
    from packaging.requirements import Requirement

    reqs = {}
    for line in (built.context / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            reqs[req.name.lower().replace("_", "-")] = line.strip()
    return reqs


def check_native_image(built: Built, flavor: str, module: str) -> None:
    assert built.outputs["runtime"] == "native", built.outputs
    assert built.outputs["runtime-reason"].strip(), built.outputs
    assert built.outputs["flavor"] == flavor
    assert built.image.labels["io.github.mlops-actions.runtime"] == "native"
    assert not any(name.startswith("mlflow") for name in rendered_requirements(built)), rendered_requirements(built)
    modules = built.probe["modules"]
    assert module in modules and "mlflow" not in modules, built.probe["modules"]
    if "scikit-learn" not in model_requirements(built.model_dir):
        assert "sklearn" not in modules, built.probe["modules"]


def mlmodel(built: Built) -> dict:
    import yaml

    return yaml.safe_load((built.model_dir / "MLmodel").read_text())


def check_pyfunc_image(built: Built, flavor: str) -> None:
    """Runtime pyfunc, and why (the reason names the flavor); mlflow-skinny at the model's mlflow
    version in the requirements and in the image; the full mlflow package (server, UI) stays out."""
    outputs, dists = built.outputs, built.probe["dists"]
    mlflow_version = mlmodel(built)["mlflow_version"]
    reason = outputs["runtime-reason"]
    assert outputs["runtime"] == "pyfunc" and outputs["flavor"] == flavor, outputs
    assert flavor in reason and f"mlflow-skinny {mlflow_version}" in reason, outputs
    assert built.image.labels["io.github.mlops-actions.runtime"] == "pyfunc"
    assert rendered_requirements(built).get("mlflow-skinny") == f"mlflow-skinny=={mlflow_version}"
    assert dists.get("mlflow-skinny") == mlflow_version, sorted(dists)
    assert "mlflow" not in dists, sorted(dists)


def check_flavor_library(built: Built, flavor: str) -> None:
    """The image installs the flavor's library at the version MLmodel records (``<flavor>_version``)."""
    version = mlmodel(built)["flavors"][flavor][f"{flavor}_version"]
    assert rendered_requirements(built).get(flavor) == f"{flavor}=={version}", rendered_requirements(built)
    assert built.probe["dists"].get(flavor) == version, sorted(built.probe["dists"])


def check_answers(built: Built, frame: pd.DataFrame, want: dict, tol: float = 0.0) -> None:
    """The image answers ``want`` for ``frame`` sent as dataframe_split and as dataframe_records."""
    for label, body in (("dataframe_split", split_body(frame)), ("dataframe_records", records_body(frame))):
        status, got = post(built.url, body)
        assert status == 200, (label, got)
        same(got, want, tol, where=label)


def check_health(url: str, flavor: str, runtime: str) -> None:
    health = get(url, "/health")
    assert (health["status"], health["flavor"], health["runtime"]) == ("ok", flavor, runtime), health
    version = get(url, "/version")
    assert (version["flavor"], version["runtime"]) == (flavor, runtime), version


# --- 1. xgboost ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xgboost_model(train_rows, tmp_path_factory) -> Path:
    import mlflow.xgboost
    import xgboost

    score = train_rows["a"] + 0.5 * train_rows["b"] - 0.3 * train_rows["c"]
    labels = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))  # 3 balanced classes
    clf = xgboost.XGBClassifier(n_estimators=25, max_depth=3, n_jobs=1).fit(train_rows, labels)
    path = tmp_path_factory.mktemp("xgboost") / "model"
    mlflow.xgboost.save_model(clf, str(path), input_example=train_rows.head(3))
    return path


@pytest.fixture(scope="module")
def xgboost_served(build, xgboost_model, docker_engine):
    yield from served(build, "xgboost", xgboost_model, docker_engine)


def test_xgboost_is_native_with_xgboost_cpu_and_no_mlflow(xgboost_served):
    check_native_image(xgboost_served, "xgboost", "xgboost")
    reqs = rendered_requirements(xgboost_served)
    assert "xgboost-cpu" in reqs and "xgboost" not in reqs, reqs  # the CPU wheel, not the one with CUDA libraries


def test_xgboost_answers_like_pyfunc_in_every_format(xgboost_served, held_out):
    url, want = xgboost_served.url, mlflow_answer(xgboost_served.model_dir, held_out)
    assert len(set(want["predictions"])) == 3, want  # the held-out rows reach all classes
    for label, body, ctype in (
        ("dataframe_split", split_body(held_out), "application/json"),
        ("dataframe_records", records_body(held_out), "application/json"),
        ("csv", held_out.to_csv(index=False).encode(), "text/csv"),
    ):
        status, got = post(url, body, ctype)
        assert status == 200, (label, got)
        same(got, want, where=label)
    check_health(url, "xgboost", "native")


# --- 2. lightgbm -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lightgbm_model(train_rows, tmp_path_factory) -> Path:
    import lightgbm
    import mlflow.lightgbm

    target = 2 * train_rows["a"] + np.sin(train_rows["b"]) - train_rows["c"] * train_rows["d"]
    booster = lightgbm.train(
        {"objective": "regression", "num_leaves": 8, "verbose": -1, "num_threads": 1},
        lightgbm.Dataset(train_rows, target),
        num_boost_round=30,
    )
    path = tmp_path_factory.mktemp("lightgbm") / "model"
    mlflow.lightgbm.save_model(booster, str(path), input_example=train_rows.head(3))
    return path


@pytest.fixture(scope="module")
def lightgbm_served(build, lightgbm_model, docker_engine):
    yield from served(build, "lightgbm", lightgbm_model, docker_engine)


def test_lightgbm_is_native_and_loads_with_libgomp(lightgbm_served, docker_engine):
    check_native_image(lightgbm_served, "lightgbm", "lightgbm")
    assert "lightgbm" in rendered_requirements(lightgbm_served)
    # lightgbm's shared library links libgomp.so.1, which python:3.11-slim does not have
    gomp = "import ctypes, lightgbm; ctypes.CDLL('libgomp.so.1'); print('ok')"
    out = docker_engine.containers.run(lightgbm_served.tag, entrypoint=["python3", "-c", gomp], remove=True)
    assert out.decode().strip() == "ok"


def test_lightgbm_answers_like_pyfunc(lightgbm_served, held_out):
    check_answers(lightgbm_served, held_out, mlflow_answer(lightgbm_served.model_dir, held_out), tol=1e-9)
    check_health(lightgbm_served.url, "lightgbm", "native")


# --- 3. custom pyfunc ------------------------------------------------------------------------

CODE_PACKAGE = "flavors_test_code"  # a directory shipped with code_paths: a package under the model's code/
HELPER = '''"""Shipped with the model (code_paths); imported by ThresholdModel.predict."""
import numpy as np


def scores(x, w):
    return 1.0 / (1.0 + np.exp(-(np.asarray(x, dtype="float64") @ w[:-1] + w[-1])))
'''
PYFUNC = '''"""A PythonModel that needs its helper module at predict time."""
import mlflow.pyfunc


class ThresholdModel(mlflow.pyfunc.PythonModel):
    def __init__(self, weights, columns):
        self.weights = weights
        self.columns = columns

    def predict(self, context, model_input, params=None):
        from flavors_test_code import helper

        threshold = (params or {}).get("threshold", 0.5)
        return (helper.scores(model_input[self.columns], self.weights) >= threshold).astype("int64")
'''


@pytest.fixture(scope="module")
def pyfunc_model(train_rows, tmp_path_factory) -> Path:
    import importlib

    import mlflow.pyfunc
    from mlflow.models import infer_signature

    root = tmp_path_factory.mktemp("pyfunc")
    code = root / CODE_PACKAGE
    code.mkdir()
    (code / "__init__.py").write_text("")
    (code / "helper.py").write_text(HELPER)
    (code / "model.py").write_text(PYFUNC)
    labels = (train_rows["a"] - train_rows["b"] + 0.5 * train_rows["d"] > 0).astype(int)
    design = np.c_[train_rows.values, np.ones(len(train_rows))]
    weights = 4 * np.linalg.lstsq(design, 2 * labels - 1, rcond=None)[0]  # least squares, scaled to spread scores
    sys.path.insert(0, str(root))
    try:
        model = importlib.import_module(f"{CODE_PACKAGE}.model").ThresholdModel(weights, FEATURES)
        signature = infer_signature(train_rows, model.predict(None, train_rows), params={"threshold": 0.5})
        path = root / "model"
        mlflow.pyfunc.save_model(
            str(path), python_model=model, code_paths=[str(code)], signature=signature, input_example=train_rows.head(3)
        )
    finally:  # from here on the package comes from the model's code/ folder only
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == CODE_PACKAGE or m.startswith(CODE_PACKAGE + ".")]:
            del sys.modules[name]
    assert (path / "code" / CODE_PACKAGE / "helper.py").is_file()
    return path


@pytest.fixture(scope="module")
def pyfunc_served(build, pyfunc_model, docker_engine):
    yield from served(build, "pyfunc", pyfunc_model, docker_engine)


def test_pyfunc_runtime_with_mlflow_skinny_not_mlflow(pyfunc_served):
    check_pyfunc_image(pyfunc_served, "python_function")


def test_pyfunc_answers_and_params_like_pyfunc(pyfunc_served, held_out):
    url, model_dir = pyfunc_served.url, pyfunc_served.model_dir
    want = mlflow_answer(model_dir, held_out)
    strict = mlflow_answer(model_dir, held_out, params={"threshold": 0.9})
    assert want != strict and 0 < sum(strict["predictions"]) < sum(want["predictions"])  # the param matters here
    check_answers(pyfunc_served, held_out, want)
    status, got = post(url, split_body(held_out, params={"threshold": 0.9}))
    assert status == 200, got
    same(got, strict, where="params threshold 0.9")
    status, got = post(url, split_body(held_out, params={"threshold": "very high"}))
    assert status == 400, (status, got)
    assert "threshold" in json.dumps(got), got
    check_health(url, "python_function", "pyfunc")


# --- 4. onnx flavor --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_model(train_rows, tmp_path_factory) -> Path:
    import mlflow.onnx
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    labels = (train_rows["a"] + train_rows["b"] - train_rows["c"] > 0).astype(int)
    clf = LogisticRegression().fit(train_rows.values.astype("float32"), labels)
    proto = to_onnx(
        clf,
        initial_types=[("float_input", FloatTensorType([None, len(FEATURES)]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    # outputs of one row per input row (what pyfunc's DataFrame answer needs): the label and P(class 1)
    graph = proto.graph
    graph.initializer.append(helper.make_tensor("positive_class", TensorProto.INT64, [], [1]))
    graph.node.append(helper.make_node("Gather", ["probabilities", "positive_class"], ["probability"], axis=1))
    graph.output.remove(next(o for o in graph.output if o.name == "probabilities"))
    graph.output.append(helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None]))
    onnx.checker.check_model(proto)
    path = tmp_path_factory.mktemp("onnx") / "model"
    mlflow.onnx.save_model(proto, str(path), input_example=train_rows.head(3))
    return path


@pytest.fixture(scope="module")
def onnx_served(build, onnx_model, docker_engine):
    yield from served(build, "onnx", onnx_model, docker_engine)


def test_onnx_flavor_is_native_onnxruntime(onnx_served):
    check_native_image(onnx_served, "onnx", "onnxruntime")


def test_onnx_flavor_answers_like_pyfunc(onnx_served, held_out):
    want = mlflow_answer(onnx_served.model_dir, held_out)
    assert {row["label"] for row in want["predictions"]} == {0, 1}, want
    check_answers(onnx_served, held_out, want)  # the same onnxruntime version: the same float32 results
    check_health(onnx_served.url, "onnx", "native")


# --- 5. statsmodels --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def statsmodels_model(train_rows, tmp_path_factory) -> Path:
    """A Logit fitted on the synthetic rows (nothing downloaded); no intercept: the features are centred."""
    import mlflow.statsmodels
    import statsmodels.api as sm

    noise = np.random.default_rng(TRAIN_SEED + 1).normal(scale=0.5, size=len(train_rows))
    score = train_rows["a"] - 0.5 * train_rows["b"] + 0.25 * train_rows["c"] * train_rows["d"] + noise
    labels = (score > 0).astype(int)
    result = sm.Logit(labels, train_rows).fit(disp=0)
    path = tmp_path_factory.mktemp("statsmodels") / "model"
    mlflow.statsmodels.save_model(result, str(path), input_example=train_rows.head(3))  # signature inferred from it
    return path


@pytest.fixture(scope="module")
def statsmodels_served(build, statsmodels_model, docker_engine):
    yield from served(build, "statsmodels", statsmodels_model, docker_engine)


def test_statsmodels_is_pyfunc_with_mlflow_skinny_not_mlflow(statsmodels_served):
    check_pyfunc_image(statsmodels_served, "statsmodels")
    check_flavor_library(statsmodels_served, "statsmodels")
    assert '"name": "d"' in mlmodel(statsmodels_served)["signature"]["inputs"]  # inferred from the input example


def test_statsmodels_answers_like_pyfunc(statsmodels_served, held_out):
    want = mlflow_answer(statsmodels_served.model_dir, held_out)
    assert len(want["predictions"]) == HELD_ROWS, want
    # float64 probabilities: equal to the bit in our runs; 1e-9 allowed, as for lightgbm, because numpy's
    # OpenBLAS picks its kernels by CPU and the test process and the image need not agree on that
    check_answers(statsmodels_served, held_out, want, tol=1e-9)
    check_health(statsmodels_served.url, "statsmodels", "pyfunc")


# --- 6. catboost -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catboost_model(train_rows, tmp_path_factory) -> Path:
    """A 3-class CatBoostClassifier on the synthetic rows (nothing downloaded, no catboost_info files)."""
    import catboost
    import mlflow.catboost

    score = train_rows["a"] + 0.5 * train_rows["b"] - 0.3 * train_rows["c"]
    labels = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))  # 3 balanced classes
    clf = catboost.CatBoostClassifier(
        iterations=30, depth=3, thread_count=1, random_seed=0, verbose=False, allow_writing_files=False
    ).fit(train_rows, labels)
    path = tmp_path_factory.mktemp("catboost") / "model"
    mlflow.catboost.save_model(clf, str(path), input_example=train_rows.head(3))  # signature inferred from it
    return path


@pytest.fixture(scope="module")
def catboost_served(build, catboost_model, docker_engine):
    yield from served(build, "catboost", catboost_model, docker_engine)


def test_catboost_is_pyfunc_with_mlflow_skinny_not_mlflow(catboost_served):
    check_pyfunc_image(catboost_served, "catboost")
    check_flavor_library(catboost_served, "catboost")
    assert '"name": "d"' in mlmodel(catboost_served)["signature"]["inputs"]  # inferred from the input example


def test_catboost_answers_like_pyfunc(catboost_served, held_out):
    want = mlflow_answer(catboost_served.model_dir, held_out)
    assert {label for row in want["predictions"] for label in row} == {0, 1, 2}, want  # one label per row, all classes
    check_answers(catboost_served, held_out, want)  # class labels: exactly
    check_health(catboost_served.url, "catboost", "pyfunc")


# --- 7. no python_function -------------------------------------------------------------------


def test_a_flavor_without_python_function_is_one_error_line(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n  pytorch:\n    code: null\n    model_data: data\n"
        "    pytorch_version: 2.5.1\nmlflow_version: 3.17.2\nmodel_uuid: 0123456789abcdef0123456789abcdef\n"
    )
    (model / "python_env.yaml").write_text("python: 3.11.7\ndependencies:\n- -r requirements.txt\n")
    (model / "requirements.txt").write_text("mlflow==3.17.2\ntorch==2.5.1\n")
    (model / "data").mkdir()
    (model / "data" / "model.pth").write_bytes(b"\0" * 64)
    out_dir = tmp_path / "image"
    proc, outputs = run_cli(
        [
            "render-dockerfile",
            "--model-dir",
            str(model),
            "--output-dir",
            str(out_dir),
            "--ca-bundle",
            CA,
            "--runtime",
            "auto",
        ],
        tmp_path,
    )
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("::error"), lines
    assert "model-dir" in lines[0] and "pytorch" in lines[0], lines[0]
    assert not out_dir.exists() and outputs == {}, (sorted(p.name for p in tmp_path.iterdir()), outputs)
