import pytest

from mlops_actions import tracking as trk
from mlops_actions.errors import InputError


def test_default_is_sqlite_in_workspace(tmp_path):
    t = trk.resolve("", "", workspace=str(tmp_path), env={})
    assert t.uri == f"sqlite:///{tmp_path.resolve()}/.mlops/mlflow.db"
    assert t.local_artifact_root().endswith("/.mlops/mlartifacts")


def test_dagshub_derives_uri_and_needs_credentials():
    env = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "tok"}
    t = trk.resolve("", "alice/rice", env=env)
    assert t.uri == "https://dagshub.com/alice/rice.mlflow"
    assert t.run_url("3", "abc") == "https://dagshub.com/alice/rice.mlflow/#/experiments/3/runs/abc"
    with pytest.raises(InputError, match="DagsHub needs credentials"):
        trk.resolve("", "alice/rice", env={})


@pytest.mark.parametrize("uri,needle", [("ftp://x", "no supported scheme"), ("https://u:pw@host", "contains a password")])
def test_bad_uris(uri, needle):
    with pytest.raises(InputError, match=needle):
        trk.resolve(uri, "", env={})


def test_both_inputs_refused():
    with pytest.raises(InputError, match="only one"):
        trk.resolve("http://x", "a/b", env={})


def test_display_uri_drops_userinfo():
    assert trk.Tracking("https://user@host:5000/p").display_uri == "https://host:5000/p"
