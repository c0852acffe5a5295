"""Shared fixtures: real services on loopback (MLflow, the registry, the Docker engine, git) and
the OpenAPI-checked GitHub double. Session-scoped where start-up is slow."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from github_double.fixture import github_api  # noqa: F401 - re-exported fixture
from mlops_actions.core import local_services
from mlops_actions.core.docker import http_status
from mlops_actions.core.paths import resource

ROOT = resource(".")
SENTIMENT = ROOT / "model_project" / "sentiment"
RICE = ROOT / "model_project" / "rice"
ADMIN_PASSWORD = "mlops-admin-" + secrets.token_hex(6)
REGISTRY_USER = "ci-pusher"
REGISTRY_PASSWORD = "reg-" + secrets.token_hex(8)


def sentiment_generator():
    """``generate(path, rows, seed)`` of model_project/sentiment/make_data.py, a plain script loaded
    by path under its own name (model_project/rice has a make_data.py too)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sentiment_make_data", SENTIMENT / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


def rice_make_data():
    """model_project/rice/make_data.py loaded by path under its own name."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("rice_make_data", RICE / "make_data.py")
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    if spec.name not in sys.modules:
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return module


def rice_samples(per_class: int, seed: int, image_size: int = 40) -> tuple[list, list[int]]:
    """Fresh synthetic grains (a seed training never used), JPEG round trip and resize like training."""
    import io

    import numpy as np
    from PIL import Image

    make_data = rice_make_data()
    images, labels = [], []
    for label, cls in enumerate(make_data.CLASSES):
        rng = np.random.Generator(np.random.PCG64([seed, label]))
        for _ in range(per_class):
            buf = io.BytesIO()
            Image.fromarray(make_data.draw_grain(rng, cls, 64)).save(buf, "JPEG", quality=92)
            im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            images.append(np.asarray(im, dtype=np.float32).tolist())
            labels.append(label)
    return images, labels


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    """Backoff stays real but short in tests."""
    monkeypatch.setenv("MLOPS_RETRY_BASE_DELAY", "0.05")
    monkeypatch.setenv("MLOPS_RETRY_ATTEMPTS", "3")
    for var in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_REF", "GITHUB_SHA", "GITHUB_REPOSITORY",
                "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "GITHUB_TOKEN", "REGISTRY_PASSWORD",
                "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
                "MLFLOW_TRACKING_CLIENT_CERT_PATH", "DAGSHUB_USER_TOKEN", "DAGSHUB_USERNAME", "DAGSHUB_CLIENT_HOST"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    svc = local_services.start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield svc
    svc.stop()


@dataclass
class AuthServer:
    url: str
    username: str
    password: str


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory):
    """``mlflow server --app-name basic-auth``: 401 without credentials, like DagsHub."""
    svc = local_services.start_mlflow(tmp_path_factory.mktemp("mlflow-auth"), admin_password=ADMIN_PASSWORD)
    yield AuthServer(url=svc.url, username="admin", password=ADMIN_PASSWORD)
    svc.stop()


@pytest.fixture(scope="session")
def docker_engine():
    if not local_services.ensure_dockerd():
        if os.environ.get("MLOPS_REQUIRE_DOCKER") == "1":
            pytest.fail("MLOPS_REQUIRE_DOCKER=1 but no Docker engine could be started")
        pytest.skip("no Docker engine")
    local_services.ensure_base_image()
    import docker

    return docker.from_env(timeout=600)


@dataclass
class Registry:
    url: str
    host: str
    username: str
    password: str
    service: object


@pytest.fixture(scope="session")
def registry(tmp_path_factory, docker_engine):
    svc = local_services.start_registry(tmp_path_factory.mktemp("registry"), REGISTRY_USER, REGISTRY_PASSWORD)
    yield Registry(url=svc.url, host=svc.url.removeprefix("http://"), username=REGISTRY_USER, password=REGISTRY_PASSWORD, service=svc)
    svc.stop()


@pytest.fixture(scope="session")
def trained(mlflow_server, tmp_path_factory):
    """One real training run of the sentiment project on the MLflow server, shared by the tests."""
    from mlops_actions.core import tracking as trk
    from mlops_actions.stages.train import train

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    tracking = trk.Tracking(uri=mlflow_server.url)
    result = train(str(SENTIMENT), tracking=tracking, experiment="tests-sentiment", params={"rows": "600"})
    return result


@pytest.fixture(scope="session")
def fetched(trained, mlflow_server, tmp_path_factory):
    from mlops_actions.core import tracking as trk
    from mlops_actions.stages.fetch_artifacts import fetch

    return fetch(trained.run_id, tmp_path_factory.mktemp("fetched") / "artifacts", tracking=trk.Tracking(uri=mlflow_server.url))


@contextlib.contextmanager
def serve_image(engine, ref: str, timeout: float = 120, **run_options):
    """Run an image with its port 8080 on loopback, yield its base URL once /ping answers 200 (fail
    with the container's log otherwise), and remove the container afterwards. ``run_options`` go
    to ``containers.run`` (e.g. read_only=True); the container is ``url.container``."""
    port = local_services.free_port()
    box = engine.containers.run(ref, detach=True, ports={"8080/tcp": ("127.0.0.1", port)}, **run_options)
    url = ServedUrl(f"http://127.0.0.1:{port}")
    url.container = box
    try:
        deadline = time.monotonic() + timeout
        while http_status(url + "/ping") != 200:
            if time.monotonic() > deadline:
                pytest.fail(f"{ref}: /ping never answered 200: {box.logs(tail=20).decode(errors='replace')}")
            time.sleep(0.25)
        yield url
    finally:
        box.remove(force=True)


class ServedUrl(str):
    """The base URL of a served image; ``.container`` is its running container."""

    container = None


def registry_tags(registry, name: str) -> list[str]:
    """The tags of repository ``name`` on the test registry (empty when it does not exist)."""
    import base64
    import json
    import urllib.error
    import urllib.request

    auth = "Basic " + base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    req = urllib.request.Request(f"{registry.url}/v2/{name}/tags/list", headers={"Authorization": auth})
    try:
        return json.loads(urllib.request.urlopen(req, timeout=10).read()).get("tags") or []
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class GitRemote:
    origin: Path
    clone: Path


@pytest.fixture
def git_remote(tmp_path):
    """A bare origin with main holding one commit, and a clone of it (like actions/checkout)."""
    origin, clone = local_services.git_origin(tmp_path)
    return GitRemote(origin=origin, clone=clone)


@contextlib.contextmanager
def served_locally(model_dir: Path, info: Path, **options):
    """:func:`serve_locally` as a context: yields the URL, stops the server (SIGTERM) afterwards."""
    proc, url = serve_locally(model_dir, info, **options)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def serve_locally(model_dir: Path, info: Path, workers: int = 2, env: dict | None = None, timeout: float = 60):
    """The image's scoring server as a local process (``python -m mlops_actions.serving.server``) for
    ``model_dir`` with the rendered model-info.json; (process, url) once /ping answers 200."""
    import sys
    import urllib.error
    import urllib.request

    port = local_services.free_port()
    cmd = [sys.executable, "-m", "mlops_actions.serving.server", "--model", str(model_dir), "--port", str(port),
           "--workers", str(workers), "--info", str(info)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env={**os.environ, "ACCESS_LOG": "0", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if urllib.request.urlopen(url + "/ping", timeout=1).status == 200:
                return proc, url
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server did not start: {proc.stderr.read().decode()[-3000:]}")
        time.sleep(0.1)


def pickled_native_model(root: Path, module: str, source: str, cls: str) -> tuple[Path, Path, str]:
    """A native sklearn-flavor model written without mlflow under ``root``: an instance of ``cls``
    from ``source`` (saved as module ``module``), pickled by reference to that module, which the
    server imports. (model dir, model-info.json, PYTHONPATH holding the module)."""
    import json
    import os
    import pickle
    import sys

    (root / "code").mkdir()
    (root / "code" / f"{module}.py").write_text(source)
    sys.path.insert(0, str(root / "code"))
    try:
        model = root / "model"
        model.mkdir()
        (model / "model.pkl").write_bytes(pickle.dumps(getattr(__import__(module), cls)()))
    finally:
        sys.path.remove(str(root / "code"))
        sys.modules.pop(module, None)
    (model / "MLmodel").write_text(
        "flavors:\n"
        "  python_function: {loader_module: mlflow.sklearn, model_path: model.pkl}\n"
        "  sklearn: {pickled_model: model.pkl, serialization_format: pickle}\n"
    )
    info = root / "model-info.json"
    info.write_text(json.dumps({"flavor": "sklearn", "runtime": "native"}))
    path = os.pathsep.join(p for p in (str(root / "code"), os.environ.get("PYTHONPATH", "")) if p)
    return model, info, path


def post_invocations(url: str, payload: dict) -> tuple[int, dict]:
    """POST ``payload`` as JSON to ``url``/invocations: (status, JSON answer), an error status too."""
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        url + "/invocations", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def save_small_keras_model(path: Path, rng, **save_kwargs) -> None:
    """A seeded 4 → 8 → 3 softmax Keras model saved by ``mlflow.tensorflow`` at ``path``, with two
    rows drawn from ``rng`` as its input example (a [-1, 4] float32 tensor signature)."""
    import warnings

    import keras
    import mlflow

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.tensorflow.save_model(
            model, str(path), input_example=rng.normal(size=(2, 4)).astype("float32"), **save_kwargs
        )
