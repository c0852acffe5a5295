"""The ONNX serving image of the sentiment model against the real Docker engine: render with
runtime 'onnx' (equivalence checked on the input example and a held-out sample), build, run it
with a read-only root file system, and compare its answers with the native model's; /metrics
after real requests."""

from __future__ import annotations

import json
import os
import re
import urllib.request

import pandas as pd
import pytest

from conftest import sentiment_generator, serve_image
from mlops_actions.stages.render_dockerfile import render
from mlops_actions.serving.server import Model

pytestmark = pytest.mark.docker
CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"


def _post(url: str, body: bytes, ctype: str = "application/json") -> dict:
    req = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": ctype})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())


def test_onnx_image_serves_the_native_predictions_and_metrics(fetched, docker_engine, tmp_path):
    held = tmp_path / "heldout.csv"
    sentiment_generator()(held, rows=300, seed=777)
    res = render(fetched.model_path, tmp_path / "ctx", ca_bundle=CA, runtime="onnx", check_data=str(held), version="2.0.0")
    assert res.runtime == "onnx" and "labels equal" in res.runtime_reason
    text = (res.context / "Dockerfile").read_text()
    assert "COPY model.onnx /app/model.onnx" in text and text.index("pip install") < text.index("COPY model/")
    assert "ca-bundle" not in text.split("FROM ${BASE_IMAGE}\n", 1)[1]
    tag = "mlops-actions-test/sentiment-onnx:latest"
    image, _ = docker_engine.images.build(path=str(res.context), tag=tag, rm=True)
    try:
        assert image.labels["io.github.mlops-actions.runtime"] == "onnx"
        # serving needs neither pandas nor scikit-learn (nor mlflow)
        probe = "import importlib.util as u; print([m for m in ('pandas', 'sklearn', 'mlflow', 'onnxruntime') if u.find_spec(m)])"
        out = docker_engine.containers.run(tag, entrypoint=["python3", "-c", probe], remove=True).decode().strip()
        assert out == "['onnxruntime']"
        native = Model(fetched.model_path)
        texts = pd.read_csv(held)["review_text"].astype(str).tolist()[:50]
        want = native.predict({"dataframe_split": {"columns": ["review_text"], "data": [[t] for t in texts]}})
        with serve_image(docker_engine, tag, read_only=True) as url:
            box = url.container
            got = _post(url, json.dumps({"dataframe_split": {"columns": ["review_text"], "data": [[t] for t in texts]}}).encode())
            assert got == {"predictions": want}
            assert _post(url, json.dumps({"dataframe_records": [{"review_text": t} for t in texts[:5]]}).encode()) == {"predictions": want[:5]}
            assert _post(url, json.dumps({"inputs": {"review_text": texts[:5]}}).encode()) == {"predictions": want[:5]}
            csv_body = ("review_text\n" + "\n".join(json.dumps(t) for t in texts[:5]) + "\n").encode()
            assert _post(url, csv_body, "text/csv") == {"predictions": want[:5]}
            for _ in range(10):
                _post(url, json.dumps({"instances": texts[:3]}).encode())
            metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
            values = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) (\S+)$", metrics, re.M)}
            assert values['mlserve_requests_total{path="/invocations",status="200"}'] == 14
            assert values['mlserve_request_duration_seconds_count{path="/invocations"}'] == 14
            expected = want + want[:5] * 3 + want[:3] * 10
            for cls in (0, 1):
                assert values.get(f'mlserve_predictions_total{{class="{cls}"}}', 0) == expected.count(cls)
            assert "# TYPE mlserve_request_duration_seconds histogram" in metrics
            health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=5).read())
            assert health == {"status": "ok", "flavor": "sklearn", "runtime": "onnx"}
            box.reload()
            assert box.attrs["HostConfig"]["ReadonlyRootfs"] is True
    finally:
        docker_engine.images.remove(tag, force=True)
