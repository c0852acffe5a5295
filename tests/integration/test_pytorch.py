"""A PyTorch model through the generic ``pyfunc`` runtime: marked ``pytorch``, outside the default
suite's reach (it skips where torch is not installed, as in CI).

Why not an image: PyPI's torch wheel pulls the CUDA libraries (several GB), the CPU index
(download.pytorch.org) is not reachable from this machine, and the only CPU wheel here is a local
file (``torch==…+cpu``, a version no index of the image's pip can resolve). So this test proves what
can be proven here: render-dockerfile picks ``pyfunc`` for a pytorch model and says why, writes
``mlflow-skinny`` at the model's mlflow version beside the model's torch pin, and the server that the
image runs (the same file, ``python -m mlops_actions.serving.server`` with the rendered
model-info.json) answers a tensor model like ``mlflow.pyfunc`` does, params refused as MLflow does.

Run: ``pip install torch`` (CPU wheel), then ``pytest -m pytorch tests/integration/test_pytorch.py``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import serve_locally
from mlops_actions.stages.render_dockerfile import render

pytestmark = pytest.mark.pytorch
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def torch_model(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 4 → 16 → 3 MLP trained on SYNTHETIC data, saved by mlflow.pytorch with a tensor signature."""
    import mlflow.pytorch

    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4)).astype("float32")
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1] - x[:, 2], [-0.6, 0.6])
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
    net.eval()
    path = tmp_path_factory.mktemp("pytorch") / "model"
    mlflow.pytorch.save_model(net, str(path), input_example=x[:3])
    held = rng.normal(size=(40, 4)).astype("float32")
    return path, held


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url + "/invocations", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_pytorch_model_renders_pyfunc_and_the_server_answers_like_mlflow(torch_model, tmp_path):
    import mlflow.pyfunc

    model_dir, held = torch_model
    res = render(model_dir, tmp_path / "ctx", runtime="auto")
    assert res.runtime == "pyfunc" and "no lean loader for flavor 'pytorch'" in res.runtime_reason
    reqs = (res.context / "requirements.txt").read_text().split()
    assert f"mlflow-skinny=={mlflow.__version__}" in reqs and not any(r.startswith("mlflow==") for r in reqs)
    assert any(r.startswith("torch==") for r in reqs), reqs
    info = json.loads((res.context / "model-info.json").read_text())
    assert info["runtime"] == "pyfunc" and info["flavor"] == "pytorch"

    want = np.asarray(mlflow.pyfunc.load_model(str(model_dir)).predict(held))
    proc, url = serve_locally(res.context / "model", res.context / "model-info.json", workers=1, timeout=120)
    try:
        health = json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())
        assert health["runtime"] == "pyfunc" and health["flavor"] == "pytorch"
        for payload in ({"inputs": held.tolist()}, {"instances": held.tolist()}):
            status, got = _post(url, payload)
            assert status == 200, got
            np.testing.assert_allclose(np.asarray(got["predictions"]), want, rtol=0, atol=1e-6)
        status, got = _post(url, {"inputs": held[:2, :3].tolist()})  # 3 columns for a [-1, 4] tensor
        assert status == 400 and got["error_code"] == "BAD_REQUEST", got
    finally:
        proc.terminate()
        proc.wait(timeout=30)
