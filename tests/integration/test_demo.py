"""README command (1): the demo runs all five stages on the embedded defaults."""

import subprocess

import pytest

from mlops_actions.demo import run_demo
from mlops_actions.local_services import free_port

pytestmark = pytest.mark.docker


def test_demo_runs_all_five_stages(tmp_path, docker_engine):
    registry = f"127.0.0.1:{free_port()}"
    out = run_demo(tmp_path / "demo", registry=registry)
    ws = tmp_path / "demo"
    assert out["stages"] == {s: "✅" for s in ("train", "fetch-artifacts", "open-pr", "render-dockerfile", "push-image")}
    assert (ws / "mlflow.db").is_file() and (ws / "artifacts" / "MANIFEST.sha256").is_file()
    branch = subprocess.run(["git", "rev-parse", "mlops/model-update"], cwd=ws / "origin.git", capture_output=True, text=True)
    assert branch.returncode == 0
    body = (ws / "pr-body.md").read_text()
    assert "| test_accuracy |" in body
    assert out["image"].startswith(f"{registry}/demo/sentiment@sha256:")
    # a second demo run reuses the workspace: same project, new run → the branch is updated, not duplicated
    again = run_demo(ws, registry=registry, skip_image=True)
    assert again["pr-branch"] == "mlops/model-update" and again["image"] == "skipped"
