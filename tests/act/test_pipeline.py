"""The flagship sentiment pipeline adopted by reference, end to end under act.

A fresh adopter repository holds only ``model_project/sentiment`` and a short workflow that calls
``mlops-actions/mlops-actions/.github/workflows/sentiment-pipeline.yml@v1`` (resolved by act to
this checkout). Against real services: MLflow with basic auth, the registry with htpasswd, the
Docker engine, a bare git origin and the OpenAPI-checked GitHub double."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request

import pytest

from act.harness import SLUG, act_binary, make_adopter, run_act, snapshot_actions
from github_double.server import GitHubDouble, assert_no_violations, git_branches
from mlops_actions import manifest
from conftest import serve_image

pytestmark = [pytest.mark.act, pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(act_binary() is None, reason="act is not installed")]

IMAGE_PATH = "acme/pipeline-sentiment"
BRANCH = "mlops/sentiment-model"

# What an adopter writes (the ca-bundle line is this machine's TLS proxy; the record job is the test's).
ADOPTER_WORKFLOW = """\
name: model
on: push
jobs:
  sentiment:
    uses: mlops-actions/mlops-actions/.github/workflows/sentiment-pipeline.yml@v1
    permissions: {contents: write, pull-requests: write, packages: write}
    with:
      tracking-uri: ${{ vars.TRACKING_URI }}
      image: ${{ vars.IMAGE }}
      version: 1.0.0
      ca-bundle: ${{ vars.CA_BUNDLE }}
    secrets: inherit
  record:
    needs: sentiment
    if: always()
    runs-on: ubuntu-latest
    steps:
      - env:
          NEEDS: ${{ toJSON(needs.sentiment) }}
        run: mkdir -p "$(dirname "$OUT_FILE")" && printf '%s\\n' "$NEEDS" > "$OUT_FILE"
"""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, mlflow_auth_server, registry, docker_engine):
    base = tmp_path_factory.mktemp("act-pipeline")
    actions_dir = snapshot_actions(base / "mlops-actions")
    adopter = make_adopter(base / "repo", project_dir="model_project/sentiment")
    github = GitHubDouble().start()
    github.add_repo(SLUG, default_branch="main")
    github.branches_of = lambda owner, repo: git_branches(adopter.origin)
    workflow = adopter.write_workflow("model.yml", ADOPTER_WORKFLOW)
    image = f"{registry.host}/{IMAGE_PATH}"
    secrets = {"GITHUB_TOKEN": github.token, "MLFLOW_TRACKING_USERNAME": mlflow_auth_server.username,
               "MLFLOW_TRACKING_PASSWORD": mlflow_auth_server.password,
               "REGISTRY_USERNAME": registry.username, "REGISTRY_PASSWORD": registry.password}
    variables = {"TRACKING_URI": mlflow_auth_server.url, "IMAGE": image, "CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}

    def once(name: str):
        run = run_act(adopter, workflow, actions_dir=actions_dir, scratch=base / name, secrets=secrets,
                      variables=variables, env={"GITHUB_API_URL": github.url}, timeout=1500)
        print(f"\nact pipeline {name}: {run.seconds:.1f}s, log {run.log_path}")
        return run

    first = once("first")
    branches_after_first = adopter.branches()
    second = once("second")
    yield {"first": first, "second": second, "adopter": adopter, "github": github, "image": image,
           "branches_after_first": branches_after_first, "secrets": secrets}
    github.stop()
    assert_no_violations(github)
    for img in docker_engine.images.list(name=image):
        for ref in img.tags:
            docker_engine.images.remove(ref, force=True)


def _needs(run) -> dict:
    assert run.returncode == 0, run.describe()
    assert run.steps.get("result") == "success", run.steps
    return run.steps["outputs"]


def _auth(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_training_is_logged_to_the_authenticated_server(pipeline, mlflow_auth_server):
    out = _needs(pipeline["first"])
    req = urllib.request.Request(f"{mlflow_auth_server.url}/api/2.0/mlflow/runs/get?run_id={out['run-id']}",
                                 headers={"Authorization": _auth(mlflow_auth_server.username, mlflow_auth_server.password)})
    info = json.loads(urllib.request.urlopen(req, timeout=30).read())["run"]["info"]
    assert info["status"] == "FINISHED"
    assert json.loads(out["metrics"])["test_accuracy"] > 0.8
    assert out["model-uri"].startswith("models:/")


def test_artifacts_fetched_verified_and_proposed_in_one_pr(pipeline, tmp_path):
    out = _needs(pipeline["first"])
    adopter, github = pipeline["adopter"], pipeline["github"]
    assert out["pr-operation"] == "created" and out["pr-url"] == f"https://github.com/{SLUG}/pull/1"
    head = adopter.branches()[BRANCH]
    # the committed folder verifies against its own manifest: what was fetched is what is proposed
    tree = tmp_path / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", head, "models/sentiment"], cwd=adopter.origin, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    listed = manifest.verify(tree / "models" / "sentiment")
    assert "model/MLmodel" in listed and "confusion_matrix.png" in listed
    [pull] = [p for p in github.pulls[SLUG] if p.state == "open"]
    assert (pull.head, pull.base) == (BRANCH, "main") and out["run-id"] in pull.body


def test_image_pushed_with_auth_pulls_by_digest_and_predicts(pipeline, registry, docker_engine):
    out = _needs(pipeline["first"])
    image, digest = pipeline["image"], out["digest"]
    assert out["image"] == f"{image}@{digest}" and digest.startswith("sha256:")
    for img in docker_engine.images.list(name=image):
        for ref in img.tags:
            docker_engine.images.remove(ref, force=True)
    pulled = docker_engine.images.pull(f"{image}@{digest}", auth_config={"username": registry.username, "password": registry.password})
    assert pulled.labels["dev.mlflow.run-id"] == out["run-id"]
    with serve_image(docker_engine, f"{image}@{digest}") as url:
        body = {"dataframe_records": [{"review_text": "love it, great and reliable"}, {"review_text": "buggy, slow and it crashes"}]}
        req = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        assert json.loads(urllib.request.urlopen(req, timeout=10).read()) == {"predictions": [1, 0]}


def test_second_run_of_the_same_commit_changes_nothing(pipeline):
    first, second = _needs(pipeline["first"]), _needs(pipeline["second"])
    assert second["run-id"] == first["run-id"]  # the finished run of this fingerprint is reused
    assert second["pr-operation"] == "unchanged"
    assert pipeline["adopter"].branches() == pipeline["branches_after_first"]
    github = pipeline["github"]
    assert len(github.pulls[SLUG]) == 1
    assert len([r for r in github.requests if r.operation == "pulls/create"]) == 1
    assert second["digest"] == first["digest"]  # same commit, same model → the same image


def test_no_secret_in_the_logs(pipeline):
    for run in (pipeline["first"], pipeline["second"]):
        for name, value in pipeline["secrets"].items():
            assert value not in run.log, f"{name} leaked into {run.log_path}"
