"""Pure parts of the dvc stage: the metrics table, the remote and path rules, what is transient."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_actions.stages.dvc import OVERRIDE_REMOTE, DvcResult, metrics_table, resolve_remote, target_of
from mlops_actions.core.errors import InputError


def test_metrics_table_rows_and_arrows():
    table = metrics_table({"metrics/eval.json": {
        "accuracy": {"old": 0.9, "new": 0.95, "diff": 0.05},
        "f1": {"old": 0.9, "new": 0.85},
        "n_test": {"old": 269, "new": 269},
        "auc": {"old": None, "new": 0.7},
        "loss": {"old": 0.3, "new": None},
    }})
    lines = table.splitlines()
    assert lines[0] == "| file | metric | base | workspace | change |"
    assert "| `metrics/eval.json` | accuracy | 0.9 | 0.95 | ▲ +0.05 |" in lines
    assert "| `metrics/eval.json` | f1 | 0.9 | 0.85 | ▼ -0.05 |" in lines
    assert "| `metrics/eval.json` | n_test | 269 | 269 | ＝ +0 |" in lines
    assert "| `metrics/eval.json` | auc | — | 0.7 | new |" in lines
    assert "| `metrics/eval.json` | loss | 0.3 | — | removed |" in lines
    assert metrics_table({}) == "_No DVC metrics._\n"


def test_outputs_are_strings_and_json():
    out = DvcResult(operation="add", changed=True, hashes={"b": "2", "a": "1"}).outputs()
    assert out["changed"] == "true" and out["hashes"] == '{"a": "1", "b": "2"}'
    assert DvcResult(operation="status").outputs()["changed"] == "false"


CONFIGURED = {"storage": {"url": "/srv/dvc"}, "s3store": {"url": "s3://bucket/p"}}


@pytest.mark.parametrize("value,endpoint,name,override", [
    ("", "", "storage", {}),
    ("storage", "", "storage", {}),
    ("s3store", "http://127.0.0.1:9000", "s3store", {"remote": {"s3store": {"endpointurl": "http://127.0.0.1:9000"}}}),
    ("s3://b/prefix", "https://minio:9000", OVERRIDE_REMOTE, {"remote": {OVERRIDE_REMOTE: {"url": "s3://b/prefix", "endpointurl": "https://minio:9000"}}}),
    ("./store", "", OVERRIDE_REMOTE, {"remote": {OVERRIDE_REMOTE: {"url": "/work/store"}}}),
    ("/abs/store", "", OVERRIDE_REMOTE, {"remote": {OVERRIDE_REMOTE: {"url": "/abs/store"}}}),
])
def test_remote_forms(value, endpoint, name, override):
    assert resolve_remote(value, CONFIGURED, "storage", endpoint, Path("/work")) == (name, override)


def test_no_remote_at_all():
    assert resolve_remote("", {}, "", "", Path("/work")) == ("", {})


@pytest.mark.parametrize("value,endpoint,input_name,text", [
    ("gs://bucket/x", "", "remote", "scheme 'gs://' is not supported"),
    ("ftp://h/x", "", "remote", "not supported"),
    ("s3://", "", "remote", "names no bucket"),
    ("s3://key:secret@bucket/x", "", "remote", "contains credentials"),
    ("other", "", "remote", "'other' is not a remote of this project (configured: s3store, storage)"),
    ("s3://b/x", "minio:9000", "endpoint-url", "is not an http(s) URL"),
    ("s3://b/x", "http://k:s@minio", "endpoint-url", "contains credentials"),
    ("storage", "http://minio", "endpoint-url", "is not an s3:// remote"),
    ("./store", "http://minio", "endpoint-url", "local directory"),
])
def test_bad_remotes(value, endpoint, input_name, text):
    with pytest.raises(InputError) as err:
        resolve_remote(value, CONFIGURED, "storage", endpoint, Path("/work"))
    assert err.value.input_name == input_name and text in err.value.line()
    assert "secret" not in err.value.line()


@pytest.mark.parametrize("path,text", [
    ("../../etc", "is outside the DVC project"),
    ("/etc/passwd", "is outside the DVC project"),
    ("data/../../x", "is outside the DVC project"),
    (".git/config", "points into .git/"),
    (".dvc/config", "points into .dvc/"),
    ("", "is not a path"),
    ("a\nb", "is not a path"),
])
def test_paths_stay_in_the_project(tmp_path, path, text):
    with pytest.raises(InputError, match=text):
        target_of(path, tmp_path, tmp_path)


def test_paths_inside_are_absolute(tmp_path):
    assert target_of("data/x.csv", tmp_path, tmp_path) == tmp_path.resolve() / "data" / "x.csv"
    assert target_of(str(tmp_path / "m"), tmp_path, tmp_path) == tmp_path.resolve() / "m"


def test_transient_classification():
    pytest.importorskip("dvc")
    from dvc.exceptions import DownloadError, DvcException

    from mlops_actions.stages.dvc import _transient

    assert _transient(DownloadError(2))
    assert _transient(ConnectionRefusedError("refused"))
    wrapped = DvcException("push failed")
    wrapped.__cause__ = TimeoutError("read timed out")
    assert _transient(wrapped)
    assert _transient(DvcException("An error occurred (SlowDown) when calling PutObject"))
    assert not _transient(DvcException("Access Denied"))
    assert not _transient(ValueError("bad"))
