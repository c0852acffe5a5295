"""The whole chain in one call: train → fetch-artifacts → open-pr → render-dockerfile → push-image.
Used by the root action.yml (simplest adoption) and by ``mlops demo``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import gha, tracking as trk
from .artifacts import fetch
from .dockerfile import render
from .pr import PrRequest, open_pr
from .train import train


@dataclass
class PipelineConfig:
    project_path: str
    tracking: trk.Tracking
    entry_point: str = "main"
    params: dict[str, str] = field(default_factory=dict)
    experiment: str = "mlops-actions"
    artifacts_dir: Path = Path("artifacts")
    pr: PrRequest | None = None  # source_dir is filled in from the fetch
    context_dir: Path = Path("build/image")
    base_image: str = ""
    ca_bundle: str = ""
    version: str = ""
    push: object = None  # an image.PushRequest (context filled in), or None to stop after render
    env_manager: str = "uv"


def run_pipeline(cfg: PipelineConfig) -> dict[str, object]:
    out: dict[str, object] = {}
    stages: list[list[str]] = []
    with gha.group("1/5 train"):
        trained = train(cfg.project_path, entry_point=cfg.entry_point, params=cfg.params, experiment=cfg.experiment, tracking=cfg.tracking,
                        env_manager=cfg.env_manager)
    out.update(trained.outputs())
    stages.append(["train", "✅", trained.run_url or trained.run_id])
    with gha.group("2/5 fetch-artifacts"):
        fetched = fetch(trained.run_id, cfg.artifacts_dir, tracking=cfg.tracking)
    out.update({"artifacts": str(fetched.path), "model-path": str(fetched.model_path), "flavor": fetched.flavor})
    stages.append(["fetch-artifacts", "✅", str(fetched.path)])
    if cfg.pr is not None:
        cfg.pr.source_dir = fetched.path
        with gha.group("3/5 open-pr"):
            pr = open_pr(cfg.pr)
        out.update({"pr-number": str(pr.pr_number or ""), "pr-url": pr.pr_url, "pr-operation": pr.operation,
                    "pr-branch": pr.branch, "pr-body": pr.body_file})
        stages.append(["open-pr", "✅", f"{pr.operation} {pr.pr_url or pr.branch}"])
    else:
        stages.append(["open-pr", "⏭️", "disabled"])
    with gha.group("4/5 render-dockerfile"):
        rendered = render(fetched.model_path, cfg.context_dir, base_image=cfg.base_image, ca_bundle=cfg.ca_bundle,
                          run_id=trained.run_id, version=cfg.version)
    out.update({"dockerfile": str(rendered.dockerfile), "context": str(rendered.context)})
    stages.append(["render-dockerfile", "✅", str(rendered.dockerfile)])
    if cfg.push is not None:
        from .image import push_image

        cfg.push.context = rendered.context
        with gha.group("5/5 push-image"):
            pushed = push_image(cfg.push)
        out.update({"image": pushed.image, "digest": pushed.digest, "tags": "\n".join(pushed.tags)})
        stages.append(["push-image", "✅", pushed.image])
    else:
        stages.append(["push-image", "⏭️", "no image given"])
    gha.add_summary("### mlops-actions pipeline\n" + gha.md_table(["stage", "result", "detail"], stages)
                    + f"\n\nTracking store: {cfg.tracking.describe()}")
    out["stages"] = {s[0]: s[1] for s in stages}
    return out
