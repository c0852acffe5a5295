"""promote-image, push-image's version-bump and health-check against the real Docker engine and
real registries (distribution 2.8 with htpasswd): images are copied by digest through the
registry API, tags are read back from the registry, published images are pulled and run."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlops_actions.core import local_services
from mlops_actions.core.errors import InputError, StageError
from mlops_actions.stages.health_check import HealthRequest, health_check
from mlops_actions.stages.push_image import existing_versions, next_version
from mlops_actions.core import images
from mlops_actions.stages.promote_image import PromoteRequest, promote

pytestmark = pytest.mark.docker
MLOPS = [sys.executable, "-m", "mlops_actions"]


def api(registry, path: str, method: str = "GET", accept: str = "") -> tuple[int, dict, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(registry.url + path, method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode())
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), b""


def tags_of(registry, repo: str) -> list[str]:
    status, _, body = api(registry, f"/v2/{repo}/tags/list")
    return sorted(json.loads(body)["tags"] or []) if status == 200 else []


def build_and_push(engine, registry, repo: str, dockerfile: str, tag: str = "candidate") -> str:
    """A small image built from the local python:3.11-slim, pushed; returns name@digest."""
    import io

    name = f"{registry.host}/{repo}"
    engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{name}:{tag}", rm=True, pull=False)
    engine.login(registry.username, registry.password, registry=registry.host)
    digest = ""
    for chunk in engine.api.push(name, tag=tag, stream=True, decode=True):
        assert "error" not in chunk, chunk
        digest = (chunk.get("aux") or {}).get("Digest") or digest
    engine.images.remove(f"{name}:{tag}", force=True)
    return f"{name}@{digest}"


@pytest.fixture(scope="module")
def small_image(docker_engine, registry):
    return build_and_push(docker_engine, registry, "nonprod/small", f"FROM python:3.11-slim\nLABEL test.run={uuid.uuid4().hex}\nCMD [\"sleep\", \"600\"]\n")


@pytest.fixture(scope="module")
def prod_registry(tmp_path_factory, docker_engine):
    from conftest import Registry

    password = "prod-" + uuid.uuid4().hex[:10]
    svc = local_services.start_registry(tmp_path_factory.mktemp("registry2"), "prod-pusher", password)
    yield Registry(url=svc.url, host=svc.url.removeprefix("http://"), username="prod-pusher", password=password, service=svc)
    svc.stop()


def test_promote_same_registry_mounts_and_keeps_the_digest(small_image, registry, docker_engine):
    digest = small_image.split("@")[1]
    target = f"{registry.host}/prod/small"
    result = promote(PromoteRequest(source=small_image, target=target, version="1.4.0", extra_tags=["stable"],
                                    source_username=registry.username, source_password=registry.password))
    assert result.image == f"{target}@{digest}" and result.digest == digest
    assert result.tags == [f"{target}:{t}" for t in ("v1.4.0", "latest", "stable")]
    assert result.mounted >= 2 and result.copied == 0
    assert tags_of(registry, "prod/small") == ["latest", "stable", "v1.4.0"]
    for tag in ("v1.4.0", "latest", "stable"):
        status, headers, _ = api(registry, f"/v2/prod/small/manifests/{tag}", "HEAD", accept="application/vnd.docker.distribution.manifest.v2+json")
        assert status == 200 and headers["Docker-Content-Digest"] == digest
    # idempotent: a second promotion finds every blob present
    again = promote(PromoteRequest(source=small_image, target=target, version="1.4.0", source_username=registry.username,
                                   source_password=registry.password))
    assert again.digest == digest and again.copied == again.mounted == 0 and again.present >= 2


def test_promote_across_registries_copies_blobs_and_pulls_by_digest(small_image, registry, prod_registry, docker_engine):
    digest = small_image.split("@")[1]
    target = f"{prod_registry.host}/team/small"
    result = promote(PromoteRequest(source=small_image, target=target, version="2.0.0", latest=False,
                                    source_username=registry.username, source_password=registry.password,
                                    target_username=prod_registry.username, target_password=prod_registry.password))
    assert result.digest == digest and result.tags == [f"{target}:v2.0.0"] and result.copied >= 2
    assert tags_of(prod_registry, "team/small") == ["v2.0.0"]
    docker_engine.login(prod_registry.username, prod_registry.password, registry=prod_registry.host)
    pulled = docker_engine.images.pull(f"{target}@{digest}")
    assert f"{target}@{digest}" in pulled.attrs["RepoDigests"]
    docker_engine.images.remove(f"{target}@{digest}", force=True)


def test_promote_refuses_bad_inputs_and_wrong_password(small_image, registry, prod_registry):
    name = small_image.split("@")[0]
    with pytest.raises(InputError, match="'source'.*digest"):
        promote(PromoteRequest(source=f"{name}:candidate", target=f"{registry.host}/prod/x", version="1.0.0"))
    with pytest.raises(InputError, match="'version'"):
        promote(PromoteRequest(source=small_image, target=f"{registry.host}/prod/x", version="one"))
    with pytest.raises(InputError, match="'target'"):
        promote(PromoteRequest(source=small_image, target=f"{registry.host}/prod/x:tag", version="1.0.0"))
    with pytest.raises(InputError) as err:
        promote(PromoteRequest(source=small_image, target=f"{prod_registry.host}/prod/x", version="1.0.0",
                               source_username=registry.username, source_password=registry.password,
                               target_username=prod_registry.username, target_password="wrong"))
    assert err.value.input_name == "target-password" and "wrong" not in err.value.line()
    missing = f"{name}@sha256:{'0' * 64}"
    with pytest.raises(InputError, match="'source'.*does not exist"):
        promote(PromoteRequest(source=missing, target=f"{registry.host}/prod/x", version="1.0.0",
                               source_username=registry.username, source_password=registry.password))
    assert tags_of(registry, "prod/x") == [] and tags_of(prod_registry, "prod/x") == []


def test_next_version_reads_registry_and_git_tags(small_image, registry, tmp_path, monkeypatch):
    ref = images.parse(f"{registry.host}/prod/small", "image")
    # prod/small holds v1.4.0 from the promotion test, or nothing when run alone: promote here to be sure
    promote(PromoteRequest(source=small_image, target=f"{registry.host}/prod/small", version="1.4.0",
                           source_username=registry.username, source_password=registry.password))
    found = existing_versions(ref, registry.username, registry.password, workdir=str(tmp_path))
    assert "v1.4.0" in found and next_version(found, "patch") == "1.4.1" and next_version(found, "minor") == "1.5.0"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "tag", "v1.9.3"], check=True)
    found = existing_versions(ref, registry.username, registry.password, workdir=str(tmp_path))
    assert next_version(found, "patch") == "1.9.4"
    empty = images.parse(f"{registry.host}/never/pushed", "image")
    assert next_version(existing_versions(empty, registry.username, registry.password, workdir=str(tmp_path / "none")), "minor") == "0.1.0"
    with pytest.raises(InputError, match="'password'"):
        existing_versions(ref, registry.username, "wrong")


def run_cli(args, cwd: Path, env_extra: dict[str, str] | None = None):
    out = cwd / f"out-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(out), GITHUB_STEP_SUMMARY=str(cwd / "summary"), **(env_extra or {}))
    proc = subprocess.run(MLOPS + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line) if out.exists() else {}
    return proc, outputs


def errors(proc) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("::error")]


@pytest.mark.parametrize("args,input_name", [
    (["--source", "127.0.0.1:1/a/b:tag", "--target", "127.0.0.1:1/prod/b", "--version", "1.0.0"], "source"),
    (["--source", "127.0.0.1:1/a/b@sha256:" + "a" * 64, "--target", "127.0.0.1:1/prod/b", "--version", "v1"], "version"),
    (["--source", "127.0.0.1:1/a/b@sha256:" + "a" * 64, "--target", "127.0.0.1:1/prod/b", "--latest", "yes"], "latest"),
    (["--source", "127.0.0.1:1/a/b@sha256:" + "a" * 64, "--target", "127.0.0.1:1/prod/b", "--version", "1.0.0", "--tags", "bad tag"], "tags"),
])
def test_promote_cli_bad_inputs(tmp_path, args, input_name):
    proc, out = run_cli(["promote-image", *args], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = errors(proc)
    assert len(lines) == 1 and f"input '{input_name}'" in lines[0], proc.stdout
    assert out == {}


@pytest.mark.parametrize("args,input_name", [
    (["--image", "Bad Image"], "image"),
    (["--image", "127.0.0.1:1/a/b:t", "--timeout", "soon"], "timeout"),
    (["--image", "127.0.0.1:1/a/b:t", "--port", "99999"], "port"),
    (["--image", "127.0.0.1:1/a/b:t", "--payload", "missing.json"], "payload"),
    (["--image", "127.0.0.1:1/a/b:t", "--pull", "maybe"], "pull"),
])
def test_health_cli_bad_inputs(tmp_path, args, input_name):
    proc, out = run_cli(["health-check", *args], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = errors(proc)
    assert len(lines) == 1 and f"input '{input_name}'" in lines[0], proc.stdout
    assert out == {}


def containers_of(engine, ref: str) -> list:
    return [c for c in engine.containers.list(all=True) if c.attrs.get("Config", {}).get("Image") == ref]


def test_health_check_of_plain_image_fails_and_removes_the_container(docker_engine, registry, small_image):
    """python:3.11-slim running sleep: no server ever answers /health."""
    with pytest.raises(StageError, match=r"/health did not answer 200 within 4s"):
        health_check(HealthRequest(image=small_image, username=registry.username, password=registry.password, timeout=4))
    assert containers_of(docker_engine, small_image) == []


def test_health_check_of_crashing_server_fails_with_its_log(docker_engine, registry):
    ref = build_and_push(docker_engine, registry, "nonprod/crash",
                         "FROM python:3.11-slim\nCMD [\"python3\", \"-c\", \"import sys; print('model.pkl is corrupt'); sys.exit(3)\"]\n")
    with pytest.raises(StageError) as err:
        health_check(HealthRequest(image=ref, username=registry.username, password=registry.password, timeout=60))
    assert "exited with code 3" in err.value.line() and "model.pkl is corrupt" in err.value.line()
    assert containers_of(docker_engine, ref) == []


def test_health_check_of_published_serving_image(fetched, docker_engine, registry, tmp_path, monkeypatch):
    """A real serving image pushed by push-image with version-bump, then checked through the CLI."""
    from mlops_actions.stages.render_dockerfile import render
    from mlops_actions.stages.push_image import PushRequest, push_image

    ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    ctx = render(fetched.model_path, tmp_path / "ctx", ca_bundle=ca).context
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("GITHUB_SHA", "feedbee" + "0" * 33)
    image = f"{registry.host}/nonprod/sentiment-{uuid.uuid4().hex[:6]}"
    first = push_image(PushRequest(context=ctx, image=image, version_bump="minor", username=registry.username,
                                   password=registry.password, default_branch="main", smoke_test=False))
    assert first.tags == [f"{image}:{t}" for t in ("latest", "main-feedbee", "v0.1.0")]
    second = push_image(PushRequest(context=ctx, image=image, version_bump="patch", username=registry.username,
                                    password=registry.password, default_branch="main", smoke_test=False))
    assert second.tags[-1] == f"{image}:v0.1.1"
    assert tags_of(registry, image.split("/", 1)[1]) == ["latest", "main-feedbee", "v0.1.0", "v0.1.1"]
    for t in second.tags:
        docker_engine.images.remove(t, force=True)
    proc, out = run_cli(["health-check", "--image", second.image, "--username", registry.username, "--timeout", "120"], tmp_path,
                        {"REGISTRY_PASSWORD": registry.password})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["healthy"] == "true" and int(out["latency-ms"]) >= 0
    assert set(json.loads(out["prediction"])) <= {0, 1} and json.loads(out["prediction"])
    # the password reaches the log only in ::add-mask:: lines (the runner hides it everywhere after)
    assert not [line for line in (proc.stdout + proc.stderr).splitlines() if registry.password in line and not line.startswith("::add-mask::")]
    assert containers_of(docker_engine, second.image) == []
    summary = (tmp_path / "summary").read_text()
    assert "### 🩺 health-check" in summary
