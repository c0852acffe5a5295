"""fetch-artifacts against the real server: layout, manifest, atomic replace, bad input."""

import json

import pytest

from mlops_actions.core import manifest, tracking as trk
from mlops_actions.stages.fetch_artifacts import fetch
from mlops_actions.core.errors import InputError


def test_fetch_layout_and_manifest(fetched, trained):
    root = fetched.path
    assert (fetched.model_path / "MLmodel").is_file()
    assert fetched.model_path == root / "model"
    assert fetched.flavor == "sklearn" and fetched.python_version.startswith("3.")
    assert (root / "confusion_matrix.png").is_file()
    run = json.loads((root / "mlops-run.json").read_text())
    assert run["run_id"] == trained.run_id and run["metrics"]["test_accuracy"] == trained.metrics["test_accuracy"]
    listed = manifest.verify(root)
    assert "model/model.pkl" in listed and "mlops-run.json" in listed


def test_refetch_replaces_stale_files_atomically(trained, mlflow_server, tmp_path):
    dest = tmp_path / "art"
    dest.mkdir()
    (dest / ".mlops-output").write_text("fetch-artifacts\n")  # an earlier fetch's folder (a foreign one is refused)
    (dest / "stale.txt").write_text("old")
    first = fetch(trained.run_id, dest, tracking=trk.Tracking(uri=mlflow_server.url))
    assert not (dest / "stale.txt").exists()
    digest = (dest / manifest.NAME).read_text()
    fetch(trained.run_id, dest, tracking=trk.Tracking(uri=mlflow_server.url))
    assert (dest / manifest.NAME).read_text() == digest  # same run → byte-identical, idempotent
    assert first.manifest.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".art.")]  # no partial dirs left


def test_sub_path_only(trained, mlflow_server, tmp_path):
    res = fetch(trained.run_id, tmp_path / "cm", artifact_path="confusion_matrix.png", include_model=False,
                tracking=trk.Tracking(uri=mlflow_server.url))
    names = sorted(p.name for p in res.path.iterdir())
    assert names == [".mlops-output", "MANIFEST.sha256", "confusion_matrix.png", "mlops-run.json"]  # + the stage's marker


def test_unknown_run_id_leaves_destination_untouched(mlflow_server, tmp_path):
    dest = tmp_path / "keep"
    dest.mkdir()
    (dest / "x").write_text("1")
    (dest / ".mlops-output").write_text("fetch-artifacts\n")  # an earlier fetch's (a foreign folder is refused as 'path' first)
    with pytest.raises(InputError) as err:
        fetch("0" * 32, dest, tracking=trk.Tracking(uri=mlflow_server.url))
    assert err.value.input_name == "run-id"
    assert (dest / "x").read_text() == "1" and len(list(tmp_path.iterdir())) == 1


def test_unknown_artifact_path(trained, mlflow_server, tmp_path):
    with pytest.raises(InputError, match="artifact-path"):
        fetch(trained.run_id, tmp_path / "a", artifact_path="nope.png", tracking=trk.Tracking(uri=mlflow_server.url))
    with pytest.raises(InputError, match="climbs out"):
        fetch(trained.run_id, tmp_path / "a", artifact_path="../../etc", tracking=trk.Tracking(uri=mlflow_server.url))
