"""render-dockerfile: the serving image's requirements derived from the model's, and the runtime
``auto`` picks for any MLflow model (real models saved with mlflow here, no mocks; one real
lightgbm image build). The end-to-end serving of each flavor is tests/integration/test_flavors.py."""

import json
import textwrap
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_actions.core.errors import InputError
from mlops_actions.stages.render_dockerfile import GUNICORN, render, serving_requirements


def _reqs(tmp_path, text):
    (tmp_path / "requirements.txt").write_text(text)
    return serving_requirements(tmp_path, "sklearn")


def test_requirements_drop_mlflow_and_add_server_needs(tmp_path):
    reqs = _reqs(tmp_path, "mlflow==3.17.2\nscikit-learn==1.9.1\ncloudpickle==3.1.2\n")
    assert "scikit-learn==1.9.1" in reqs and not any(r.startswith("mlflow") for r in reqs)
    assert {"pandas", "numpy", "pyyaml"} <= set(reqs)


def test_tensorflow_cpu_wins_over_tensorflow(tmp_path):
    (tmp_path / "requirements.txt").write_text("tensorflow==2.20.0\ntensorflow-cpu==2.20.0\n")
    reqs = serving_requirements(tmp_path, "tensorflow")
    assert "tensorflow-cpu==2.20.0" in reqs and "tensorflow==2.20.0" not in reqs


@pytest.mark.parametrize("line,needle", [
    ("--extra-index-url https://evil/simple", "pip option"),
    ("-e .", "pip option"),
    ("./wheels/x.whl", "local path or URL"),
    ("pkg @ file:///tmp/x", "local path or URL"),
    ("not a req !!", "not a valid requirement"),
])
def test_requirements_refused(tmp_path, line, needle):
    with pytest.raises(InputError, match=needle):
        _reqs(tmp_path, line + "\n")


# --- any MLflow model: the runtime auto picks per flavor, and what its image installs ---------------

MLFLOW_VERSION = mlflow.__version__
X = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40)})
Y = (X["a"] > 0.5).astype(int)

HELPER = "def double(values):\n    return values * 2\n"


class Doubler(mlflow.pyfunc.PythonModel):
    """A custom python_function model whose code lives in code_paths (helper.py)."""

    def predict(self, context, model_input, params=None):
        from helper_for_render_test import double

        return double(model_input["a"])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small real models of each kind: {name: model folder}."""
    import lightgbm
    import xgboost
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("models")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.xgboost.save_model(
            xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(X, Y), str(root / "xgb"), input_example=X.head(2)
        )
        booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, label=Y), num_boost_round=3)
        mlflow.xgboost.save_model(booster, str(root / "booster"), input_example=X.head(2))
        mlflow.lightgbm.save_model(
            lightgbm.LGBMClassifier(n_estimators=10, min_child_samples=5, verbose=-1).fit(X, Y),
            str(root / "lgb"),
            input_example=X.head(2),
        )
        code = root / "src" / "helper_for_render_test.py"
        code.parent.mkdir()
        code.write_text(HELPER)
        mlflow.pyfunc.save_model(str(root / "pyfunc"), python_model=Doubler(), code_paths=[str(code)])
        clf = LogisticRegression().fit(X.to_numpy(np.float32), Y)
        mlflow.onnx.save_model(to_onnx(clf, X.to_numpy(np.float32)[:1]), str(root / "onnx"))
    return {p.name: p for p in root.iterdir() if (p / "MLmodel").is_file()}


def _context(res):
    ctx = res.context
    return (
        (ctx / "requirements.txt").read_text().splitlines(),
        (ctx / "Dockerfile").read_text(),
        json.loads((ctx / "model-info.json").read_text()),
    )


def _fake_model(root, flavors: str):
    """A model folder with a hand-written MLmodel (flavors we cannot save here)."""
    root.mkdir()
    (root / "MLmodel").write_text(
        f"flavors:\n{textwrap.indent(textwrap.dedent(flavors), '  ')}mlflow_version: {MLFLOW_VERSION}\n"
    )
    (root / "requirements.txt").write_text(f"mlflow=={MLFLOW_VERSION}\ntorch==2.9.1\n")
    return root


def test_xgboost_booster_is_native_cpu_without_mlflow_or_sklearn(models, tmp_path):
    res = render(models["booster"], tmp_path / "ctx", runtime="auto")
    reqs, dockerfile, info = _context(res)
    assert (res.runtime, res.flavor) == ("native", "xgboost")
    assert res.runtime_reason == (
        "native xgboost booster (xgboost-cpu): no mlflow, no scikit-learn in the image; "
        "ONNX for boosters is not attempted yet"
    )
    assert "xgboost-cpu==3.2.0" in reqs and not [r for r in reqs if r.startswith("xgboost==")]
    assert not [r for r in reqs if r.startswith(("mlflow", "scikit-learn"))]
    assert {"pandas", "numpy", "pyyaml"} <= {r.split("=")[0] for r in reqs}
    assert "apt-get" not in dockerfile and res.system_packages == []
    assert info["runtime"] == "native" and info["flavor"] == "xgboost" and info["system_packages"] == []
    assert info["runtime_reason"] == res.runtime_reason
    assert 'LABEL io.github.mlops-actions.runtime="native"' in dockerfile


def test_xgboost_sklearn_wrapper_keeps_scikit_learn(models, tmp_path):
    """XGBClassifier cannot be built without scikit-learn (xgboost raises ImportError), so the
    wrapper's image keeps the model's scikit-learn pin; the rest of mlflow's list still goes."""
    res = render(models["xgb"], tmp_path / "ctx", runtime="auto")
    reqs, _, info = _context(res)
    assert res.runtime == "native" and res.runtime_reason.startswith("native xgboost XGBClassifier (xgboost-cpu")
    assert "xgboost-cpu==3.2.0" in reqs and not [r for r in reqs if r.startswith(("xgboost==", "mlflow"))]
    assert "scikit-learn==1.9.1" in reqs and not [r for r in reqs if r.startswith(("rich", "psutil"))]


def test_lightgbm_is_native_and_installs_libgomp_before_the_venv(models, tmp_path):
    res = render(models["lgb"], tmp_path / "ctx", runtime="auto")
    reqs, dockerfile, info = _context(res)
    assert res.runtime == "native" and res.runtime_reason.startswith("native lightgbm")
    assert "lightgbm==4.7.0" in reqs and not [r for r in reqs if r.startswith("mlflow")]
    assert info["system_packages"] == ["libgomp1"] == res.system_packages
    runtime_stage = dockerfile.split("FROM ${BASE_IMAGE}\n", 1)[1]
    apt = runtime_stage.index("apt-get -o Acquire::Retries=3 install -y --no-install-recommends libgomp1")
    assert "apt-get -o Acquire::Retries=3 update" in runtime_stage and "rm -rf /var/lib/apt/lists/*" in runtime_stage
    assert apt < runtime_stage.index("COPY --from=builder /opt/venv /opt/venv")
    assert dockerfile.count("apt-get -o Acquire::Retries=3 install") == 1  # the builder needs no system library
    assert "MLFLOW_DISABLE_TELEMETRY" not in dockerfile


def test_custom_pyfunc_model_gets_mlflow_skinny_and_its_code_paths(models, tmp_path):
    res = render(models["pyfunc"], tmp_path / "ctx", runtime="auto")
    reqs, dockerfile, info = _context(res)
    assert (res.runtime, res.flavor) == ("pyfunc", "python_function")
    assert res.runtime_reason == f"custom python_function model: mlflow.pyfunc with mlflow-skinny {MLFLOW_VERSION}"
    assert f"mlflow-skinny=={MLFLOW_VERSION}" in reqs and not [r for r in reqs if r.startswith("mlflow==")]
    assert {"cloudpickle", "pandas", "numpy", "pyyaml", "mlflow-skinny"} <= {r.split("=")[0] for r in reqs}
    assert (res.context / "model" / "code" / "helper_for_render_test.py").read_text() == HELPER
    assert (res.context / "model" / "python_model.pkl").is_file()
    assert info["runtime"] == "pyfunc" and info["flavor"] == "python_function" and info["system_packages"] == []
    assert 'LABEL io.github.mlops-actions.runtime="pyfunc"' in dockerfile
    for env in ("MLFLOW_DISABLE_TELEMETRY=true", "DO_NOT_TRACK=true", "MLFLOW_TRACE_SAMPLING_RATIO=0", "HOME=/tmp"):
        assert env in dockerfile
    assert 'ENTRYPOINT ["python3", "-m", "serve.server"]' in dockerfile and "apt-get" not in dockerfile


def test_onnx_model_is_served_as_it_is_by_onnxruntime(models, tmp_path):
    from importlib.metadata import version

    res = render(models["onnx"], tmp_path / "ctx", runtime="auto")
    reqs, dockerfile, info = _context(res)
    assert (res.runtime, res.flavor) == ("native", "onnx") and "served as it is by onnxruntime" in res.runtime_reason
    assert f"onnxruntime=={version('onnxruntime')}" in reqs  # the model's own pin
    names = {r.split("=")[0] for r in reqs}
    assert names == {"gunicorn", "onnxruntime", "numpy", "pandas", "pyyaml"}  # no onnx, no mlflow
    assert not (res.context / "model.onnx").exists() and (res.context / "model" / "model.onnx").is_file()
    with pytest.raises(InputError, match="input 'runtime': 'onnx' is not possible for this model: it is an ONNX model"):
        render(models["onnx"], tmp_path / "onnx", runtime="onnx")
    assert not (tmp_path / "onnx").exists()


def test_pyfunc_runtime_serves_any_model_with_a_python_function_flavor(models, tmp_path):
    res = render(models["xgb"], tmp_path / "ctx", runtime="pyfunc")
    reqs, dockerfile, info = _context(res)
    assert res.runtime == "pyfunc" and res.runtime_reason.startswith("runtime 'pyfunc' asked for")
    assert f"mlflow-skinny=={MLFLOW_VERSION}" in reqs and "xgboost-cpu==3.2.0" in reqs
    assert not [r for r in reqs if r.startswith(("mlflow==", "xgboost=="))]
    assert "scikit-learn==" in " ".join(reqs)  # mlflow.xgboost loads the sklearn wrapper: the model's list is kept
    lgb = render(models["lgb"], tmp_path / "lgb", runtime="pyfunc")
    assert lgb.system_packages == ["libgomp1"]  # keyed on the package, whatever the runtime


def test_flavor_without_lean_loader_is_pyfunc_and_native_is_refused(tmp_path):
    model = _fake_model(
        tmp_path / "m",
        """\
        python_function:
          loader_module: mlflow.pytorch
          python_version: 3.11.7
          data: data
        pytorch:
          pytorch_version: 2.9.1
        """,
    )
    res = render(model, tmp_path / "ctx", runtime="auto")
    reqs, _, info = _context(res)
    assert (res.runtime, res.flavor) == ("pyfunc", "pytorch")
    # a pytorch model is tried through torch.onnx first (tests/integration/test_pytorch.py); this one has no
    # signature (nor, in CI, torch or onnxruntime), so the reason is why ONNX was not used
    assert res.runtime_reason.startswith("ONNX not used: ") and "\n" not in res.runtime_reason
    assert res.runtime_reason.endswith(f"; mlflow.pyfunc with mlflow-skinny {MLFLOW_VERSION}")
    assert reqs == [GUNICORN, "mlflow-skinny==" + MLFLOW_VERSION, "numpy", "pandas", "pyyaml", "torch==2.9.1"]
    with pytest.raises(InputError) as err:
        render(model, tmp_path / "native", runtime="native")
    assert err.value.input_name == "runtime"
    assert "'native' has no loader for model flavor 'pytorch'" in err.value.line()
    assert "use runtime 'auto' or 'pyfunc'" in err.value.line() and "\n" not in err.value.line()
    with pytest.raises(InputError, match="'onnx' is not possible for this model: ") as err:
        render(model, tmp_path / "onnx", runtime="onnx")
    assert "use runtime 'auto' (falls back to pyfunc) or 'pyfunc'" in err.value.line()
    assert not (tmp_path / "native").exists() and not (tmp_path / "onnx").exists()


def test_flavor_without_python_function_or_loader_is_one_line_error(tmp_path):
    model = _fake_model(tmp_path / "m", "spark:\n  pyspark_version: 4.0.1\n")
    with pytest.raises(InputError) as err:
        render(model, tmp_path / "ctx", runtime="auto")
    line = err.value.line()
    assert err.value.input_name == "model-dir" and "\n" not in line
    assert "model flavor 'spark' has no python_function flavor and no serving loader" in line
    assert "fix: log it with mlflow.pyfunc.log_model(python_model=...) or a supported flavor" in line
    with pytest.raises(InputError, match="flavor 'spark' has no python_function flavor"):
        render(model, tmp_path / "ctx", runtime="pyfunc")
    assert not (tmp_path / "ctx").exists()


def test_pyfunc_requirements_pin_skinny_and_honour_build_dependencies(tmp_path):
    (tmp_path / "requirements.txt").write_text("mlflow-skinny>=2.9\nmlflow-tracing==3.17.2\nstatsmodels==0.14.5\n")
    reqs = serving_requirements(tmp_path, "statsmodels", runtime="pyfunc", mlflow_version="3.1.0")
    assert reqs == [GUNICORN, "mlflow-skinny>=2.9", "numpy", "pandas", "pyyaml", "statsmodels==0.14.5"]
    (tmp_path / "requirements.txt").write_text("catboost==1.2.8\npandas==2.3.3\n")
    (tmp_path / "python_env.yaml").write_text(
        "python: 3.11.7\nbuild_dependencies:\n- pip==26.3\n- setuptools==65.5.0\n- wheel==0.48.0\n- cython==3.1.4\n"
        "dependencies:\n- -r requirements.txt\n"
    )
    reqs = serving_requirements(tmp_path, "catboost", runtime="pyfunc", mlflow_version="3.1.0")
    assert reqs == ["catboost==1.2.8", "cython==3.1.4", GUNICORN, "mlflow-skinny==3.1.0", "numpy", "pandas==2.3.3", "pyyaml"]
    assert serving_requirements(tmp_path, "catboost") == ["catboost==1.2.8", GUNICORN, "numpy", "pandas==2.3.3", "pyyaml"]


def test_xgboost_becomes_xgboost_cpu_and_pins_from_mlmodel(tmp_path):
    (tmp_path / "requirements.txt").write_text("xgboost==3.2.0\nscikit-learn==1.9.1\nrich==15.0.0\n")
    assert serving_requirements(tmp_path, "xgboost") == [GUNICORN, "numpy", "pandas", "pyyaml", "xgboost-cpu==3.2.0"]
    wrapper = serving_requirements(tmp_path, "xgboost", model_class="xgboost.sklearn.XGBRegressor")
    assert wrapper == [GUNICORN, "numpy", "pandas", "pyyaml", "scikit-learn==1.9.1", "xgboost-cpu==3.2.0"]
    (tmp_path / "requirements.txt").write_text("mlflow==3.17.2\n")
    assert "xgboost-cpu==3.1.0" in serving_requirements(tmp_path, "xgboost", flavor_version="3.1.0")
    assert "scikit-learn" in serving_requirements(tmp_path, "xgboost", model_class="xgboost.sklearn.XGBClassifier")
    assert "lightgbm==4.6.0" in serving_requirements(tmp_path, "lightgbm", flavor_version="4.6.0")


@pytest.mark.docker
def test_lightgbm_image_builds_with_libgomp_and_runs_read_only(models, tmp_path, docker_engine):
    """One real build (lightgbm, the only flavor with an apt step): libgomp1 is installed in the
    runtime stage, the model loads with lightgbm there, offline, on a read-only root file system,
    and no apt lists are left in the image."""
    res = render(
        models["lgb"], tmp_path / "ctx", runtime="auto", ca_bundle="/etc/ssl/certs/ca-certificates.crt", version="0.0.1"
    )
    want = mlflow.lightgbm.load_model(str(models["lgb"])).predict(pd.DataFrame({"a": [0.1, 0.9], "b": [0.9, 0.1]}))
    assert list(want) == [0, 1]
    tag = f"mlops-actions-test-lightgbm:{res.model_sha256[:12]}"
    image, _ = docker_engine.images.build(path=str(res.context), tag=tag, rm=True, forcerm=True)
    try:
        assert image.labels["io.github.mlops-actions.runtime"] == "native"
        probe = (
            "import ctypes, os, skops.io, lightgbm, pandas as pd; ctypes.CDLL('libgomp.so.1');"
            "f = '/app/model/model.skops'; m = skops.io.load(f, trusted=skops.io.get_untrusted_types(file=f));"
            "print([int(v) for v in m.predict(pd.DataFrame({'a': [0.1, 0.9], 'b': [0.9, 0.1]}))]);"
            "print(os.listdir('/var/lib/apt/lists'))"
        )
        out = docker_engine.containers.run(
            tag, ["-c", probe], entrypoint="python3", read_only=True, network_disabled=True, remove=True
        ).decode()
        assert out.splitlines() == ["[0, 1]", "[]"]
    finally:
        docker_engine.images.remove(tag, force=True)


def test_images_get_the_gunicorn_the_server_is_tested_with():
    """Every image pins the gunicorn the serving tests ran (constraints.txt installs it here):
    the server's worker class builds on gthread's internals."""
    from importlib.metadata import version

    assert GUNICORN == f"gunicorn=={version('gunicorn')}"
