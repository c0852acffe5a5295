"""The rice image classifier (TensorFlow/Keras) end to end, on SYNTHETIC images: train through the
package against a real MLflow server, fetch the run, render the serving context, build, smoke-test
and push the image to a registry with auth, pull it by digest, run it and classify fresh images."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import numpy as np
import pytest

from conftest import rice_samples, serve_image
from mlops_actions.stages import push_image as image_stage
from mlops_actions.core import tracking as trk
from mlops_actions.stages.fetch_artifacts import fetch
from mlops_actions.stages.render_dockerfile import render
from mlops_actions.stages.push_image import PushRequest, push_image
from mlops_actions.core.paths import resource
from mlops_actions.stages.train import train

pytestmark = pytest.mark.slow
RICE = resource("model_project") / "rice"
CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
IMAGE_SIZE = 40
# small and fast on 2 CPU cores (about 25 s of fitting), still well above 0.9 test accuracy
PARAMS = {"epochs": "10", "batch_size": "32", "image_size": str(IMAGE_SIZE), "images_per_class": "200", "seed": "7"}


@pytest.fixture(scope="module")
def rice_run(mlflow_server, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("rice") / "data"  # absent: the project generates it
    started = time.monotonic()
    result = train(str(RICE), tracking=trk.Tracking(uri=mlflow_server.url), experiment="tests-rice",
                   params={**PARAMS, "data_dir": str(data_dir)})
    wall = time.monotonic() - started
    print(f"\n[rice] training wall time {wall:.1f}s (fit {result.metrics.get('fit_seconds', 0):.1f}s), "
          f"test_accuracy {result.metrics.get('test_accuracy')}")
    return result, data_dir


def test_train_logs_accuracy_report_plots_and_model(rice_run, mlflow_server):
    import mlflow

    result, data_dir = rice_run
    assert (data_dir / "SYNTHETIC.txt").is_file() and len(list((data_dir / "train" / "Basmati").glob("*.jpg"))) == 140
    assert result.metrics["test_accuracy"] >= 0.90
    classes = ["Arborio", "Basmati", "Ipsala", "Jasmine", "Karacadag"]
    for cls in classes:
        assert {f"test_precision_{cls}", f"test_recall_{cls}", f"test_f1_{cls}"} <= set(result.metrics)
    assert "val_accuracy" in result.metrics and "loss" in result.metrics  # Keras autologging
    assert result.model_uri.startswith("models:/")
    client = mlflow.MlflowClient(mlflow_server.url)
    run = client.get_run(result.run_id)
    assert run.data.params["synthetic_data"] == "True" and run.data.params["image_size"] == str(IMAGE_SIZE)
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"confusion_matrix.png", "loss_curve.png", "accuracy_curve.png", "classification_report.json", "classes.json"} <= names
    report = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/classification_report.json"))
    assert set(classes) <= set(report) and report["accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    model = mlflow.models.get_model_info(result.model_uri)
    assert "tensorflow" in model.flavors and model.metadata["classes"] == classes
    assert list(model.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, IMAGE_SIZE, IMAGE_SIZE, 3]


def _timed(fn, name: str, timings: dict[str, float]):
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + time.monotonic() - started

    return wrapper


@pytest.mark.docker
def test_serving_image_classifies_grains(rice_run, mlflow_server, registry, docker_engine, tmp_path, monkeypatch):
    result, _ = rice_run
    fetched = fetch(result.run_id, tmp_path / "artifacts", tracking=trk.Tracking(uri=mlflow_server.url))
    assert fetched.flavor == "tensorflow" and (fetched.path / "confusion_matrix.png").is_file()
    example = fetched.model_path / "serving_input_example.json"
    assert np.asarray(json.loads(example.read_text())["inputs"]).shape == (5, IMAGE_SIZE, IMAGE_SIZE, 3)

    ctx = render(fetched.model_path, tmp_path / "image", ca_bundle=CA, version="0.1.0").context
    reqs = (ctx / "requirements.txt").read_text().split()
    assert any(r.startswith("tensorflow-cpu==") for r in reqs)
    assert not any(r.startswith(("mlflow", "tensorflow==")) for r in reqs)

    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("GITHUB_SHA", "a1ce000" + "0" * 33)
    image = f"{registry.host}/acme/rice"
    timings: dict[str, float] = {}
    for stage in ("build", "smoke_test", "push_tag"):  # time the stages of push_image
        monkeypatch.setattr(image_stage, stage, _timed(getattr(image_stage, stage), stage, timings))
    started = time.monotonic()
    pushed = push_image(PushRequest(context=ctx, image=image, version="0.1.0", username=registry.username,
                                    password=registry.password, default_branch="main"))
    build_push = time.monotonic() - started
    assert pushed.digest.startswith("sha256:") and pushed.image == f"{image}@{pushed.digest}"
    # the smoke test posted the logged input example: one image per class, in class order
    smoke = np.asarray(pushed.smoke["predictions"])
    assert smoke.shape == (5, 5) and np.allclose(smoke.sum(axis=1), 1, atol=1e-3)
    size = docker_engine.images.get(pushed.tags[0]).attrs["Size"]
    print(f"\n[rice] push_image {build_push:.1f}s: build {timings['build']:.1f}s, smoke test {timings['smoke_test']:.1f}s "
          f"(/ping after {pushed.smoke['ping_seconds']}s), push {timings['push_tag']:.1f}s; image {size / 1e6:.0f} MB; "
          f"smoke predictions argmax {smoke.argmax(axis=1).tolist()}")

    # Pull by digest: the registry must resolve it. The local tags are kept (test_image.py covers a
    # pull into an empty cache): re-downloading and unpacking 1.5 GB would cost about 40 s of the CI
    # budget, and removing the image would also drop the build cache of the TensorFlow layer.
    docker_engine.login(registry.username, registry.password, registry=registry.host)
    by_digest = f"{image}@{pushed.digest}"
    started = time.monotonic()
    pulled = docker_engine.images.pull(by_digest)
    print(f"[rice] pull by digest {time.monotonic() - started:.1f}s")
    assert pulled.id == pushed.image_id and by_digest in pulled.attrs["RepoDigests"]
    assert pulled.labels["dev.mlflow.flavor"] == "tensorflow" and pulled.attrs["Config"]["User"] == "10001:10001"
    with serve_image(docker_engine, by_digest) as url:
        images, labels = rice_samples(per_class=3, seed=20260)
        body = json.dumps({"instances": images}).encode()
        req = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
        proba = np.asarray(json.loads(urllib.request.urlopen(req, timeout=60).read())["predictions"])
        assert proba.shape == (len(images), 5) and np.allclose(proba.sum(axis=1), 1, atol=1e-3)
        pred = proba.argmax(axis=1)
        labels = np.asarray(labels)
        first = [int(pred[labels == k][0] == k) for k in range(5)]  # the first sample of each class
        print(f"[rice] served predictions {pred.tolist()} for labels {labels.tolist()}")
        assert sum(first) >= 4 and (pred == labels).mean() >= 0.8
        # the logged input example, sent as "inputs" (what the smoke test posts) gives the same answer
        req = urllib.request.Request(f"{url}/invocations", data=example.read_bytes(), headers={"Content-Type": "application/json"})
        assert np.allclose(json.loads(urllib.request.urlopen(req, timeout=60).read())["predictions"], smoke, atol=1e-5)
        version = json.loads(urllib.request.urlopen(f"{url}/version", timeout=5).read())
        assert version["flavor"] == "tensorflow" and version["version"] == "0.1.0"
        for ref in [*pushed.tags, by_digest]:  # untag, keep the layers: the next build reuses them
            try:
                docker_engine.images.remove(ref, noprune=True)
            except Exception:  # noqa: BLE001 - cleanup only
                pass


@pytest.mark.docker
def test_serving_faults_on_the_rice_image(rice_run, mlflow_server, docker_engine, tmp_path):
    """test_serving_faults.py's checks on the TensorFlow image, whose workers each load the model
    after the fork: a killed worker is replaced (its successor loads TensorFlow before accepting)
    while the other serves; saturation answers 503; SIGTERM drains the in-flight requests."""
    from test_serving_faults import (
        built_image,
        check_saturation,
        check_sigterm_drains,
        check_worker_replaced,
        slow_request,
    )

    fetched = fetch(rice_run[0].run_id, tmp_path / "artifacts", tracking=trk.Tracking(uri=mlflow_server.url))
    images, _ = rice_samples(per_class=4, seed=20261)

    def body(n: int) -> bytes:
        return json.dumps({"instances": (images * (n // len(images) + 1))[:n]}).encode()

    tag = "mlops-actions-test/rice-faults:latest"
    with built_image(docker_engine, fetched.model_path, tmp_path / "image", tag):
        with serve_image(docker_engine, tag, environment={"WORKERS": "2"}) as url:
            check_worker_replaced(url, 2, body(20), 20, within=30)
        with serve_image(docker_engine, tag, environment={"WORKERS": "2", "GRACE_PERIOD": "25"}) as url:
            check_sigterm_drains(url, slow_request(url, body, 100), grace=25)
        with serve_image(docker_engine, tag, environment={"WORKERS": "1", "MAX_CONCURRENCY": "2"}) as url:
            check_saturation(url, slow_request(url, body, 100), body(5), max_concurrency=2)
