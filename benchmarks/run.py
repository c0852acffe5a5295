"""Benchmark the render-dockerfile serving image against ``mlflow models build-docker`` and peers.

One command (see benchmarks/README.md): trains (or reuses, under ``--work``) the sentiment
(TF-IDF + LogisticRegression), rice (Keras CNN 64x64x3, 5 classes), xgboost, lightgbm and custom
pyfunc (code_paths, params) models on SYNTHETIC data,
builds both images of each (ours through render-dockerfile, MLflow's through ``mlflow models
generate-dockerfile`` with its FROM line pointed at the same local base image and the host CA
bundle given to pip), and measures image size, cold build, rebuild after a model-only change,
``docker run`` → first /ping 200, requests/s and p99 at concurrency 8 for 1-row and 100-row
payloads (wrk on loopback, bounded in time), and idle memory (cgroup usage less inactive page
cache, as ``docker stats`` shows it). Prints a markdown table with ratios and the targets, and
one row per flavor (runtime chosen, size, start, req/s) for the README.

Two more systems, for the same model and the same measures (``--systems``): ``previous``, our image
with the scoring server as it was at ``--previous-ref`` (everything else rendered as for ``ours``, so
the difference is the server alone), and ``mlserver``, Seldon's MLServer with its MLflow runtime (the
server KServe and Seldon Core use for MLflow models) on the same base image, answering the same
JSON at its MLflow-compatible ``POST /invocations``. Every system's answers to a few held-out rows are
checked against the model's own predictions (mlflow.pyfunc in this venv) before it is measured.

No timing is asserted anywhere: this prints. tests/unit/benchmarks/test_run.py checks the table code.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "python:3.11-slim"
PREVIOUS_REF = "208ef7f"  # the commit before the gunicorn server (f4d0c1c)
# The latest on PyPI on 2026-11-30. uvloop as of MLServer 1.7.1's release: from uvloop 0.22 on,
# asyncio.get_event_loop() raises in a fresh process, and every MLServer inference worker dies at
# start (mlserver/parallel/worker.py _ignore_signals), so the model never becomes ready.
MLSERVER = ("mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop==0.21.0")
CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"

# metric → (label, unit, higher is better, target ratio per model or None)
TARGETS = {
    "size_mb": ("image size", "MB", False, {"sentiment": 0.5, "rice": 0.25}),
    "cold_build_s": ("cold build", "s", False, None),
    "rebuild_s": ("rebuild after model-only change", "s", False, 0.2),
    "start_s": ("docker run → first /ping 200", "s", False, 0.5),
    "rps_1": ("req/s @8, 1 row", "req/s", True, 2.0),
    "p99_1_ms": ("p99 @8, 1 row", "ms", False, 1.0),
    "rps_100": ("req/s @8, 100 rows", "req/s", True, 2.0),
    "p99_100_ms": ("p99 @8, 100 rows", "ms", False, 1.0),
    "rss_mib": ("memory idle", "MiB", False, 0.5),
}
# Issue 18: image size and throughput within 10 % of the server before gunicorn.
PREVIOUS_TARGETS = {"size_mb": 1.1, "rps_1": 0.9, "rps_100": 0.9}
# system → column label; "ours" is compared against each of the others (its peers)
SYSTEMS = {"ours": "ours", "previous": "previous server", "mlserver": "MLServer", "mlflow": "build-docker"}
PEERS = ("mlflow", "previous", "mlserver")


# --- pure helpers (tested) -----------------------------------------------------------------------

def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def verdict(metric: str, model: str, r: float | None, peer: str = "mlflow") -> str:
    """The target of ours/peer for this metric: issue 1's against build-docker, issue 18's (within
    10 %) against the previous server, none against MLServer."""
    label, unit, higher, target = TARGETS[metric]
    if peer == "previous":
        target = PREVIOUS_TARGETS.get(metric)
    elif peer != "mlflow":
        target = None
    if isinstance(target, dict):
        target = target.get(model)
    if target is None:
        return "–"
    if r is None:
        return "n/a"
    ok = r >= target if higher else r <= target
    return ("met" if ok else "missed") + f" ({'≥' if higher else '≤'} {target:g}×)"


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _x(r: float | None) -> str:
    return fmt(r) + "×" if r is not None else "n/a"


def table(results: dict, peer: str = "mlflow") -> str:
    """results[model][system][metric] = number or None → a markdown table of ours against one peer
    (mlflow: build-docker, previous: the server before gunicorn, mlserver), with the targets."""
    lines = [f"| model | metric | {SYSTEMS[peer]} | ours | ratio | target |", "|---|---|---|---|---|---|"]
    for model, systems in results.items():
        runtime = systems.get("ours", {}).get("runtime", "")
        for metric, (label, unit, _, _) in TARGETS.items():
            theirs, ours = systems.get(peer, {}).get(metric), systems.get("ours", {}).get(metric)
            if theirs is None and ours is None:
                continue
            r = ratio(ours, theirs)
            name = f"{model} ({runtime})" if runtime else model
            lines.append(f"| {name} | {label} ({unit}) | {fmt(theirs)} | {fmt(ours)} | {_x(r)} | "
                         f"{verdict(metric, model, r, peer)} |")
    return "\n".join(lines)


def peers_table(results: dict, peers: list[str] | tuple[str, ...] = PEERS) -> str:
    """All systems side by side: ours, then each peer measured for the model with ours/peer."""
    lines = []
    for model, systems in results.items():
        present = [p for p in peers if systems.get(p)]
        if not present:
            continue
        header = "| model | metric | ours | " + " | ".join(f"{SYSTEMS[p]} | ours/{p}" for p in present) + " |"
        if lines:
            lines.append("")
        lines += [header, "|---|---|---|" + "---|---|" * len(present)]
        ours = systems.get("ours", {})
        for metric, (label, unit, _, _) in TARGETS.items():
            if all(systems.get(s, {}).get(metric) is None for s in ("ours", *present)):
                continue
            values = [systems[p].get(metric) for p in present]
            cells = [f"{fmt(v)} | {_x(ratio(ours.get(metric), v))}" for v in values]
            lines.append(f"| {model} | {label} ({unit}) | {fmt(ours.get(metric))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def same_predictions(a, b, tol: float = 1e-4) -> bool:
    """Two JSON answers hold the same predictions: equal labels, numbers within ``tol``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_predictions(a[k], b[k], tol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_predictions(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tol
    return a == b


def flavor_table(results: dict) -> str:
    """One row per model: its flavor, the runtime render-dockerfile chose, and image size, cold
    start and 1-row req/s of ours against build-docker's (same run)."""
    lines = [
        "| flavor | runtime chosen | image MB (build-docker → ours) | cold start s (→) | req/s @8, 1 row (→) |",
        "|---|---|---|---|---|",
    ]
    for model, systems in results.items():
        ours, theirs = systems.get("ours", {}), systems.get("mlflow", {})
        if not ours and not theirs:
            continue
        cells = []
        for metric in ("size_mb", "start_s", "rps_1"):
            r = ratio(ours.get(metric), theirs.get(metric))
            cells.append(f"{fmt(theirs.get(metric))} → {fmt(ours.get(metric))}"
                         + (f" ({fmt(r)}×)" if r is not None else ""))
        flavor = MODELS[model][1] if model in MODELS else model
        lines.append(f"| {flavor} | {ours.get('runtime', 'n/a')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_wrk(text: str) -> dict:
    """Requests/sec, p99 (ms) and non-2xx/errors from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*?timeout (\d+)", text)
    done = re.search(r"(\d+) requests in", text)
    completed = int(done.group(1)) if done else None
    return {
        "rps": float(rps.group(1)) if rps else None,
        # no request completed within the window: wrk prints 0 latencies, which are no measurement
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 and completed != 0 else None,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "timeouts": int(errors.group(1)) if errors else 0,
    }


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# --- models --------------------------------------------------------------------------------------

def _load(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sentiment_model(work: Path) -> tuple[Path, Path]:
    """The sentiment project's pipeline on synthetic reviews, saved as an MLflow model; a held-out CSV."""
    out, held = work / "models" / "sentiment", work / "data" / "sentiment-heldout.csv"
    if (out / "MLmodel").is_file() and held.is_file():
        return out, held
    import mlflow
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    gen = _load(ROOT / "model_project" / "sentiment" / "make_data.py", "bench_sentiment_data").generate
    data = work / "data" / "sentiment.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    gen(data, rows=2000, seed=42)
    gen(held, rows=500, seed=4242)
    df = pd.read_csv(data)
    df = df[df["rating"] != 3]
    model = Pipeline([
        ("features", ColumnTransformer([("tfidf", TfidfVectorizer(ngram_range=(1, 2), max_features=20000,
                                                                   sublinear_tf=True), "review_text")])),
        ("clf", LogisticRegression(C=4.0, max_iter=1000, random_state=42)),
    ])
    model.fit(df[["review_text"]], (df["rating"] >= 4).astype(int))
    shutil.rmtree(out, ignore_errors=True)
    mlflow.sklearn.save_model(model, str(out), input_example=df[["review_text"]].head(3))
    return out, held


def rice_model(work: Path) -> tuple[Path, Path | None]:
    """A Keras CNN (model_project/rice's architecture) on 64x64x3 synthetic grains, 5 classes."""
    out = work / "models" / "rice"
    if (out / "MLmodel").is_file():
        return out, None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT / "model_project" / "rice"))
    make_data = _load(ROOT / "model_project" / "rice" / "make_data.py", "make_data")
    modelling = _load(ROOT / "model_project" / "rice" / "modelling.py", "bench_rice_modelling")
    import mlflow
    import numpy as np

    data = work / "data" / "rice"
    if not (data / "train").is_dir():
        make_data.generate(data, images_per_class=80, size=64, seed=7)
    classes = modelling.find_classes(data)
    x_train, y_train = modelling.load_split(data, "train", classes, 64)
    x_test, y_test = modelling.load_split(data, "test", classes, 64)
    model = modelling.build_model(64, len(classes), 0.003, decay_steps=4 * -(-len(x_train) // 32))
    model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0)
    example = np.stack([x_test[np.flatnonzero(y_test == k)[0]] for k in range(len(classes))])
    shutil.rmtree(out, ignore_errors=True)
    mlflow.tensorflow.save_model(model, str(out), input_example=example, pip_requirements=modelling.pip_requirements(),
                                 metadata={"classes": classes})
    return out, None


def _tabular_data(work: Path, n_train: int = 3000, n_held: int = 500):
    """SYNTHETIC tabular data shared by the tabular flavors: 8 float features, 3 classes."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    cols = [f"f{i}" for i in range(8)]
    X = pd.DataFrame(rng.normal(size=(n_train + n_held, 8)), columns=cols)
    score = X["f0"] * 1.5 - X["f1"] + 0.5 * X["f2"] * X["f3"] + rng.normal(0, 0.3, len(X))
    y = np.digitize(score, [-0.7, 0.7])
    held = work / "data" / "tabular-heldout.csv"
    held.parent.mkdir(parents=True, exist_ok=True)
    X.iloc[n_train:].to_csv(held, index=False)
    return X.iloc[:n_train], y[:n_train], held


def xgboost_model(work: Path) -> tuple[Path, Path]:
    """An XGBClassifier (100 trees, depth 4) on the synthetic tabular data, via mlflow.xgboost."""
    out = work / "models" / "xgboost"
    X, y, held = _tabular_data(work)
    if (out / "MLmodel").is_file():
        return out, held
    import mlflow.xgboost
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=100, max_depth=4, n_jobs=1, random_state=0).fit(X, y)
    shutil.rmtree(out, ignore_errors=True)
    mlflow.xgboost.save_model(model, str(out), input_example=X.head(3))
    return out, held


def lightgbm_model(work: Path) -> tuple[Path, Path]:
    """An LGBMClassifier (100 trees) on the synthetic tabular data, via mlflow.lightgbm."""
    out = work / "models" / "lightgbm"
    X, y, held = _tabular_data(work)
    if (out / "MLmodel").is_file():
        return out, held
    import lightgbm
    import mlflow.lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=100, num_leaves=15, n_jobs=1, random_state=0, verbose=-1).fit(X, y)
    shutil.rmtree(out, ignore_errors=True)
    mlflow.lightgbm.save_model(model, str(out), input_example=X.head(3))
    return out, held


PYFUNC_CODE = '''"""The benchmark's custom pyfunc model, shipped in the model folder through code_paths."""
import pickle

import mlflow.pyfunc


def standardize(frame, mean, std):
    return (frame.to_numpy(dtype="float64") - mean) / std


class Scorer(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        with open(context.artifacts["state"], "rb") as fh:
            state = pickle.load(fh)
        self._clf, self._mean, self._std = state["clf"], state["mean"], state["std"]

    def predict(self, context, model_input, params=None):
        proba = self._clf.predict_proba(standardize(model_input, self._mean, self._std))
        floor = float((params or {}).get("min_confidence", 0.0))
        return [int(p.argmax()) if p.max() >= floor else -1 for p in proba]
'''


def pyfunc_model(work: Path) -> tuple[Path, Path]:
    """A custom mlflow.pyfunc.PythonModel (standardize from a code_paths module, then a pickled
    scikit-learn LogisticRegression) with a params schema: the generic path of every other flavor."""
    out = work / "models" / "pyfunc"
    X, y, held = _tabular_data(work)
    if (out / "MLmodel").is_file():
        return out, held
    import pickle

    import mlflow.pyfunc
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    code = work / "pyfunc-code" / "bench_pyfunc"
    code.mkdir(parents=True, exist_ok=True)
    (code / "__init__.py").write_text(PYFUNC_CODE)
    mean, std = X.mean().to_numpy(), X.std().to_numpy()
    clf = LogisticRegression(max_iter=500).fit((X.to_numpy() - mean) / std, y)
    state = work / "pyfunc-code" / "state.pkl"
    state.write_bytes(pickle.dumps({"clf": clf, "mean": mean, "std": std}))
    sys.path.insert(0, str(code.parent))
    from bench_pyfunc import Scorer  # type: ignore[import-not-found]  # pickled by reference: code_paths carries it

    signature = infer_signature(X.head(3), [0, 1, 2], params={"min_confidence": 0.0})
    shutil.rmtree(out, ignore_errors=True)
    mlflow.pyfunc.save_model(str(out), python_model=Scorer(), artifacts={"state": str(state)},
                             code_paths=[str(code)], signature=signature, input_example=X.head(3),
                             pip_requirements=[f"{d}=={_version(d)}" for d in
                                               ("scikit-learn", "numpy", "pandas", "cloudpickle", "mlflow")])
    return out, held


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


# name → (builder, flavor as the README's table names it)
MODELS = {
    "sentiment": (sentiment_model, "sklearn (TF-IDF + LogisticRegression)"),
    "rice": (rice_model, "tensorflow (Keras CNN)"),
    "xgboost": (xgboost_model, "xgboost (XGBClassifier)"),
    "lightgbm": (lightgbm_model, "lightgbm (LGBMClassifier)"),
    "pyfunc": (pyfunc_model, "python_function (custom, code_paths)"),
}


# --- docker --------------------------------------------------------------------------------------

def sh(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def build(context: Path, tag: str, no_cache: bool = False) -> float:
    started = time.monotonic()
    proc = subprocess.run(["docker", "build", "-q", "-t", tag, *(["--no-cache"] if no_cache else []), str(context)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"docker build {tag} failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


def image_mb(tag: str) -> float:
    return int(sh("docker", "image", "inspect", "-f", "{{.Size}}", tag).stdout.strip()) / 1e6


def ours_context(model: Path, out: Path, held: Path | None, runtime: str) -> tuple[Path, str, str]:
    sys.path.insert(0, str(ROOT / "scripts"))
    from mlops_actions.stages.render_dockerfile import render

    res = render(model, out, ca_bundle=CA, base_image=BASE_IMAGE, runtime=runtime, check_data=str(held) if held else "")
    return res.context, res.runtime, res.runtime_reason


def previous_context(model: Path, out: Path, held: Path | None, runtime: str, ref: str) -> tuple[Path, str, str, str]:
    """Our context with the server as it was at ``ref``: serve/ replaced by that commit's
    scripts/mlops_actions/serving/*.py and the gunicorn line dropped from requirements.txt;
    everything else as rendered today. Returns the context, runtime, reason and the full commit."""
    commit = sh("git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}").stdout.strip()
    ctx, runtime_, reason = ours_context(model, out, held, runtime)
    shutil.rmtree(ctx / "serve")
    (ctx / "serve").mkdir()
    prefix = "scripts/mlops_actions/serving/"
    for path in sh("git", "-C", str(ROOT), "ls-tree", "--name-only", commit, prefix).stdout.split():
        if path.endswith(".py"):
            (ctx / "serve" / Path(path).name).write_text(sh("git", "-C", str(ROOT), "show", f"{commit}:{path}").stdout)
    reqs = (ctx / "requirements.txt").read_text().splitlines()
    kept = [r for r in reqs if not re.match(r"gunicorn\b", r.strip(), re.I)]
    (ctx / "requirements.txt").write_text("\n".join(kept) + "\n")
    return ctx, runtime_, reason, commit


MLSERVER_DOCKERFILE = f"""# MLServer with its MLflow runtime, the model's own requirements installed (MLServer's
# docs for MLflow models); same base image as ours; the CA bundle in the builder stage only.
FROM {BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
COPY ca-bundle.crt /tmp/ca-bundle.crt
ENV PIP_CERT=/tmp/ca-bundle.crt
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

FROM {BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY model-settings.json /app/model-settings.json
COPY model/ /app/model/
EXPOSE 8080
CMD ["mlserver", "start", "/app"]
"""


def mlserver_context(name: str, model: Path, out: Path) -> tuple[Path, Path]:
    """MLServer (``MLSERVER`` pins) + mlserver-mlflow serving the MLflow model folder with
    ``mlserver_mlflow.MLflowRuntime``; HTTP on 8080 (its default), default settings otherwise."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(model, out / "model")
    model_reqs = (model / "requirements.txt").read_text().splitlines() if (model / "requirements.txt").is_file() else []
    (out / "requirements.txt").write_text("\n".join([*MLSERVER, *(r for r in model_reqs if r.strip())]) + "\n")
    (out / "model-settings.json").write_text(json.dumps(
        {"name": name, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": "./model"}}, indent=2))
    (out / "Dockerfile").write_text(MLSERVER_DOCKERFILE)
    shutil.copyfile(CA, out / "ca-bundle.crt")
    return out, out / "model"


def image_versions(tag: str, dists: tuple[str, ...]) -> dict:
    code = ("import importlib.metadata as m, json, sys\n"
            "def v(d):\n    try:\n        return m.version(d)\n"
            "    except m.PackageNotFoundError:\n        return None\n"
            "print(json.dumps({d: v(d) for d in sys.argv[1:]}))")
    proc = sh("docker", "run", "--rm", "--entrypoint", "python3", tag, "-c", code, *dists, check=False)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}


def mlflow_context(model: Path, out: Path) -> tuple[Path, Path]:
    """``mlflow models generate-dockerfile``, FROM pointed at the local base image, pip given the CA."""
    shutil.rmtree(out, ignore_errors=True)
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    sh(str(mlflow_bin), "models", "generate-dockerfile", "-m", str(model), "-d", str(out))
    text = (out / "Dockerfile").read_text()
    text = re.sub(r"^FROM \S+", f"FROM {BASE_IMAGE}\nCOPY ca-bundle.crt /etc/pip-ca.crt\nENV PIP_CERT=/etc/pip-ca.crt",
                  text, count=1, flags=re.M)
    (out / "Dockerfile").write_text(text)
    shutil.copyfile(CA, out / "ca-bundle.crt")
    model_copy = next(p for p in (out / "model_dir").iterdir() if p.is_dir())
    return out, model_copy


def touch_model(model_dir: Path) -> None:
    """A model-only change: a new file in the model folder (what a retrain changes: the model files)."""
    (model_dir / "BENCHMARK_NONCE.txt").write_text(uuid.uuid4().hex)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except Exception:  # noqa: BLE001
        return 0


def start(tag: str, timeout: float = 300, ready: str = "/ping") -> tuple[str, str, float]:
    port = free_port()
    started = time.monotonic()
    cid = sh("docker", "run", "-d", "-p", f"127.0.0.1:{port}:8080", tag).stdout.strip()
    url = f"http://127.0.0.1:{port}"
    while status(url + ready, 1.0) != 200:
        if time.monotonic() - started > timeout:
            logs = sh("docker", "logs", "--tail", "30", cid, check=False)
            sh("docker", "rm", "-f", cid, check=False)
            raise SystemExit(f"{tag}: {ready} never 200:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.05)
    return cid, url, time.monotonic() - started


def post(url: str, body: bytes, timeout: float = 300) -> dict:
    req = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def memory_mib(cid: str) -> float | None:
    text = sh("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", cid).stdout.split("/")[0].strip()
    m = re.match(r"([\d.]+)\s*([KMG]i?B)", text)
    if not m:
        return None
    unit = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "kB": 1e3 / 2**20, "MB": 1e6 / 2**20, "GB": 1e9 / 2**20}[m.group(2)]
    return float(m.group(1)) * unit


def load(url: str, body: bytes, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                          f'local f = io.open("{tmp}/body.json", "rb")\nwrk.body = f:read("*a")\nf:close()\n')
        proc = sh("wrk", "-t2", "-c8", f"-d{seconds}s", "--timeout", "60s", "--latency", "-s", str(script),
                  url + "/invocations")
    return parse_wrk(proc.stdout)


def check_rows(name: str, model: Path, held: Path | None, n: int = 12) -> tuple[bytes, list] | None:
    """A JSON body of ``n`` held-out rows and the model's own predictions of them (mlflow.pyfunc in
    this venv), the rows taken so that every predicted class of the first 200 appears; None for the
    image model (no held-out table)."""
    if held is None:
        return None
    import mlflow.pyfunc
    import pandas as pd

    frame = pd.read_csv(held).head(200)
    frame = frame[["review_text"]].astype(str) if name == "sentiment" else frame
    preds = pd.Series(list(mlflow.pyfunc.load_model(str(model)).predict(frame)), index=frame.index)
    per_class = max(1, n // max(1, preds.nunique()))
    picked = preds.groupby(preds).head(per_class).index.sort_values()
    frame, expected = frame.loc[picked], [v.item() if hasattr(v, "item") else v for v in preds.loc[picked]]
    data = frame.to_numpy().tolist()
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": data}}).encode(), expected


def payloads(name: str, model: Path, held: Path | None) -> dict[int, bytes]:
    if name == "sentiment":
        import pandas as pd

        texts = pd.read_csv(held)["review_text"].astype(str).tolist()
        rows = lambda n: [[texts[i % len(texts)]] for i in range(n)]  # noqa: E731
        return {n: json.dumps({"dataframe_split": {"columns": ["review_text"], "data": rows(n)}}).encode()
                for n in (1, 100)}
    if held is not None:  # a table model: rows of the held-out CSV
        import pandas as pd

        frame = pd.read_csv(held)
        rows = frame.to_numpy().tolist()
        split = lambda n: {"columns": list(frame.columns), "data": [rows[i % len(rows)] for i in range(n)]}  # noqa: E731
        return {n: json.dumps({"dataframe_split": split(n)}).encode() for n in (1, 100)}
    example = json.loads((model / "serving_input_example.json").read_text())["inputs"]
    images = [[[[int(round(v)) for v in px] for px in row] for row in img] for img in example]
    return {n: json.dumps({"instances": [images[i % len(images)] for i in range(n)]}).encode() for n in (1, 100)}


# --- the run -------------------------------------------------------------------------------------

def measure(name: str, system: str, context: Path, model_copy: Path, bodies: dict[int, bytes], args,
            ready: str = "/ping", check: tuple[bytes, list] | None = None) -> dict:
    tag = f"bench-{system}-{name}:latest"
    res: dict = {"load_avg": {"before": list(os.getloadavg())}, "ready_path": ready}
    rebuilds: list[float] = []
    if args.reuse_images and sh("docker", "image", "inspect", tag, check=False).returncode == 0:
        print(f"[{name}/{system}] reusing the image {tag} (no build measures)", flush=True)
        res["reused_image"] = True
    else:
        print(f"[{name}/{system}] cold build (--no-cache) ...", flush=True)
        res["cold_build_s"] = build(context, tag, no_cache=True)
        for _ in range(args.repeats):
            touch_model(model_copy)
            rebuilds.append(build(context, tag))
        res["rebuild_s"] = median(rebuilds)
    res["size_mb"] = image_mb(tag)
    starts, mems = [], []
    for i in range(args.repeats):
        cid, url, took = start(tag, ready=ready)
        try:
            starts.append(took)
            if i == 0 and check is not None:
                got = post(url, check[0])
                got = got.get("predictions", got) if isinstance(got, dict) else got
                res["predictions_match"] = same_predictions(got, check[1])
                print(f"[{name}/{system}] answers to {len(check[1])} held-out rows match the model's: "
                      f"{res['predictions_match']}", flush=True)
                if not res["predictions_match"]:
                    raise SystemExit(f"{name}/{system}: answers {got!r} differ from the model's {check[1]!r}; "
                                     "not measured")
            post(url, bodies[1])
            time.sleep(3)
            mems.append(memory_mib(cid))
            if i == 0:
                for n in (1, 100):
                    post(url, bodies[n])  # warm-up
                    w = load(url, bodies[n], args.seconds)
                    res[f"rps_{n}"], res[f"p99_{n}_ms"] = w["rps"], w["p99_ms"]
                    res[f"errors_{n}"] = w["non2xx"] + w["timeouts"]
        finally:
            sh("docker", "rm", "-f", cid, check=False)
    res["start_s"], res["rss_mib"] = median(starts), median(mems)
    res["load_avg"]["after"] = list(os.getloadavg())
    res["raw"] = {"rebuilds": rebuilds, "starts": starts, "mems": mems}
    print(f"[{name}/{system}] {json.dumps({k: v for k, v in res.items() if k != 'raw'})}", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work",
                    help="models, contexts, results (reused)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of: " + ", ".join(MODELS))
    ap.add_argument("--runtime", default="auto", help="render-dockerfile runtime for our images")
    ap.add_argument("--repeats", type=int, default=3, help="runs of rebuild, start and idle memory (median)")
    ap.add_argument("--seconds", type=int, default=10, help="load duration per throughput point")
    ap.add_argument("--systems", default="ours,mlflow",
                    help=f"which images to measure, comma list of: {', '.join(SYSTEMS)}; "
                    "the others are taken from results.json")
    ap.add_argument("--previous-ref", default=PREVIOUS_REF, help="git ref of the server the 'previous' image runs")
    ap.add_argument("--peer", default="all",
                    help=f"whose ratios ours/peer the tables print: all (default) or a comma list of: "
                    f"{', '.join(PEERS)}")
    ap.add_argument("--reuse-images", action="store_true",
                    help="measure an existing bench-<system>-<model> image as it is (no cold build, no rebuild): "
                    "start, req/s, p99 and memory again, e.g. to interleave systems on a loaded machine")
    ap.add_argument("--table-only", action="store_true", help="print the table of the saved results.json")
    args = ap.parse_args(argv)
    saved = args.work / "results.json"
    results: dict = json.loads(saved.read_text()) if saved.is_file() else {}
    peers = list(PEERS) if args.peer == "all" else args.peer.split(",")
    for option, given, known in (("--models", args.models.split(","), MODELS),
                                 ("--systems", args.systems.split(","), SYSTEMS), ("--peer", peers, PEERS)):
        unknown = [name for name in given if name not in known]
        if unknown:
            print(f"{option}: unknown name '{unknown[0]}'; use a comma list of: {', '.join(known)}", file=sys.stderr)
            return 2
    if args.table_only:
        print(tables(results, peers))
        return 0
    systems = set(args.systems.split(","))
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        model, held = MODELS[name][0](args.work)
        bodies = payloads(name, model, held)
        check = check_rows(name, model, held)
        results.setdefault(name, {})
        ctx_root = args.work / "contexts" / name
        ctx_root.mkdir(parents=True, exist_ok=True)
        if "ours" in systems:
            ctx, runtime, reason = ours_context(model, ctx_root / "ours", held, args.runtime)
            print(f"[{name}/ours] runtime {runtime}: {reason}", flush=True)
            results[name]["ours"] = {"runtime": runtime, "runtime_reason": reason,
                                     **measure(name, "ours", ctx, ctx / "model", bodies, args, check=check)}
            saved.write_text(json.dumps(results, indent=2))
        if "previous" in systems:
            pctx, runtime, reason, commit = previous_context(model, ctx_root / "previous", held, args.runtime,
                                                             args.previous_ref)
            print(f"[{name}/previous] server of {commit[:12]}, runtime {runtime}", flush=True)
            results[name]["previous"] = {"ref": commit, "runtime": runtime,
                                         **measure(name, "previous", pctx, pctx / "model", bodies, args, check=check)}
            saved.write_text(json.dumps(results, indent=2))
        if "mlserver" in systems:
            sctx, smodel = mlserver_context(name, model, ctx_root / "mlserver")
            res = measure(name, "mlserver", sctx, smodel, bodies, args, ready="/v2/health/ready", check=check)
            res["versions"] = image_versions(f"bench-mlserver-{name}:latest",
                                             ("mlserver", "mlserver-mlflow", "mlflow", "fastapi", "uvicorn"))
            print(f"[{name}/mlserver] versions {res['versions']}", flush=True)
            results[name]["mlserver"] = res
            saved.write_text(json.dumps(results, indent=2))
        if "mlflow" in systems:
            mctx, mmodel = mlflow_context(model, ctx_root / "mlflow")
            results[name]["mlflow"] = measure(name, "mlflow", mctx, mmodel, bodies, args, check=check)
            saved.write_text(json.dumps(results, indent=2))
    print()
    print(tables(results, peers))
    return 0


def tables(results: dict, peers: list[str]) -> str:
    """Ours against each chosen peer (with the targets), all systems side by side, the flavor rows."""
    parts = [f"ours vs {SYSTEMS[p]}:\n\n" + table(results, p) for p in peers if any(s.get(p) for s in results.values())]
    side = peers_table(results, peers)
    return "\n\n".join([*parts, *([side] if side else []), flavor_table(results)])


if __name__ == "__main__":
    sys.exit(main())
