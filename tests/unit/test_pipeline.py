"""pipeline.py, the root action's chain, with its stages replaced by recorders: the order of the
stages, what each is given, and that the caller's PipelineConfig is never changed."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlops_actions import pipeline
from mlops_actions.core import tracking as trk
from mlops_actions.stages.gate import GateResult
from mlops_actions.stages.open_pr import PrRequest
from mlops_actions.stages.push_image import PushRequest


@pytest.fixture
def calls(monkeypatch, tmp_path):
    seen: list[tuple[str, object]] = []

    def train(project_path, **kwargs):
        kwargs["params"]["added-by-a-stage"] = "x"  # a stage changing what it was given must not reach the caller
        seen.append(("train", kwargs))
        outputs = {"run-id": "r1", "model-uri": "models:/m-1"}
        return SimpleNamespace(outputs=lambda: outputs, run_url="", run_id="r1", reused=False, model_uri="models:/m-1")

    def run_gate(req, tracking):
        seen.append(("gate", req))
        return GateResult(promoted=True, model_version="2", challenger_value=0.9, champion_value=0.8,
                          champion_version="1", reason="accuracy 0.9 > champion 0.8 (v1)", metric="accuracy",
                          model_name=req.model_name)

    def fetch(run_id, dest, tracking):
        seen.append(("fetch", run_id))
        return SimpleNamespace(path=Path(dest), model_path=Path(dest) / "model", flavor="sklearn")

    def render(model_path, context_dir, **kwargs):
        seen.append(("render", model_path))
        return SimpleNamespace(dockerfile=Path(context_dir) / "Dockerfile", context=Path(context_dir))

    def push_image(req):
        seen.append(("push" if req.push else "smoke", req))
        return SimpleNamespace(image_id="sha256:" + "a" * 64, tags=[f"{req.image}:v1.0.0"], image=f"{req.image}:v1.0.0",
                               digest="sha256:" + "b" * 64 if req.push else "")

    def open_pr(req):
        seen.append(("open-pr", req))
        return SimpleNamespace(pr_number=7, pr_url="https://example.test/pr/7", operation="created",
                               branch=req.branch, body_file="")

    for name, fn in {"train": train, "run_gate": run_gate, "fetch": fetch, "render": render,
                     "push_image": push_image, "open_pr": open_pr}.items():
        monkeypatch.setattr(pipeline, name, fn)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return seen


def config(tmp_path: Path) -> pipeline.PipelineConfig:
    return pipeline.PipelineConfig(
        project_path=str(tmp_path / "project"), tracking=trk.Tracking(uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
        params={"C": "1.0"}, artifacts_dir=tmp_path / "artifacts", context_dir=tmp_path / "image",
        pr=PrRequest(source_dir=tmp_path / "elsewhere", repo_path="models/m", workdir=tmp_path / "checkout"),
        push=PushRequest(context=tmp_path / "elsewhere", image="Registry.Example/Acme/Model", version="1.0.0"),
        gate=pipeline.GateConfig(metric="accuracy", model_name="model"),
    )


def test_the_chain_runs_in_order_and_leaves_the_callers_config_as_it_was(calls, tmp_path):
    cfg = config(tmp_path)
    before = copy.deepcopy(cfg)
    out = pipeline.run_pipeline(cfg)
    assert cfg == before
    assert [name for name, _ in calls] == ["train", "gate", "fetch", "render", "smoke", "open-pr", "push"]
    assert out["stages"] == {"train": "✅", "gate": "🏆", "fetch-artifacts": "✅", "render-dockerfile": "✅",
                             "smoke-test": "✅", "open-pr": "✅", "push-image": "✅"}
    given = dict(calls)
    assert given["open-pr"].source_dir == tmp_path / "artifacts"  # the fetched folder, not the configured one
    assert given["push"].context == tmp_path / "image" and given["push"].image == "registry.example/acme/model"
    assert given["gate"].run_id == "r1" and given["gate"].model_uri == "models:/m-1"


def test_a_losing_challenger_stops_before_anything_is_proposed(calls, monkeypatch, tmp_path):
    def lose(req, tracking):
        calls.append(("gate", req))
        return GateResult(promoted=False, model_version="3", challenger_value=0.7, champion_value=0.8,
                          champion_version="1", reason="accuracy 0.7 ≤ champion 0.8 (v1)", metric="accuracy",
                          model_name=req.model_name)

    monkeypatch.setattr(pipeline, "run_gate", lose)
    out = pipeline.run_pipeline(config(tmp_path))
    assert [name for name, _ in calls] == ["train", "gate"]
    assert out["decision"] == "rejected" and out["stages"]["push-image"] == "⏭️"
