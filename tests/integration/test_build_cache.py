"""push-image's registry build cache on an engine that has none of the image's layers: what a fresh
GitHub-hosted runner is. The first build stores the final image and the dependency stage in the
registry (cache-to, mode=max); after every local trace of them is gone, a model-only change takes
the dependency layers from the pulled cache (the engine's build log says so) and rebuilds only the
model's. The same fresh rebuild without cache-from is benchmarks/fresh_rebuild.py's peer."""

import json
import os
import shutil
import uuid

import pytest
from docker.errors import ImageNotFound

from conftest import registry_tags
from mlops_actions.stages.push_image import PushRequest, push_image
from mlops_actions.stages.render_dockerfile import render

pytestmark = pytest.mark.docker
CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"


def _forget(engine, name: str) -> None:
    """Drop every local tag of ``name`` (and so their untagged parent layers): a fresh engine."""
    for image in engine.images.list(name=name):
        for tag in image.tags:
            if tag.rsplit(":", 1)[0] == name:
                engine.images.remove(tag, force=True)


def test_fresh_engine_rebuild_after_a_model_change_takes_the_dependencies_from_the_registry(
        fetched, registry, docker_engine, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("GITHUB_SHA", "cafe123" + "0" * 33)
    unique = uuid.uuid4().hex[:10]
    model = tmp_path / "model"
    shutil.copytree(fetched.model_path, model)
    first_ctx = tmp_path / "first"
    render(model, first_ctx, ca_bundle=CA, version="1.0.0", run_id="r1")
    # a dependency layer no other build on this engine has: only the registry can supply it later
    reqs = first_ctx / "requirements.txt"
    reqs.write_text(reqs.read_text() + f"# build-cache test {unique}\n")
    name = f"{registry.host}/acme/cached-{unique}"
    cache = f"{name}:buildcache"
    common = dict(image=name, username=registry.username, password=registry.password, default_branch="main",
                  cache_from=[f"type=registry,ref={cache}"], cache_to=[f"type=registry,ref={cache},mode=max"])
    first = push_image(PushRequest(context=first_ctx, version="1.0.0", **common))
    assert first.cache.missing == [cache, f"{cache}-builder"] and not first.cache.pulled  # nothing to take yet
    assert first.cache.pushed == [cache, f"{cache}-builder"], first.cache
    assert sorted(registry_tags(registry, f"acme/cached-{unique}")) == [
        "buildcache", "buildcache-builder", "latest", "main-cafe123", "v1.0.0"]
    assert "Build cache:" in first.summary() and "buildcache-builder" in first.summary()
    builder_id = docker_engine.images.get(f"{cache}-builder").id

    # a fresh engine: the image, its cache tags and the dependency stage's layers are gone
    _forget(docker_engine, name)
    for gone in (first.image_id, builder_id):
        with pytest.raises(ImageNotFound):
            docker_engine.images.get(gone)

    # a model-only change: another input example in the model folder, same requirements
    example = model / "serving_input_example.json"
    doc = json.loads(example.read_text())
    example.write_text(json.dumps(doc, indent=1) + "\n")
    second_ctx = tmp_path / "second"
    render(model, second_ctx, ca_bundle=CA, version="1.0.1", run_id="r2")
    shutil.copy(reqs, second_ctx / "requirements.txt")
    capsys.readouterr()
    second = push_image(PushRequest(context=second_ctx, version="1.0.1", **common))
    log = capsys.readouterr().out.splitlines()
    assert second.cache.pulled == [cache, f"{cache}-builder"] and not second.cache.missing, second.cache
    # the engine's log: the pip install step of the dependency stage came from the pulled cache
    step = next(i for i, line in enumerate(log) if line.startswith("Step ") and "pip install" in line)
    assert log[step + 1].strip() == "---> Using cache", log[step:step + 3]
    model_step = next(i for i, line in enumerate(log) if line.startswith("Step ") and "COPY model/" in line)
    assert log[model_step + 1].strip() != "---> Using cache", log[model_step:model_step + 3]  # the model's layer is new
    assert second.cache.cached >= 6 and second.cache.cached < second.cache.steps, second.cache
    assert second.image_id != first.image_id and second.smoke["predictions"]
    assert second.outputs()["cached-steps"] == str(second.cache.cached)
    _forget(docker_engine, name)

