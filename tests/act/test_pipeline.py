"""The flagship sentiment pipeline adopted by reference, end to end under act.

A fresh adopter repository holds only ``model_project/sentiment`` and a short workflow that calls
``mlops-actions/mlops-actions/.github/workflows/ml-pipeline.yml@v1`` (resolved by act to this
checkout) with the sentiment preset's inputs (what sentiment-pipeline.yml passes; README.md:2 runs
that preset itself, in tests/act/test_snippets_act.py). Against real services: MLflow with basic auth, the registry with htpasswd, the
Docker engine, a bare git origin and the OpenAPI-checked GitHub double."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request

import pytest

from act.harness import SLUG, act_binary, basic_auth, keep_docs, make_adopter, run_act, snapshot_actions, workflow_outputs
from github_double.server import GitHubDouble, assert_no_violations, git_branches
from mlops_actions.core import manifest
from conftest import git, registry_tags, sentiment_generator, serve_image

pytestmark = [pytest.mark.act, pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(act_binary() is None, reason="act is not installed")]

IMAGE_PATH = "acme/pipeline-sentiment"
PROD_PATH = "acme/prod-sentiment"
BRANCH = "mlops/sentiment-model"
BETTER_PARAMS = "ngram_max=3"  # trigrams too: test accuracy 0.9889 against the first run's 0.9852

# What an adopter writes (the ca-bundle line is this machine's TLS proxy; the record job is the test's).
ADOPTER_WORKFLOW = """\
name: model
on: push
jobs:
  sentiment:
    uses: mlops-actions/mlops-actions/.github/workflows/ml-pipeline.yml@v1
    permissions: {contents: write, pull-requests: write, packages: write}
    with:
      project-path: model_project/sentiment
      metric: test_accuracy
      data-path: model_project/sentiment/data/reviews.csv
      data-spec: model_project/sentiment/data-spec.yaml
      tracking-uri: ${{ vars.TRACKING_URI }}
      image: ${{ vars.IMAGE }}
      prod-image: ${{ vars.PROD_IMAGE }}
      version: 1.0.0
      params: ${{ vars.PARAMS }}
      ca-bundle: ${{ vars.CA_BUNDLE }}
      shadow-previous-champion: true
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


def _commit_data(adopter, text: str, message: str) -> None:
    path = adopter.workdir / "model_project" / "sentiment" / "data" / "reviews.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    git("add", "--force", str(path), cwd=adopter.workdir)
    git("commit", "--quiet", "-m", message, cwd=adopter.workdir)
    git("push", "--quiet", "origin", "main", cwd=adopter.workdir)


def _experiment_runs(server, experiment: str) -> int:
    headers = {"Authorization": basic_auth(server.username, server.password), "Content-Type": "application/json"}
    req = urllib.request.Request(f"{server.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}", headers=headers)
    exp_id = json.loads(urllib.request.urlopen(req, timeout=30).read())["experiment"]["experiment_id"]
    body = json.dumps({"experiment_ids": [exp_id], "max_results": 1000}).encode()
    req = urllib.request.Request(f"{server.url}/api/2.0/mlflow/runs/search", data=body, headers=headers)
    return len(json.loads(urllib.request.urlopen(req, timeout=30).read()).get("runs") or [])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, mlflow_auth_server, registry, docker_engine):
    """Five runs of the adopter's workflow: a first run on valid data, a rerun of the same commit,
    a run whose params make a worse model (the challenger loses), one whose params make a better
    model (it wins, and its image carries the first champion in shadow), and a commit of invalid
    data."""
    base = tmp_path_factory.mktemp("act-pipeline")
    actions_dir = snapshot_actions(base / "mlops-actions")
    adopter = make_adopter(base / "repo", project_dir="model_project/sentiment")
    generate = sentiment_generator()
    csv_path = base / "reviews.csv"
    generate(csv_path, rows=1200, seed=7)
    good = csv_path.read_text(encoding="utf-8")
    _commit_data(adopter, good, "reviews data")
    github = GitHubDouble().start()
    github.add_repo(SLUG, default_branch="main")
    github.branches_of = lambda owner, repo: git_branches(adopter.origin)
    workflow = adopter.write_workflow("model.yml", ADOPTER_WORKFLOW)
    git("add", "--all", cwd=adopter.workdir)
    git("commit", "--quiet", "-m", "mlops pipeline", cwd=adopter.workdir)
    git("push", "--quiet", "origin", "main", cwd=adopter.workdir)
    image, prod = f"{registry.host}/{IMAGE_PATH}", f"{registry.host}/{PROD_PATH}"
    secrets = {"GITHUB_TOKEN": github.token, "MLFLOW_TRACKING_USERNAME": mlflow_auth_server.username,
               "MLFLOW_TRACKING_PASSWORD": mlflow_auth_server.password,
               "REGISTRY_USERNAME": registry.username, "REGISTRY_PASSWORD": registry.password}
    variables = {"TRACKING_URI": mlflow_auth_server.url, "IMAGE": image, "PROD_IMAGE": prod,
                 "CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt", "PARAMS": ""}
    state: dict = {"adopter": adopter, "github": github, "image": image, "prod": prod, "secrets": secrets}

    def once(name: str, **extra_vars):
        for stale in (".mlops/summary.json", ".mlops/summary.md"):
            (adopter.workdir / stale).unlink(missing_ok=True)
        run = run_act(adopter, workflow, actions_dir=actions_dir, scratch=base / name, secrets=secrets,
                      variables=dict(variables, **extra_vars), env={"GITHUB_API_URL": github.url}, timeout=1500)
        print(f"\nact pipeline {name}: {run.seconds:.1f}s, log {run.log_path}")
        summary = adopter.workdir / ".mlops" / "summary.json"
        run.summary = json.loads(summary.read_text()) if summary.is_file() else {}
        keep_docs(base / name, summary.with_suffix(".md"), github)
        state[name] = run
        state[f"branches_after_{name}"] = adopter.branches()
        state[f"pulls_after_{name}"] = [(p.head, p.base, p.body) for p in github.pulls.get(SLUG, []) if p.state == "open"]
        state[f"tags_after_{name}"] = sorted(registry_tags(registry, IMAGE_PATH))
        state[f"runs_after_{name}"] = _experiment_runs(mlflow_auth_server, "sentiment")
        return run

    once("first")
    once("second")
    once("losing", PARAMS="C=0.0005\nmax_features=30")
    once("better", PARAMS=BETTER_PARAMS)
    # invalid data: one class only and empty reviews; validate-data must stop the run before training
    rows = good.splitlines()
    bad = "\n".join([rows[0]] + ['"",5' if i % 5 == 0 else f'"fine app number {i}",5' for i in range(600)]) + "\n"
    _commit_data(adopter, bad, "broken export")
    once("invalid")
    yield state
    github.stop()
    assert_no_violations(github)
    for name in (image, prod):
        for img in docker_engine.images.list(name=name):
            for ref in img.tags:
                docker_engine.images.remove(ref, force=True)


def test_training_is_logged_to_the_authenticated_server(pipeline, mlflow_auth_server):
    out = workflow_outputs(pipeline["first"])
    req = urllib.request.Request(f"{mlflow_auth_server.url}/api/2.0/mlflow/runs/get?run_id={out['run-id']}",
                                 headers={"Authorization": basic_auth(mlflow_auth_server.username, mlflow_auth_server.password)})
    info = json.loads(urllib.request.urlopen(req, timeout=30).read())["run"]["info"]
    assert info["status"] == "FINISHED"
    assert json.loads(out["metrics"])["test_accuracy"] > 0.8
    assert out["model-uri"].startswith("models:/")


def test_artifacts_fetched_verified_and_proposed_in_one_pr(pipeline, tmp_path):
    out = workflow_outputs(pipeline["first"])
    adopter = pipeline["adopter"]
    assert out["pr-operation"] == "created" and out["pr-url"] == f"https://github.com/{SLUG}/pull/1"
    head = pipeline["branches_after_first"][BRANCH]
    # the committed folder verifies against its own manifest: what was fetched is what is proposed
    tree = tmp_path / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", head, "models/sentiment"], cwd=adopter.origin, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    listed = manifest.verify(tree / "models" / "sentiment")
    assert "model/MLmodel" in listed and "confusion_matrix.png" in listed and "metric_trend.png" in listed
    assert (tree / "models" / "sentiment" / "metric_trend.png").read_bytes()[:4] == b"\x89PNG"
    [(pull_head, pull_base, body)] = pipeline["pulls_after_first"]  # the "better" run updates it later
    assert (pull_head, pull_base) == (BRANCH, "main") and out["run-id"] in body
    # the verdict block first: the gate against the champion with the run link, the data checks, the scan
    assert body.index("### Verdict") < body.index("### Metrics")
    assert "| 🏆 | gate | **first champion**: no champion yet · [challenger run](http://127.0.0.1:" in body
    assert "| ✅ | data | valid" in body and "| ✅ | scan | passed: 1 model file(s), 0 finding(s) |" in body
    # the propose job waited for the image: the pushed digest, its smoke test and the health check
    image_row = re.search(r"^\| ✅ \| image \| `([^`]+)`; smoke test passed: (\d+) example row\(s\) predicted; "
                          r"health check passed \|$", body, re.M)
    assert image_row and image_row[1] == out["image"] and int(image_row[2]) >= 1, body[:3000]
    # then the deciding metric's trend, then the metrics with it first and autologging's folded away
    trend = body.index("models/sentiment/metric_trend.png?raw=true)")
    assert body.index("### Verdict") < trend < body.index("### Metrics")
    metrics = body[body.index("### Metrics"):body.index("### Parameters")]
    assert metrics.split("\n")[3].startswith("| test_accuracy |"), metrics
    assert "more metrics logged by autologging" in metrics and metrics.index("| training_score |") > metrics.index("<details>")
    # the propose job scanned what it committed, and its report is a section of the body
    assert "### 🔎 Model scan\n✅ **passed**: no unsafe operator in 1 model file(s)" in body
    assert "| `model/model.pkl` | pickle globals |" in body


def test_image_pushed_with_auth_pulls_by_digest_and_predicts(pipeline, registry, docker_engine):
    out = workflow_outputs(pipeline["first"])
    image, digest = pipeline["image"], out["digest"]
    assert out["image"] == f"{image}@{digest}" and digest.startswith("sha256:")
    sha7 = git("rev-parse", "--short=7", "HEAD~1", cwd=pipeline["adopter"].workdir)  # the commit of the first runs
    # the image's tags, and the registry build cache beside them (build-cache: buildcache, mode=max)
    assert pipeline["tags_after_first"] == sorted(["latest", f"main-{sha7}", "v1.0.0", "buildcache", "buildcache-builder"])
    assert "no build cache at" in pipeline["first"].log  # the first build had none to read: a notice
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
        # the pipeline baked data-path's profile into the image (drift-profile-data empty: data-path)
        drift = json.loads(urllib.request.urlopen(f"{url}/monitoring/drift", timeout=10).read())
    assert drift["reference"]["source"].startswith("reviews.csv, ") and drift["reference"]["rows"] > 100, drift
    assert [f["name"] for f in drift["features"]] == ["review_text"] and drift["window"]["rows"] == 2, drift
    assert set(drift["predictions"]["reference"]) >= {"0", "1"}, drift


def test_first_model_becomes_champion_passes_health_and_is_promoted_to_prod(pipeline, registry):
    out = workflow_outputs(pipeline["first"])
    assert out["promoted"] == "true" and out["model-version"] == "1"
    assert out["healthy"] == "true"
    assert out["prod-image"] == f"{pipeline['prod']}@{out['digest']}"  # copied by digest, not rebuilt
    assert sorted(registry_tags(registry, PROD_PATH)) == ["latest", "v1.0.0"]
    summary = pipeline["first"].summary
    assert summary["status"] == "success"
    results = {s["job"]: s["result"] for s in summary["stages"]}
    assert results == {"data": "success", "train": "success", "select": "skipped", "gate": "success", "propose": "success",
                       "image": "success", "health": "success", "promote": "success"}
    assert {s["job"]: s["reason"] for s in summary["stages"]}["select"] == "no sweep input"
    assert summary["facts"]["digest"] == out["digest"] and summary["facts"]["pr-url"] == out["pr-url"]
    assert summary["context"]["event_name"] == "push"


def test_second_run_of_the_same_commit_changes_nothing(pipeline):
    first, second = workflow_outputs(pipeline["first"]), workflow_outputs(pipeline["second"])
    assert second["run-id"] == first["run-id"]  # the finished run of this fingerprint is reused
    assert second["model-version"] == first["model-version"] and second["promoted"] == "true"  # decision recorded once
    assert second["pr-operation"] == "unchanged"
    assert pipeline["branches_after_second"] == pipeline["branches_after_first"]
    github = pipeline["github"]
    assert len([r for r in github.requests if r.operation == "pulls/create"]) == 1
    assert second["digest"] == first["digest"]  # same commit, same model → the same image
    assert pipeline["tags_after_second"] == pipeline["tags_after_first"]
    # the second build read the cache the first stored: every step but ARG and the two FROMs hit
    cached = re.search(r"build cache: (\d+) of (\d+) steps from cache", pipeline["second"].log)
    assert cached and int(cached[1]) >= int(cached[2]) - 3, cached


def test_losing_challenger_opens_no_pr_and_builds_no_image(pipeline):
    first, losing = workflow_outputs(pipeline["first"]), workflow_outputs(pipeline["losing"])
    assert losing["run-id"] != first["run-id"] and losing["promoted"] == "false"
    assert float(json.loads(losing["metrics"])["test_accuracy"]) < float(json.loads(first["metrics"])["test_accuracy"])
    assert losing["pr-url"] == "" and losing["image"] == "" and losing["digest"] == ""
    assert pipeline["branches_after_losing"] == pipeline["branches_after_first"]
    assert pipeline["tags_after_losing"] == pipeline["tags_after_first"]
    assert len(pipeline["github"].pulls[SLUG]) == 1
    stages = {s["job"]: s for s in pipeline["losing"].summary["stages"]}
    assert stages["gate"]["result"] == "success" and "test_accuracy" in stages["gate"]["reason"]
    for job in ("propose", "image"):
        assert stages[job]["result"] == "skipped" and stages[job]["reason"].startswith("challenger lost"), stages[job]
    assert stages["health"]["result"] == "skipped" and stages["health"]["reason"]


def test_a_better_model_ships_with_the_previous_champion_beside_it_in_shadow(pipeline, registry, docker_engine):
    """shadow-previous-champion: the winner's image carries the model it replaces (the first run's,
    v1) as its challenger; the health check scores its probes with both and the updated pull
    request says how often they agreed."""
    first, better = workflow_outputs(pipeline["first"]), workflow_outputs(pipeline["better"])
    assert better["promoted"] == "true" and better["model-version"] == "3", better  # v2 lost
    assert float(json.loads(better["metrics"])["test_accuracy"]) > float(json.loads(first["metrics"])["test_accuracy"])
    assert better["healthy"] == "true" and better["digest"] != first["digest"]
    agreement = float(better["challenger-agreement"])
    assert 0.5 <= agreement <= 1.0, better  # two good models of the same reviews mostly agree
    # one pull request, updated: its image row names the previous champion and the agreement
    [pull] = [p for p in pipeline["github"].pulls[SLUG] if p.state == "open"]
    assert better["pr-operation"] == "updated" and better["run-id"] in pull.body
    share = f"{agreement * 100:.1f} %"
    assert (f"health check passed; the previous champion (v1) beside it in shadow agreed on {share} of the probe "
            "rows |") in pull.body, pull.body[:3000]
    # the image serves the new model and reports the old one beside it
    image = docker_engine.images.pull(better["image"], auth_config={"username": registry.username,
                                                                    "password": registry.password})
    assert image.labels["dev.mlflow.run-id"] == better["run-id"]
    assert image.labels["io.github.mlops-actions.challenger.run-id"] == first["run-id"]
    with serve_image(docker_engine, better["image"], environment={"SHADOW_RATIO": "1"}) as url:
        version = json.loads(urllib.request.urlopen(f"{url}/version", timeout=10).read())
        assert version["challenger"]["run_id"] == first["run-id"], version
        body = {"dataframe_records": [{"review_text": "love it, great and reliable"}]}
        req = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        assert json.loads(urllib.request.urlopen(req, timeout=10).read()) == {"predictions": [1]}
        monitoring = json.loads(urllib.request.urlopen(f"{url}/monitoring", timeout=10).read())
    assert monitoring["challenger"]["run_id"] == first["run-id"] and monitoring["champion"]["run_id"] == better["run-id"]


def test_invalid_data_stops_before_training(pipeline):
    run = pipeline["invalid"]
    # act stops the caller's other jobs once a called workflow failed (GitHub would still run the
    # adopter's `if: always()` record job), so the outcome is read from act and the summary JSON
    assert run.returncode != 0 and run.steps.get("result") in (None, "failure"), run.describe()
    assert pipeline["runs_after_invalid"] == pipeline["runs_after_better"]  # no MLflow run was started
    assert pipeline["branches_after_invalid"].get(BRANCH) == pipeline["branches_after_better"].get(BRANCH)
    assert pipeline["tags_after_invalid"] == pipeline["tags_after_better"]
    assert any("data invalid" in line for line in run.error_lines()), run.error_lines()
    summary = run.summary
    assert summary["status"] == "failure"
    stages = {s["job"]: s for s in summary["stages"]}
    assert stages["data"]["result"] == "failure" and "data invalid" in stages["data"]["reason"]
    # the failing check by name with its numbers, said once: the rows below point one level up
    reason = stages["data"]["reason"]
    assert re.match(r"data invalid: [a-z-]+( [^:]+)?: .+ \(expected .+\)", reason), reason
    assert stages["train"]["result"] == "skipped" and stages["train"]["reason"] == "validate data failure"
    assert stages["gate"]["reason"] == "train skipped" and stages["health"]["reason"] == "serving image skipped"
    assert all(stages[j]["result"] == "skipped" for j in ("gate", "propose", "image", "health", "promote"))


def test_no_secret_in_logs_workspace_or_image(pipeline, docker_engine, tmp_path):
    """Known secret values are searched in every act log, every file the runs left in the
    workspace, and the pushed image: its saved layers, history, labels and environment."""
    secrets = pipeline["secrets"]
    haystacks: list[tuple[str, bytes]] = []
    for name in ("first", "second", "losing", "better", "invalid"):
        haystacks.append((f"act log {name}", pipeline[name].log.encode()))
    workdir = pipeline["adopter"].workdir
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert len(files) > 20
    haystacks += [(str(p.relative_to(workdir)), p.read_bytes()) for p in files]
    digest = workflow_outputs(pipeline["first"])["digest"]
    ref = f"{pipeline['image']}@{digest}"
    image = docker_engine.images.pull(ref, auth_config={"username": pipeline["secrets"]["REGISTRY_USERNAME"],
                                                        "password": pipeline["secrets"]["REGISTRY_PASSWORD"]})
    saved = b"".join(image.save(named=False))
    assert len(saved) > 10_000_000
    haystacks.append(("docker save", saved))
    haystacks.append(("docker history", json.dumps(image.history()).encode()))
    haystacks.append(("labels and env", json.dumps(image.attrs["Config"]).encode()))
    hits = [(where, name) for where, blob in haystacks for name, value in secrets.items()
            if not name.endswith("_USERNAME") and value.encode() in blob]
    assert hits == [], hits
    print(f"\n{len(haystacks)} places searched ({sum(len(b) for _, b in haystacks) / 1e6:.0f} MB), "
          f"{sum(1 for n in secrets if not n.endswith('_USERNAME'))} secret values, 0 hits")
