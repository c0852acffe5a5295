"""pipeline.py, the root action's chain, with its stages replaced by recorders: the order of the
stages, what each is given, and that the caller's PipelineConfig is never changed."""

from __future__ import annotations

import copy
import os
import pickle
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
        (Path(dest) / "model").mkdir(parents=True)
        (Path(dest) / "model" / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
        return SimpleNamespace(path=Path(dest), model_path=Path(dest) / "model", flavor="sklearn")

    def render(model_path, context_dir, **kwargs):
        seen.append(("render", model_path))
        return SimpleNamespace(dockerfile=Path(context_dir) / "Dockerfile", context=Path(context_dir))

    def push_image(req):
        seen.append(("push" if req.push else "smoke", req))
        return SimpleNamespace(image_id="sha256:" + "a" * 64, tags=[f"{req.image}:v1.0.0"], image=f"{req.image}:v1.0.0",
                               digest="sha256:" + "b" * 64 if req.push else "",
                               sbom=SimpleNamespace(path=tmp_path / "sbom.cdx.json"))

    def open_pr(req):
        seen.append(("open-pr", req))
        return SimpleNamespace(pr_number=7, pr_url="https://example.test/pr/7", operation="created",
                               branch=req.branch, body_file="")

    for name, fn in {"train": train, "run_gate": run_gate, "fetch": fetch, "render": render,
                     "push_image": push_image, "open_pr": open_pr}.items():
        monkeypatch.setattr(pipeline, name, fn)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path / "runner-temp"))  # where the scan report goes
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
    assert out["stages"] == {"train": "✅", "gate": "🏆", "fetch-artifacts": "✅", "scan": "✅",
                             "render-dockerfile": "✅", "smoke-test": "✅", "open-pr": "✅", "push-image": "✅"}
    assert out["scan-result"] == "passed" and out["sbom"] == str(tmp_path / "sbom.cdx.json")
    given = dict(calls)
    assert given["open-pr"].source_dir == tmp_path / "artifacts"  # the fetched folder, not the configured one
    # the scan report (written outside the artifacts) is a section of the pull request body
    assert given["open-pr"].extra_body == [Path(str(out["scan-report"])).with_suffix(".md")]
    assert "no unsafe operator" in given["open-pr"].extra_body[0].read_text()
    assert sorted(p.name for p in (tmp_path / "artifacts").rglob("*")) == ["model", "model.pkl"]
    assert given["push"].context == tmp_path / "image" and given["push"].image == "registry.example/acme/model"
    assert given["gate"].run_id == "r1" and given["gate"].model_uri == "models:/m-1"


class _Shell:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pwned-by-the-model",))


def test_a_model_with_code_in_its_pickle_stops_the_chain_before_any_image_or_pull_request(calls, monkeypatch, tmp_path):
    def fetch(run_id, dest, tracking):
        calls.append(("fetch", run_id))
        (Path(dest) / "model").mkdir(parents=True)
        (Path(dest) / "model" / "model.pkl").write_bytes(pickle.dumps(_Shell()))
        return SimpleNamespace(path=Path(dest), model_path=Path(dest) / "model", flavor="sklearn")

    monkeypatch.setattr(pipeline, "fetch", fetch)
    with pytest.raises(pipeline.StageError, match=r"unsafe model file: model/model.pkl: 'posix.system' \(critical"):
        pipeline.run_pipeline(config(tmp_path))
    assert [name for name, _ in calls] == ["train", "gate", "fetch"]


def test_scan_fail_on_is_checked_before_training(calls, tmp_path):
    cfg = config(tmp_path)
    cfg.scan_fail_on = "severe"
    with pytest.raises(pipeline.InputError, match="input 'scan-fail-on': 'severe' is not a severity"):
        pipeline.run_pipeline(cfg)
    assert calls == []


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
