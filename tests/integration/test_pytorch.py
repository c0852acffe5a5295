"""PyTorch models through ``runtime: auto``: marked ``pytorch``, outside the default suite's reach (it
skips where torch is not installed, as in CI; tests/unit/stages/test_render_torch.py covers what
needs no torch: the ``+cpu`` pins and the fallback when torch is absent).

auto exports a pytorch model with a float32 tensor signature through torch.onnx (torch.export's
exporter where onnxscript is installed, else the TorchScript one), checks it against
``mlflow.pyfunc`` on the input example and 500 seeded noisy copies of it (core/onnx_export.py) and
serves the ONNX file with onnxruntime: no torch, no mlflow in the image. A model that cannot be
exported (data-dependent control flow) or disagrees falls back to the generic pyfunc path, with the
reason. Both are served here by the image's own server (``python -m mlops_actions.serving.server``
with the rendered model-info.json), compared with ``mlflow.pyfunc`` on held-out rows.

The ONNX image is built and served too (onnxruntime, numpy, no torch and no mlflow in it). The pyfunc
image is not: PyPI's torch wheel pulls the CUDA libraries (several GB) and PyTorch's CPU index is not
reachable from this machine (the pyfunc image's ``torch==…+cpu`` pin resolves from that index, which
the rendered requirements.txt names).

Run: install a CPU torch wheel (``pip install torch --index-url https://download.pytorch.org/whl/cpu``),
then ``pytest -m pytorch tests/integration/test_pytorch.py``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import post_invocations, serve_image, serve_locally
from mlops_actions.core.errors import InputError
from mlops_actions.stages.render_dockerfile import TORCH_CPU_INDEX, render

pytestmark = pytest.mark.pytorch
torch = pytest.importorskip("torch")

# served answers vs mlflow.pyfunc on held-out rows: the same float32 arithmetic in onnxruntime and
# torch (render's own check allows 1e-4, onnx_export.TOLERANCE)
SERVED_ATOL = 1e-5


def _train_mlp():
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
    held = rng.normal(size=(40, 4)).astype("float32")
    return net, x, held


@pytest.fixture(scope="module", params=["pt2", "pickle"])
def torch_model(request, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 4 → 16 → 3 MLP trained on SYNTHETIC data, saved by mlflow.pytorch with a tensor signature, as
    a torch.export program (model.pt2, mlflow's default) or a pickled module (model.pth)."""
    import mlflow.pytorch

    net, x, held = _train_mlp()
    path = tmp_path_factory.mktemp(f"pytorch-{request.param}") / "model"
    mlflow.pytorch.save_model(net, str(path), input_example=x[:3], serialization_format=request.param)
    assert (path / "data" / ("model.pt2" if request.param == "pt2" else "model.pth")).is_file()
    return path, held


# Data-dependent control flow: each row takes one of two layers by the sign of its sum. A module of
# its own, logged with code_paths, so that the server process can unpickle it.
ROW_BRANCH = """import torch


class RowBranch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pos, self.neg = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.stack([self.pos(r) if r.sum() > 0 else self.neg(r) for r in x])
"""


@pytest.fixture(scope="module")
def branchy_model(tmp_path_factory) -> tuple[Path, np.ndarray]:
    import importlib.util

    import mlflow.pytorch

    code = tmp_path_factory.mktemp("code") / "row_branch_for_test.py"
    code.write_text(ROW_BRANCH)
    spec = importlib.util.spec_from_file_location("row_branch_for_test", code)
    module = importlib.util.module_from_spec(spec)
    sys.modules["row_branch_for_test"] = module
    spec.loader.exec_module(module)
    torch.manual_seed(1)
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("branchy") / "model"
    example = rng.normal(size=(3, 4)).astype("float32")
    # pickled: torch.export (mlflow's pt2 format) refuses the data-dependent branch already
    mlflow.pytorch.save_model(
        module.RowBranch().eval(),
        str(path),
        input_example=example,
        serialization_format="pickle",
        code_paths=[str(code)],
    )
    return path, rng.normal(size=(20, 4)).astype("float32")


def _served_like_pyfunc(res, model_dir: Path, held: np.ndarray, runtime: str) -> None:
    """The image's server on the rendered context answers held-out rows as mlflow.pyfunc does and
    refuses a wrong shape with 400."""
    import mlflow.pyfunc

    want = np.asarray(mlflow.pyfunc.load_model(str(model_dir)).predict(held))
    env = {"ONNX_MODEL": str(res.context / "model.onnx")} if runtime == "onnx" else {}
    proc, url = serve_locally(res.context / "model", res.context / "model-info.json", workers=1, env=env, timeout=120)
    try:
        health = json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())
        assert health["runtime"] == runtime and health["flavor"] == "pytorch"
        for payload in ({"inputs": held.tolist()}, {"instances": held.tolist()}):
            status, got = post_invocations(url, payload)
            assert status == 200, got
            np.testing.assert_allclose(np.asarray(got["predictions"]), want, rtol=0, atol=SERVED_ATOL)
        status, got = post_invocations(url, {"inputs": held[:2, :3].tolist()})  # 3 columns for a [-1, 4] tensor
        assert status == 400 and got["error_code"] == "BAD_REQUEST", got
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("exporter", ["torch.export", "TorchScript"])
def test_auto_picks_onnx_for_a_tensor_model_and_the_server_answers_like_mlflow(
    torch_model, tmp_path, monkeypatch, exporter
):
    model_dir, held = torch_model
    if exporter == "TorchScript":
        monkeypatch.setitem(sys.modules, "onnxscript", None)  # as where onnxscript is not installed
    elif "onnxscript" not in sys.modules:
        pytest.importorskip("onnxscript")
    res = render(model_dir, tmp_path / "ctx", runtime="auto")
    assert res.runtime == "onnx", res.runtime_reason
    reason = res.runtime_reason
    assert reason.startswith("ONNX equivalent to the native model on 503 rows (3 example, 500 seeded noisy copies")
    assert f"{exporter} exporter" in reason and f"torch {torch.__version__}" in reason and "\n" not in reason
    info = json.loads((res.context / "model-info.json").read_text())
    check = info["onnx_check"]
    assert check["rows"] == 503 and check["rows_by_source"] == {"example": 3, "synthesized": 500}
    assert check["labels_compared"] and check["max_abs_diff"] <= check["tolerance"] == 1e-4
    print(f"\n{exporter}: {check['rows']} rows, max |Δ| {check['max_abs_diff']:.2e} at {check['max_diff_at']}")
    assert info["onnx"]["kind"] == "tensor" and info["onnx"]["path"] == "/app/model.onnx"
    # the ONNX image: onnxruntime and numpy, no torch, no mlflow, no PyTorch index
    reqs = (res.context / "requirements.txt").read_text().split()
    assert any(r.startswith("onnxruntime==") for r in reqs)
    assert not any(r.startswith(("torch", "mlflow", "--")) for r in reqs), reqs
    _served_like_pyfunc(res, model_dir, held, "onnx")


def test_pyfunc_runtime_serves_it_through_mlflow_with_the_cpu_index(torch_model, tmp_path):
    model_dir, held = torch_model
    res = render(model_dir, tmp_path / "ctx", runtime="pyfunc")
    assert res.runtime == "pyfunc" and "runtime 'pyfunc' asked for" in res.runtime_reason
    import mlflow

    lines = (res.context / "requirements.txt").read_text().splitlines()
    assert f"mlflow-skinny=={mlflow.__version__}" in lines and not any(r.startswith("mlflow==") for r in lines)
    torch_pins = [r for r in lines if r.startswith("torch==")]
    assert len(torch_pins) == 1, lines
    # mlflow logs this machine's CPU wheel as torch==X+cpu: the image's pip finds it on PyTorch's CPU index
    assert (f"--extra-index-url {TORCH_CPU_INDEX}" in lines) == torch_pins[0].endswith("+cpu")
    _served_like_pyfunc(res, model_dir, held, "pyfunc")


@pytest.mark.parametrize("exporter", ["torch.export", "TorchScript"])
def test_a_model_that_cannot_be_exported_falls_back_to_pyfunc_with_the_reason(
    branchy_model, tmp_path, monkeypatch, exporter
):
    model_dir, held = branchy_model
    if exporter == "TorchScript":
        monkeypatch.setitem(sys.modules, "onnxscript", None)
    elif "onnxscript" not in sys.modules:
        pytest.importorskip("onnxscript")
    res = render(model_dir, tmp_path / "ctx", runtime="auto")
    reason = res.runtime_reason
    print(f"\n{exporter}: {reason}")
    assert res.runtime == "pyfunc" and reason.startswith("ONNX not used: ") and "\n" not in reason
    assert reason.endswith("; mlflow.pyfunc with mlflow-skinny " + reason.rsplit(" ", 1)[1])
    # torch.export refuses the data-dependent branch; the tracer bakes in the example's path, which the
    # check on the noisy copies (or the fixed batch of the unrolled loop) catches
    assert "torch.onnx cannot export it" in reason or "ONNX output" in reason or "onnxruntime fails" in reason
    assert not (res.context / "model.onnx").exists()
    assert json.loads((res.context / "model-info.json").read_text())["runtime"] == "pyfunc"
    with pytest.raises(InputError, match="'onnx' is not possible for this model: "):
        render(model_dir, tmp_path / "onnx", runtime="onnx")
    _served_like_pyfunc(res, model_dir, held, "pyfunc")


PROBE = (
    "import importlib.util, json; "
    "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in ('torch', 'mlflow', 'onnxruntime')}))"
)


def test_the_onnx_image_serves_it_without_torch_or_mlflow(torch_model, docker_engine, tmp_path):
    """The image render-dockerfile writes for the ONNX conversion, built and run read-only: no torch,
    no mlflow inside, and its answers on held-out rows equal mlflow.pyfunc's."""
    import mlflow.pyfunc

    model_dir, held = torch_model
    ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    res = render(model_dir, tmp_path / "ctx", runtime="auto", ca_bundle=ca, version="1.0.0")
    assert res.runtime == "onnx", res.runtime_reason
    tag = f"mlops-actions-test/pytorch-onnx:{secrets.token_hex(4)}"
    image, _ = docker_engine.images.build(path=str(res.context), tag=tag, rm=True)
    try:
        inside = json.loads(docker_engine.containers.run(tag, entrypoint=["python3", "-c", PROBE], remove=True))
        assert inside == {"torch": False, "mlflow": False, "onnxruntime": True}, inside
        print(f"\npytorch ONNX image: {image.attrs['Size'] / 1e6:.0f} MB")
        want = np.asarray(mlflow.pyfunc.load_model(str(model_dir)).predict(held))
        with serve_image(docker_engine, tag, read_only=True) as url:
            health = json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())
            assert health["runtime"] == "onnx" and health["flavor"] == "pytorch", health
            for payload in (
                {"inputs": held.tolist()},
                {"dataframe_split": {"data": held.tolist()}},
            ):
                status, got = post_invocations(url, payload)
                assert status == 200, got
                np.testing.assert_allclose(np.asarray(got["predictions"]), want, rtol=0, atol=SERVED_ATOL)
    finally:
        docker_engine.images.remove(tag, force=True, noprune=True)
