"""The scan stage on real model files: MLflow's own sklearn (skops and pickle) and pyfunc
(cloudpickle) models pass; a pickle that calls os.system is found under any name and in every
container it can hide in (joblib with each compression, an object .npy, a PyTorch zip, a skops
schema), Keras Lambda layers in nested models, TensorFlow file ops; fail-on thresholds; nothing is
ever loaded or written under the scanned folder; and the CLI's one line and outputs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from click.testing import CliRunner

from mlops_actions import cli
from mlops_actions.core.errors import InputError
from mlops_actions.stages.scan import scan

MARKER = Path("/tmp/mlops-scan-test-pwned")


class Shell:
    """Runs a command when unpickled: what a poisoned model file does."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class Fetch:
    def __reduce__(self):
        import webbrowser

        return (webbrowser.open, ("https://example.invalid",))


@pytest.fixture(autouse=True)
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNNER_TEMP", str(runner_temp(tmp_path)))  # beside the scanned folders
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists(), "a scanned file was executed"


def runner_temp(tmp_path: Path) -> Path:
    return tmp_path.parent / f"{tmp_path.name}-runner-temp"


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def lines(result) -> list[str]:
    return sorted(f.line() for f in result.findings)


def test_mlflow_models_pass_and_are_left_as_they_were(tmp_path):
    import mlflow.pyfunc
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).random((30, 3))
    model = LogisticRegression().fit(x, x[:, 0] > 0.5)
    root = tmp_path / "artifacts"
    mlflow.sklearn.save_model(model, root / "skops", serialization_format="skops")
    mlflow.sklearn.save_model(model, root / "cloudpickle", serialization_format="cloudpickle")

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    mlflow.pyfunc.save_model(root / "pyfunc", python_model=Echo())
    (root / "metrics.json").write_text('{"accuracy": 0.9}')
    np.save(root / "weights.npy", np.arange(6.0))
    before = snapshot(root)

    result = scan(root)

    assert result.passed and result.findings == []
    assert result.scanned == {
        "cloudpickle/model.pkl": "pickle globals",
        "pyfunc/python_model.pkl": "pickle globals",
        "skops/model.skops": "skops types",
    }
    assert result.data_files == len(before) - 3  # MLmodel, yaml, json, the plain-number .npy, ...
    assert snapshot(root) == before  # nothing written, nothing changed under the scanned folder
    report = json.loads(result.report.read_text())
    assert result.report.parent == runner_temp(tmp_path) and report["result"] == "passed"
    assert "✅ **passed**: no unsafe operator in 3 model file(s)" in result.markdown.read_text()


def test_code_in_a_pickle_is_found_under_any_name_and_in_any_container(tmp_path):
    root = tmp_path / "model"
    root.mkdir()
    (root / "model.pkl").write_bytes(pickle.dumps(Shell()))
    (root / "model.statsmodels").write_bytes(pickle.dumps({"params": [1, 2], "hook": Shell()}, protocol=2))
    for compress in ("zlib", "gzip", "bz2", "xz"):  # joblib interleaves raw array bytes with the pickle
        joblib.dump({"coef": np.arange(1000.0), "hook": Shell()}, root / f"est-{compress}.joblib", compress=(compress, 3))
    np.save(root / "objects.npy", np.array([1, Shell()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(root / "net.pt", "w") as archive:  # PyTorch's zip layout
        archive.writestr("net/data.pkl", pickle.dumps(Shell()))
        archive.writestr("net/data/0", b"\x80\x03" + bytes(range(200)))  # raw tensor bytes that start like a pickle
    (root / "browser.pkl").write_bytes(pickle.dumps(Fetch()))

    result = scan(root)

    assert not result.passed and result.highest == "critical"
    system = "'posix.system' (critical, pickle globals)"
    assert lines(result) == sorted(
        [f"model.pkl: {system}", f"model.statsmodels: {system}", f"net.pt:net/data.pkl: {system}",
         "objects.npy: 'posix.system' (critical, numpy object array (pickle))",
         "browser.pkl: 'webbrowser.open' (high, pickle globals)"]
        + [f"est-{c}.joblib: {system}" for c in ("zlib", "gzip", "bz2", "xz")]
    )


def test_joblib_arrays_are_skipped_not_mistaken_for_code(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    x = np.random.default_rng(1).random((60, 4))
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, x[:, 0] > 0.5)
    joblib.dump(forest, tmp_path / "forest.joblib")
    joblib.dump(forest, tmp_path / "forest-z.joblib", compress=3)
    joblib.dump({"forest": forest, "names": np.array(["a", None, 3], dtype=object)}, tmp_path / "mixed.joblib")

    result = scan(tmp_path)

    assert result.passed and result.findings == [] and len(result.scanned) == 3


def test_a_skops_file_naming_an_unsafe_function_is_found(tmp_path):
    schema = {
        "__class__": "Pipeline", "__module__": "sklearn.pipeline", "__loader__": "ObjectNode",
        "content": {"steps": {"__class__": "function", "__module__": "builtins", "__loader__": "FunctionNode",
                              "content": {"module_path": "subprocess", "function": "check_output"}}},
        "protocol": 2,
    }
    with zipfile.ZipFile(tmp_path / "model.skops", "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))

    result = scan(tmp_path)

    assert lines(result) == ["model.skops: 'subprocess.check_output' (critical, skops types)"]


def keras_config(layers: list) -> dict:
    return {"class_name": "Functional", "config": {"layers": layers}}


def test_keras_lambda_in_a_nested_model_is_medium_and_fail_on_decides(tmp_path):
    inner = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {}},
                                                              {"class_name": "Lambda", "config": {"function": "x"}}]}}
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(keras_config([{"class_name": "InputLayer"}, inner])))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64)

    low, medium, high = (scan(tmp_path, fail_on) for fail_on in ("low", "medium", "high"))

    assert lines(low) == ["model.keras:config.json: 'Keras.Lambda' (medium, keras layers)"]
    assert not low.passed and not medium.passed
    assert high.passed and high.findings == low.findings  # reported, not blocking
    assert "⚠️ **passed** with 1 finding(s) below `fail-on: high`" in high.summary()


def test_a_real_keras_model_with_a_lambda_layer(tmp_path):
    keras = pytest.importorskip("keras")

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Lambda(lambda t: t * 2)(inputs)))
    model.save(tmp_path / "lambda.keras")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]).save(tmp_path / "clean.keras")

    assert lines(scan(tmp_path)) == ["lambda.keras:config.json: 'Keras.Lambda' (medium, keras layers)"]


def test_hdf5_and_savedmodel_without_tensorflow(tmp_path):
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b'{"class_name": "Lambda", "config": {}}' + b"\0" * 32)
    graph = b"\n\x0e\n\x04read\x12\x08ReadFile" + b"\n\x0f\n\x05write\x12\tWriteFile"
    (tmp_path / "saved_model.pb").write_bytes(graph)

    result = scan(tmp_path, "critical")

    assert lines(result) == [
        "model.h5: 'Keras.Lambda' (medium, keras layers (config text))",
        "saved_model.pb: 'Tensorflow.ReadFile' (high, tensorflow graph ops)",
        "saved_model.pb: 'Tensorflow.WriteFile' (high, tensorflow graph ops)",
    ]
    assert result.passed  # nothing critical


def test_what_cannot_be_read_is_not_passed(tmp_path):
    (tmp_path / "model.pkl").write_text("not a pickle at all")
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with zipfile.ZipFile(tmp_path / "outer.zip", "w") as archive:
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as nested:
            nested.writestr("data.pkl", pickle.dumps(Shell()))
        archive.writestr("inner.zip", inner.getvalue())

    result = scan(tmp_path, "high")

    assert [(f.file, f.severity) for f in sorted(result.findings, key=lambda f: f.file)] == [
        ("broken.npy", "high"), ("model.pkl", "high"), ("outer.zip:inner.zip", "high")
    ]
    assert not result.passed


def test_links_bad_fail_on_and_a_report_inside_the_folder_are_refused(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pkl").symlink_to("/etc/passwd")
    with pytest.raises(InputError, match="input 'path': 'model.pkl' in .* is a symbolic link"):
        scan(tmp_path / "model")
    (tmp_path / "model" / "model.pkl").unlink()
    with pytest.raises(InputError, match="input 'fail-on': 'severe' is not a severity; fix: write one of low, "):
        scan(tmp_path / "model", "severe")
    with pytest.raises(InputError, match="input 'report-dir': .* is inside the scanned folder"):
        scan(tmp_path / "model", report_dir=tmp_path / "model" / "reports")
    assert not (tmp_path / "model" / "reports").exists()
    with pytest.raises(InputError, match="input 'path': .* does not exist"):
        scan(tmp_path / "missing")


def test_cli_fails_with_one_line_and_still_writes_the_report_outputs(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pkl").write_bytes(pickle.dumps(Shell()))
    outputs, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = CliRunner().invoke(cli.main, ["scan", "--path", str(tmp_path / "model")])

    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "unsafe model file: model.pkl: 'posix.system' (critical, pickle globals)" in errors[0]
    written = outputs.read_text()
    assert "result=failed" in written and "highest=critical" in written and "report=" in written
    assert "| critical | `model.pkl` | `posix.system` | pickle globals |" in summary.read_text()

    passed = CliRunner().invoke(cli.main, ["scan", "--path", str(tmp_path / "model"), "--fail-on", "none"])
    assert passed.exit_code == 0, passed.output
