"""render-dockerfile for PyTorch models without torch installed (as in CI): the ``+cpu`` pins that
mlflow logs from a CPU install put PyTorch's CPU index in the rendered requirements.txt (and only
they do), and ``runtime: auto`` falls back to pyfunc with the reason when torch cannot export here.
The export itself, with torch, is tests/integration/test_pytorch.py (marked ``pytorch``)."""

import json
import sys
import textwrap

import mlflow
import pytest

from mlops_actions.core import sbom
from mlops_actions.core.errors import InputError
from mlops_actions.stages.render_dockerfile import (
    TORCH_CPU_INDEX,
    TORCH_CPU_INDEX_ENV,
    cpu_local_pins,
    pip_options,
    render,
)

MLFLOW_VERSION = mlflow.__version__
SIGNATURE = json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}])


def _torch_model(root, requirements: str, signature: bool = False):
    """A pytorch-flavor model folder with a hand-written MLmodel (torch is not needed to render it)."""
    root.mkdir()
    sig = f"signature:\n  inputs: '{SIGNATURE}'\n  outputs: null\n" if signature else ""
    (root / "MLmodel").write_text(
        textwrap.dedent(
            """\
            flavors:
              python_function:
                loader_module: mlflow.pytorch
                python_version: 3.11.7
                data: data
              pytorch:
                pytorch_version: 2.5.1+cpu
            """
        )
        + f"mlflow_version: {MLFLOW_VERSION}\n{sig}"
    )
    (root / "requirements.txt").write_text(requirements)
    if signature:
        (root / "serving_input_example.json").write_text(json.dumps({"inputs": [[0.1, 0.2, 0.3, 0.4]]}))
    return root


@pytest.mark.parametrize("line,pinned", [
    ("torch==2.5.1+cpu", True),
    ("torchvision==0.20.1+cpu", True),
    ("torch==2.1.0+cpu.cxx11.abi", True),
    ("torch===2.5.1+cpu", True),
    ("torch==2.5.1", False),
    ("torch==2.5.1+cu121", False),
    ("torch>=2.5", False),
    ("torch", False),
])
def test_cpu_local_pins(line, pinned):
    assert cpu_local_pins(["numpy==2.1.0", line]) == ([line] if pinned else [])


def test_cpu_pin_puts_pytorchs_cpu_index_in_the_rendered_requirements(tmp_path, monkeypatch):
    monkeypatch.delenv(TORCH_CPU_INDEX_ENV, raising=False)
    model = _torch_model(tmp_path / "m", f"mlflow=={MLFLOW_VERSION}\ntorch==2.5.1+cpu\nnumpy==2.1.0\n")
    res = render(model, tmp_path / "ctx", runtime="pyfunc")
    lines = (res.context / "requirements.txt").read_text().splitlines()
    assert lines[0] == f"--extra-index-url {TORCH_CPU_INDEX}"
    assert TORCH_CPU_INDEX == "https://download.pytorch.org/whl/cpu"
    assert "torch==2.5.1+cpu" in lines and f"mlflow-skinny=={MLFLOW_VERSION}" in lines
    assert sum(line.startswith("--") for line in lines) == 1
    # the index line is not a requirement: RenderResult.requirements and the SBOM's top level skip it
    assert not any(r.startswith("-") for r in res.requirements)
    top = sbom.top_level("\n".join(lines))
    assert "torch" in top and len(top) == len(res.requirements)
    # pip reads the option from the file the builder installs (no template change needed)
    assert "pip install --no-compile -r /tmp/requirements.txt" in (res.context / "Dockerfile").read_text()


def test_no_cpu_pin_no_extra_index(tmp_path, monkeypatch):
    monkeypatch.delenv(TORCH_CPU_INDEX_ENV, raising=False)
    for name, torch_line in (("plain", "torch==2.5.1"), ("cuda", "torch==2.5.1+cu121")):
        model = _torch_model(tmp_path / name, f"mlflow=={MLFLOW_VERSION}\n{torch_line}\n")
        res = render(model, tmp_path / f"ctx-{name}", runtime="pyfunc")
        text = (res.context / "requirements.txt").read_text()
        assert "--extra-index-url" not in text and "download.pytorch.org" not in text and torch_line in text


def test_mirror_replaces_the_cpu_index_and_a_bad_one_is_refused(tmp_path, monkeypatch):
    reqs = ["torch==2.5.1+cpu"]
    monkeypatch.setenv(TORCH_CPU_INDEX_ENV, "https://mirror.example.internal/pytorch/whl/cpu")
    assert pip_options(reqs) == ["--extra-index-url https://mirror.example.internal/pytorch/whl/cpu"]
    assert pip_options(["torch==2.5.1"]) == []
    for bad in ("mirror.example/whl/cpu", "https://x/whl/cpu\n--trusted-host evil", "file:///opt/wheels"):
        monkeypatch.setenv(TORCH_CPU_INDEX_ENV, bad)
        with pytest.raises(InputError) as err:
            pip_options(reqs)
        assert err.value.input_name == TORCH_CPU_INDEX_ENV and "\n" not in err.value.line()
    monkeypatch.setenv(TORCH_CPU_INDEX_ENV, "  ")  # empty: the public index
    assert pip_options(reqs) == [f"--extra-index-url {TORCH_CPU_INDEX}"]


def test_pytorch_without_torch_here_falls_back_to_pyfunc_with_the_reason(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails, as where torch is not installed
    model = _torch_model(tmp_path / "m", f"mlflow=={MLFLOW_VERSION}\ntorch==2.5.1+cpu\n", signature=True)
    res = render(model, tmp_path / "ctx", runtime="auto")
    assert res.runtime == "pyfunc" and "\n" not in res.runtime_reason
    assert res.runtime_reason == (
        "ONNX not used: torch is not installed where render-dockerfile runs (the export needs it: pip install "
        "torch --index-url https://download.pytorch.org/whl/cpu); mlflow.pyfunc with mlflow-skinny "
        f"{MLFLOW_VERSION}"
    )
    assert not (res.context / "model.onnx").exists()
    with pytest.raises(InputError, match="'onnx' is not possible for this model: torch is not installed") as err:
        render(model, tmp_path / "onnx", runtime="onnx")
    assert "use runtime 'auto' (falls back to pyfunc) or 'pyfunc'" in err.value.line()
