"""train against real MLflow servers: plain and basic-auth (the way DagsHub answers)."""

import textwrap

import mlflow
import pytest
import requests

from conftest import SENTIMENT
from mlops_actions.core import tracking as trk
from mlops_actions.core.errors import InputError, StageError
from mlops_actions.stages.train import train


def test_mlproject_run_is_logged_tagged_and_has_a_model(trained, mlflow_server, monkeypatch):
    assert len(trained.run_id) == 32
    assert trained.model_uri.startswith("models:/m-")
    assert trained.metrics["test_accuracy"] > 0.8
    assert trained.run_url == f"{mlflow_server.url}/#/experiments/{trained.experiment_id}/runs/{trained.run_id}"
    run = mlflow.MlflowClient(tracking_uri=mlflow_server.url).get_run(trained.run_id)
    assert run.data.params["rows"] == "600"
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlops_actions.stage"] == "train"
    assert len(run.data.tags["github.sha"]) == 40  # from the checkout when not in Actions


def test_github_context_becomes_run_tags(mlflow_server, monkeypatch, tmp_path):
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/reviews")
    monkeypatch.setenv("GITHUB_RUN_ID", "99")
    script = tmp_path / "fit.py"
    # the script imports a module of its own folder, as `python fit.py` allows; its name is one of
    # the package's own modules (pipeline), which must not shadow it
    (tmp_path / "pipeline.py").write_text("from sklearn.linear_model import LogisticRegression\nmake_model = LogisticRegression\n")
    script.write_text(textwrap.dedent("""
        import mlflow, pandas as pd
        from pipeline import make_model
        x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}); y = [0, 0, 1, 1]
        with mlflow.start_run():
            make_model().fit(x, y)
    """))
    (tmp_path / "requirements.txt").write_text("mlflow>=3.1,<4\nscikit-learn\npandas\n")  # built by env-manager uv
    result = train(str(tmp_path), script="fit.py", tracking=trk.Tracking(uri=mlflow_server.url), experiment="tests-script")
    tags = mlflow.MlflowClient(tracking_uri=mlflow_server.url).get_run(result.run_id).data.tags
    assert tags["github.sha"] == "a" * 40
    assert tags["github.run_url"] == "https://github.com/acme/reviews/actions/runs/99"
    assert result.model_uri.startswith("models:/")  # autolog through the bootstrap


def test_basic_auth_server_with_credentials(mlflow_auth_server, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", mlflow_auth_server.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", mlflow_auth_server.password)
    assert requests.get(mlflow_auth_server.url + "/api/2.0/mlflow/experiments/search", params={"max_results": 1}).status_code == 401
    tracking = trk.resolve(mlflow_auth_server.url, "")
    result = train(str(SENTIMENT), tracking=tracking, experiment="tests-auth", params={"rows": "300"})
    auth = (mlflow_auth_server.username, mlflow_auth_server.password)
    got = requests.get(mlflow_auth_server.url + "/api/2.0/mlflow/runs/get", params={"run_id": result.run_id}, auth=auth)
    assert got.status_code == 200 and got.json()["run"]["info"]["status"] == "FINISHED"


def test_basic_auth_server_without_credentials_is_401_named(mlflow_auth_server):
    with pytest.raises(InputError) as err:
        train(str(SENTIMENT), tracking=trk.resolve(mlflow_auth_server.url, "", env={}))
    assert "401" in err.value.line() and "MLFLOW_TRACKING_USERNAME" in err.value.line()


def test_unreachable_server_fails_after_bounded_retries(tmp_path):
    from mlops_actions.core.local_services import free_port

    with pytest.raises(InputError) as err:
        train(str(SENTIMENT), tracking=trk.Tracking(uri=f"http://127.0.0.1:{free_port()}"))
    assert err.value.input_name == "tracking-uri" and "after retries" in err.value.line()


def test_run_without_model_fails_clearly(mlflow_server, tmp_path):
    (tmp_path / "nomodel.py").write_text("import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('m', 1.0)\n")
    with pytest.raises(StageError, match="logged no model"):
        train(str(tmp_path), script="nomodel.py", autolog=False, env_manager="local", tracking=trk.Tracking(uri=mlflow_server.url), experiment="tests-nomodel")


def test_failing_script_marks_run_failed(mlflow_server, tmp_path):
    (tmp_path / "boom.py").write_text("import mlflow\nwith mlflow.start_run():\n    pass\nraise SystemExit(3)\n")
    with pytest.raises(StageError, match="exited with code 3"):
        train(str(tmp_path), script="boom.py", env_manager="local", tracking=trk.Tracking(uri=mlflow_server.url), experiment="tests-fail")


def test_reuse_returns_the_finished_run_of_the_same_fingerprint(trained, mlflow_server):
    tracking = trk.Tracking(uri=mlflow_server.url)
    again = train(str(SENTIMENT), tracking=tracking, experiment="tests-sentiment", params={"rows": "600"}, reuse=True)
    assert again.run_id == trained.run_id and again.model_uri == trained.model_uri
    other = train(str(SENTIMENT), tracking=tracking, experiment="tests-sentiment", params={"rows": "300"}, reuse=True)
    assert other.run_id != trained.run_id



def test_extra_tags_reach_the_reused_run_too(trained, mlflow_server):
    """A sweep tags each point's run (train's tags input); a point that reuses a finished run tags it."""
    tracking = trk.Tracking(uri=mlflow_server.url)
    again = train(str(SENTIMENT), tracking=tracking, experiment="tests-sentiment", params={"rows": "600"}, reuse=True,
                  extra_tags={"mlops_actions.sweep.abc123": "p2"})
    assert again.reused and again.run_id == trained.run_id
    tags = mlflow.MlflowClient(tracking_uri=mlflow_server.url).get_run(trained.run_id).data.tags
    assert tags["mlops_actions.sweep.abc123"] == "p2" and tags["mlops_actions.stage"] == "train"
