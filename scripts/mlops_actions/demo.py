"""The main job on embedded defaults: the sentiment project through all five stages, locally.

MLflow: a sqlite store in the workspace. Git: a bare "origin" and a clone in the workspace, the
bot branch pushed there and the PR body rendered to a file (there is no GitHub here). Image: built,
smoke-tested and pushed to a local registry with auth when a Docker engine answers or can be
started; otherwise the demo says what it skipped (inside an unprivileged container dockerd dies at
start-up, and that is reported at once).

Training uses the train stage's default env-manager (PipelineConfig's); scripts/demo.sh runs
``mlops demo`` with the venv's bin folder first on PATH, so the ``python`` and ``uv`` the MLproject
run finds are the venv's, never the machine's."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .core import local_services
from .core import tracking as trk
from .core.paths import MARKER, claim_output, resource
from .pipeline import PipelineConfig, run_pipeline
from .stages.open_pr import PrRequest
from .stages.push_image import PushRequest

REGISTRY_USER = "mlops"


def _ca_bundle() -> str:
    for var in ("MLOPS_CA_BUNDLE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        value = os.environ.get(var, "")
        if value and Path(value).is_file():
            return value
    return ""


def _done(ws: Path, outputs: dict[str, object]) -> None:
    print(
        f"\ndemo done: MLflow store {ws / 'mlflow.db'} (run {outputs.get('run-id')}), PR branch "
        f"{outputs.get('pr-branch')} in "
        f"{ws / 'origin.git'}, PR body {outputs.get('pr-body') or '(unchanged)'}, Dockerfile "
        f"{outputs.get('dockerfile')}, "
        f"image {outputs.get('image')}"
    )


def run_demo(ws: Path, registry: str = "127.0.0.1:5000", skip_image: bool = False) -> dict[str, object]:
    ws = claim_output(ws, "demo", "workspace").resolve()  # new, empty or an earlier demo's: never the checkout
    ws.mkdir(parents=True, exist_ok=True)
    (ws / MARKER).write_text("demo\n", encoding="utf-8")
    _, repo = local_services.git_origin(ws)
    cfg = PipelineConfig(
        project_path=str(resource("model_project/sentiment")),
        tracking=trk.Tracking(uri=f"sqlite:///{ws / 'mlflow.db'}"),
        experiment="demo-sentiment",
        artifacts_dir=ws / "artifacts",
        pr=PrRequest(
            source_dir=ws / "artifacts",
            repo_path="models/sentiment",
            workdir=repo,
            base="main",
            open_pull_request=False,
            body_file=ws / "pr-body.md",
        ),
        context_dir=ws / "image",
        ca_bundle=_ca_bundle(),
        version="0.1.0",
    )
    skipped = ""
    if skip_image:
        skipped = "push-image skipped (--skip-image)"
    elif not local_services.ensure_dockerd():
        skipped = (
            "push-image SKIPPED: no Docker engine could be started (install docker.io and run as root, or start "
            "dockerd); everything up to the rendered build context was done"
        )
    if skipped:
        outputs = run_pipeline(cfg)
        print(skipped)
        outputs["image"] = "skipped"
        _done(ws, outputs)
        return outputs
    local_services.ensure_base_image()
    password = secrets.token_urlsafe(18)
    reg = local_services.start_registry(ws / "registry", REGISTRY_USER, password, port=int(registry.rpartition(":")[2]))
    try:
        cfg.push = PushRequest(
            context=ws / "image",
            image=f"{registry}/demo/sentiment",
            version="0.1.0",
            username=REGISTRY_USER,
            password=password,
        )
        outputs = run_pipeline(cfg)
    finally:
        reg.stop()
    _done(ws, outputs)
    return outputs
