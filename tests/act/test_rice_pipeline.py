"""The flagship rice pipeline (TensorFlow/Keras) adopted by reference, end to end under act.

A fresh adopter repository holds ``model_project/rice`` with a small set of SYNTHETIC grain images
committed in the Kaggle layout, and a short workflow calling
``mlops-actions/mlops-actions/.github/workflows/ml-pipeline.yml@v1`` with the rice preset's inputs
(what rice-pipeline.yml passes), training on a self-hosted GPU pool chosen by a JSON list of
labels (``train-runs-on``; act maps the ``gpu`` label to the runner image) and the image on
``build-runs-on``. Against real services: the
image folder is validated, the CNN trains on the runner and logs to MLflow with basic auth, the
champion alias is set, the artifacts are proposed in a PR on the GitHub double, the TensorFlow
serving image is built, smoke-tested, pushed with auth and health-checked, then pulled by digest
and asked to classify fresh grains. A rerun of the same commit changes nothing."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from act.harness import RUNNER_IMAGE, SLUG, act_binary, ensure_runner_image, git, keep_docs, make_adopter, run_act, snapshot_actions, workflow_outputs
from conftest import registry_tags, rice_make_data, rice_samples, serve_image
from github_double.server import GitHubDouble, assert_no_violations, git_branches

pytestmark = [pytest.mark.act, pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(act_binary() is None, reason="act is not installed")]

IMAGE_PATH = "acme/pipeline-rice"
IMAGE_SIZE = 40

ADOPTER_WORKFLOW = """\
name: rice
on: push
jobs:
  rice:
    uses: mlops-actions/mlops-actions/.github/workflows/ml-pipeline.yml@v1
    permissions: {contents: write, pull-requests: write, packages: write}
    with:
      project-path: model_project/rice
      metric: test_accuracy
      tracking-uri: ${{ vars.TRACKING_URI }}
      data-path: model_project/rice/data
      data-spec: model_project/rice/data-spec.yaml
      train-runs-on: '["self-hosted", "gpu"]'
      build-runs-on: '["ubuntu-latest"]'
      timeout-minutes: 40
      params: ${{ vars.PARAMS }}
      image: ${{ vars.IMAGE }}
      version: 0.3.0
      build-cache: ''   # off: test_pipeline covers the cache; the TensorFlow cache images cost a minute here
      ca-bundle: ${{ vars.CA_BUNDLE }}
    secrets: inherit
  record:
    needs: rice
    if: always()
    runs-on: ubuntu-latest
    steps:
      - env:
          NEEDS: ${{ toJSON(needs.rice) }}
        run: mkdir -p "$(dirname "$OUT_FILE")" && printf '%s\\n' "$NEEDS" > "$OUT_FILE"
"""
GPU_IMAGE = RUNNER_IMAGE.split(":")[0] + ":gpu-pool"
PARAMS = f"data_dir=data\nepochs=10\nimage_size={IMAGE_SIZE}\nseed=7"


@pytest.fixture(scope="module")
def rice(tmp_path_factory, mlflow_auth_server, registry, docker_engine):
    base = tmp_path_factory.mktemp("act-rice")
    actions_dir = snapshot_actions(base / "mlops-actions")
    adopter = make_adopter(base / "repo", project_dir="model_project/rice", project="rice")
    counts = rice_make_data().generate(adopter.workdir / "model_project" / "rice" / "data", images_per_class=150, size=64, seed=3)
    workflow = adopter.write_workflow("rice.yml", ADOPTER_WORKFLOW)
    git("add", "--all", "--force", "model_project/rice/data", ".github", cwd=adopter.workdir)
    git("commit", "--quiet", "-m", "rice data (synthetic) and pipeline", cwd=adopter.workdir)
    git("push", "--quiet", "origin", "main", cwd=adopter.workdir)
    github = GitHubDouble().start()
    github.add_repo(SLUG, default_branch="main")
    github.branches_of = lambda owner, repo: git_branches(adopter.origin)
    image = f"{registry.host}/{IMAGE_PATH}"
    secrets = {"GITHUB_TOKEN": github.token, "MLFLOW_TRACKING_USERNAME": mlflow_auth_server.username,
               "MLFLOW_TRACKING_PASSWORD": mlflow_auth_server.password,
               "REGISTRY_USERNAME": registry.username, "REGISTRY_PASSWORD": registry.password}
    variables = {"TRACKING_URI": mlflow_auth_server.url, "IMAGE": image, "PARAMS": PARAMS,
                 "CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
    state = {"adopter": adopter, "github": github, "image": image, "secrets": secrets, "counts": counts}
    # the GPU pool's runner: the bare runner image under its own tag, so the log shows which job ran where
    docker_engine.images.get(ensure_runner_image()).tag(GPU_IMAGE.split(":")[0], GPU_IMAGE.split(":")[1])
    for name in ("first", "second"):
        for stale in (".mlops/summary.json", ".mlops/summary.md"):
            (adopter.workdir / stale).unlink(missing_ok=True)
        run = run_act(adopter, workflow, actions_dir=actions_dir, scratch=base / name, secrets=secrets,
                      variables=variables, env={"GITHUB_API_URL": github.url}, timeout=2400,
                      extra_args=["-P", f"gpu={GPU_IMAGE}"])
        print(f"\nact rice pipeline {name}: {run.seconds:.1f}s, log {run.log_path}")
        state[name] = run
        keep_docs(base / name, adopter.workdir / ".mlops" / "summary.md", github)
        state[f"branches_after_{name}"] = adopter.branches()
        state[f"tags_after_{name}"] = sorted(registry_tags(registry, IMAGE_PATH))
    yield state
    github.stop()
    assert_no_violations(github)
    for img in docker_engine.images.list(name=image):
        for ref in img.tags:
            docker_engine.images.remove(ref, force=True)


def test_rice_trains_proposes_and_publishes(rice):
    out = workflow_outputs(rice["first"])
    assert json.loads(out["metrics"])["test_accuracy"] >= 0.9
    assert out["promoted"] == "true" and out["healthy"] == "true"
    assert out["pr-operation"] == "created" and len(rice["github"].pulls[SLUG]) == 1
    [pull] = rice["github"].pulls[SLUG]
    assert "confusion_matrix.png" in pull.body or "test_accuracy" in pull.body
    sha7 = git("rev-parse", "--short=7", "HEAD", cwd=rice["adopter"].workdir)
    assert rice["tags_after_first"] == sorted(["latest", f"main-{sha7}", "v0.3.0"])  # build-cache '': no cache tags


def test_rice_image_pulled_by_digest_classifies_fresh_grains(rice, registry, docker_engine):
    out = workflow_outputs(rice["first"])
    ref = f"{rice['image']}@{out['digest']}"
    docker_engine.images.pull(ref, auth_config={"username": registry.username, "password": registry.password})
    images, labels = rice_samples(per_class=3, seed=4242, image_size=IMAGE_SIZE)
    with serve_image(docker_engine, ref, timeout=180) as url:
        req = urllib.request.Request(f"{url}/invocations", data=json.dumps({"inputs": images}).encode(),
                                     headers={"Content-Type": "application/json"})
        predictions = np.asarray(json.loads(urllib.request.urlopen(req, timeout=60).read())["predictions"])
    assert predictions.shape == (15, 5)
    accuracy = float((predictions.argmax(axis=1) == np.asarray(labels)).mean())
    assert accuracy >= 0.8, (accuracy, predictions.argmax(axis=1).tolist(), labels)


def test_training_ran_on_the_runner_the_labels_chose(rice):
    """train-runs-on '["self-hosted", "gpu"]' put the train job on the gpu pool; every other job
    stayed on ubuntu-latest (build-runs-on as a one-label JSON list)."""
    starts = {}
    for line in rice["first"].log.splitlines():
        if "Start image=" in line and line.startswith("["):
            job = line[1:line.index("]")].split("/", 2)[-1].strip()  # [rice/ml-pipeline/<job name>]
            starts[job] = line.split("Start image=", 1)[1].strip()
    assert starts.get("train") == GPU_IMAGE, starts
    others = {job: image for job, image in starts.items() if job not in ("train", "record")}
    assert {"validate data", "champion / challenger", "serving image", "health check", "summary"} <= set(others), starts
    assert set(others.values()) == {RUNNER_IMAGE}, starts


def test_rice_rerun_changes_nothing(rice):
    first, second = workflow_outputs(rice["first"]), workflow_outputs(rice["second"])
    assert second["run-id"] == first["run-id"] and second["pr-operation"] == "unchanged"
    assert second["digest"] == first["digest"]
    assert rice["branches_after_second"] == rice["branches_after_first"]
    assert rice["tags_after_second"] == rice["tags_after_first"]
    assert len([r for r in rice["github"].requests if r.operation == "pulls/create"]) == 1


def test_no_secret_in_the_rice_logs(rice):
    for name in ("first", "second"):
        for key, value in rice["secrets"].items():
            if not key.endswith("_USERNAME"):
                assert value not in rice[name].log, f"{key} leaked into {rice[name].log_path}"
