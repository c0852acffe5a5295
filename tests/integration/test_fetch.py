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


def test_trend_plot_of_the_deciding_metric_beside_the_artifacts(trained, mlflow_server, tmp_path, capsys):
    import struct

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url)
    experiment = client.get_run(trained.run_id).info.experiment_id
    for value in (0.71, 0.83, 0.79):  # later runs of the experiment, one unfinished (not plotted)
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "test_accuracy", value)
        client.set_terminated(run.info.run_id)
    running = client.create_run(experiment)
    client.log_metric(running.info.run_id, "test_accuracy", 0.99)
    tracking = trk.Tracking(uri=mlflow_server.url)
    res = fetch(trained.run_id, tmp_path / "art", tracking=tracking, trend_metric="test_accuracy")
    png = (tmp_path / "art" / "metric_trend.png").read_bytes()
    assert res.trend == tmp_path / "art" / "metric_trend.png" and res.outputs()["trend"] == str(res.trend)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (700, 260)
    assert "metric_trend.png" in manifest.verify(tmp_path / "art")  # committed with the artifacts
    finished = client.search_runs([experiment], "attributes.status = 'FINISHED' and metrics.test_accuracy > -1",
                                  max_results=20)
    assert res.trend_points == min(20, len(finished)) >= 4
    assert b"tEXt" not in png.split(b"IDAT")[0] or b"Software" not in png  # no version or date: same runs, same bytes
    again = fetch(trained.run_id, tmp_path / "art", tracking=tracking, trend_metric="test_accuracy")
    assert (tmp_path / "art" / "metric_trend.png").read_bytes() == png and again.trend_points == res.trend_points
    # the proposed run is always on it, even when older than the last N
    two = fetch(trained.run_id, tmp_path / "two", tracking=tracking, trend_metric="test_accuracy", trend_runs=2)
    assert two.trend_points == 2
    # a metric the run did not log: no plot, a warning naming the input
    capsys.readouterr()
    none = fetch(trained.run_id, tmp_path / "none", tracking=tracking, trend_metric="no_such_metric")
    said = capsys.readouterr()
    assert none.trend is None and not (tmp_path / "none" / "metric_trend.png").exists()
    assert "input 'trend-metric'" in said.out + said.err
    with pytest.raises(InputError) as err:
        fetch(trained.run_id, tmp_path / "bad", tracking=tracking, trend_metric="test_accuracy", trend_runs=1)
    assert err.value.input_name == "trend-runs" and not (tmp_path / "bad").exists()
