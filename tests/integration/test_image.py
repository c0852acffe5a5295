"""render-dockerfile and push-image against the real Docker engine and a registry with auth."""

import json
import os
import shutil
import urllib.request

import pytest
import yaml

from mlops_actions.stages.render_dockerfile import render
from mlops_actions.core.errors import InputError, StageError
from conftest import serve_image
from mlops_actions.stages.push_image import PushRequest, push_image
from mlops_actions.core.local_services import free_port

pytestmark = pytest.mark.docker
CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def context(fetched, tmp_path_factory, docker_engine):
    out = tmp_path_factory.mktemp("ctx") / "image"
    render(fetched.model_path, out, ca_bundle=CA, version="1.2.3", run_id="r1")
    return out


def test_rendered_dockerfile_is_multistage_nonroot_with_labels(context, fetched):
    text = (context / "Dockerfile").read_text()
    assert text.count("FROM ${BASE_IMAGE}") == 2 and "AS builder" in text
    assert "USER 10001:10001" in text and "HEALTHCHECK" in text
    # the model is copied after the dependency layer, the CA only into the builder stage
    assert text.index("pip install") < text.index("COPY model/")
    runtime = text.split("FROM ${BASE_IMAGE}\n", 1)[1]
    assert "ca-bundle" not in runtime
    assert 'LABEL dev.mlflow.run-id="r1"' in text and 'org.opencontainers.image.version="1.2.3"' in text
    assert "python:3.11-slim" in text
    reqs = (context / "requirements.txt").read_text().split()
    assert "scikit-learn" in " ".join(reqs) and not any(r.startswith("mlflow") for r in reqs)
    info = json.loads((context / "model-info.json").read_text())
    assert info["flavor"] == "sklearn" and len(info["model_sha256"]) == 64


def test_build_smoke_push_and_pull_by_digest(context, registry, docker_engine, monkeypatch):
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("GITHUB_SHA", "c0ffee0" + "0" * 33)
    image = f"{registry.host}/acme/sentiment"
    result = push_image(PushRequest(context=context, image=image, version="1.2.3", username=registry.username,
                                    password=registry.password, default_branch="main"))
    assert result.digest.startswith("sha256:") and result.image == f"{image}@{result.digest}"
    assert result.tags == [f"{image}:{t}" for t in ("latest", "main-c0ffee0", "v1.2.3")]
    assert result.smoke["predictions"] and set(result.smoke["predictions"]) <= {0, 1}
    # no scratch tag left behind
    assert not [t for i in docker_engine.images.list() for t in i.tags if t.startswith("mlops-actions-candidate")]
    # the registry holds it: pull by digest after dropping the local copy, run it, predict
    for t in result.tags:
        docker_engine.images.remove(t, force=True)
    docker_engine.login(registry.username, registry.password, registry=registry.host)
    pulled = docker_engine.images.pull(f"{image}@{result.digest}")
    labels = pulled.labels
    assert labels["dev.mlflow.flavor"] == "sklearn" and labels["org.opencontainers.image.version"] == "1.2.3"
    assert pulled.attrs["Config"]["User"] == "10001:10001"
    with serve_image(docker_engine, f"{image}@{result.digest}") as url:
        body = json.dumps({"dataframe_split": {"columns": ["review_text"], "data": [["love it, great and fast"], ["crashes, awful and slow"]]}})
        req = urllib.request.Request(f"{url}/invocations", data=body.encode(), headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(req, timeout=10).read())
        assert answer == {"predictions": [1, 0]}
        csv = urllib.request.Request(f"{url}/invocations", data=b"review_text\nawful buggy app\n", headers={"Content-Type": "text/csv"})
        assert json.loads(urllib.request.urlopen(csv, timeout=10).read()) == {"predictions": [0]}
        version = json.loads(urllib.request.urlopen(f"{url}/version", timeout=5).read())
        assert version["version"] == "1.2.3" and version["run_id"] == "r1"


def test_failed_smoke_test_tags_and_pushes_nothing(fetched, registry, docker_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    model = tmp_path / "model"
    shutil.copytree(fetched.model_path, model)
    (model / "model.pkl").write_bytes(b"not a pickle")
    ctx = render(model, tmp_path / "ctx", ca_bundle=CA).context
    image = f"{registry.host}/acme/broken"
    with pytest.raises(StageError, match="smoke test"):
        push_image(PushRequest(context=ctx, image=image, version="0.0.1", username=registry.username,
                               password=registry.password, smoke_timeout=60))
    assert not [t for i in docker_engine.images.list() for t in i.tags if t.startswith(image) or t.startswith("mlops-actions-candidate")]
    req = urllib.request.Request(f"{registry.url}/v2/acme/broken/tags/list")
    import base64

    req.add_header("Authorization", "Basic " + base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 404  # the repository was never created


def test_wrong_registry_password_fails_before_building(context, registry):
    with pytest.raises(InputError) as err:
        push_image(PushRequest(context=context, image=f"{registry.host}/acme/x", version="1.0.0", username=registry.username, password="wrong"))
    assert err.value.input_name == "password" and "wrong" not in err.value.line()


def test_unreachable_registry_fails_after_retries(context, docker_engine):
    with pytest.raises(InputError) as err:
        push_image(PushRequest(context=context, image=f"127.0.0.1:{free_port()}/acme/x", version="1.0.0", username="u", password="p"))
    assert err.value.input_name == "registry" and "after retries" in err.value.line()


def test_render_refuses_bad_models(fetched, tmp_path):
    with pytest.raises(InputError, match="holds no MLmodel"):
        render(tmp_path, tmp_path / "out")
    model = tmp_path / "m"
    shutil.copytree(fetched.model_path, model)
    # a flavor without a loader of ours and without a python_function section: nothing can load it
    meta = yaml.safe_load((model / "MLmodel").read_text())
    meta["flavors"] = {"spark": meta["flavors"]["sklearn"]}
    (model / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(InputError, match="flavor 'spark' has no python_function flavor") as err:
        render(model, tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_render_refuses_bad_template_and_ca(fetched, tmp_path):
    with pytest.raises(InputError, match="'template'.*not found"):
        render(fetched.model_path, tmp_path / "out", template=str(tmp_path / "missing.tmpl"))
    bad = tmp_path / "bad.tmpl"
    bad.write_text("FROM {{ base_image }}\nRUN {{ undefined_thing }}\n")
    with pytest.raises(InputError, match="undefined variable"):
        render(fetched.model_path, tmp_path / "out", template=str(bad))
    notpem = tmp_path / "ca.txt"
    notpem.write_text("hello")
    with pytest.raises(InputError, match="ca-bundle"):
        render(fetched.model_path, tmp_path / "out", ca_bundle=str(notpem))
    assert not (tmp_path / "out").exists()


def test_sbom_lists_exactly_what_the_image_installed(context, docker_engine, tmp_path, monkeypatch):
    """The image's /sbom.cdx.json, copied out as output sbom, lists the distributions of /opt/venv
    as the image's own interpreter sees them (what pip list would print; the image has no pip).
    Runs after the push test above, so its build is all cache."""
    from mlops_actions.core import sbom

    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    monkeypatch.setenv("RUNNER_TEMP", str(runner_temp))
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("GITHUB_SHA", "c0ffee0" + "0" * 33)
    result = push_image(PushRequest(context=context, image="mlops-actions-test/sentiment-sbom", version="1.2.3",
                                    push=False, smoke_test=False, default_branch="main"))
    try:
        out = result.outputs()["sbom"]
        assert out and os.path.dirname(out) == str(runner_temp.resolve()) and str(context) not in out
        text = open(out, encoding="utf-8").read()
        bom = sbom.parse(text)
        listing = (
            "import glob, json, importlib.metadata as m\n"
            "sp = glob.glob('/opt/venv/lib/python*/site-packages')\n"
            "print(json.dumps({'dists': sorted([d.metadata['Name'], d.version] for d in m.distributions(path=sp)),"
            " 'sbom': open('/sbom.cdx.json', encoding='utf-8').read()}))\n"
        )
        seen = json.loads(docker_engine.containers.run(result.image_id, entrypoint=["python3", "-c", listing],
                                                       remove=True, network_disabled=True))
        installed = {(sbom.normalize(name), version) for name, version in seen["dists"]}
        listed = {(sbom.normalize(name), version) for name, version in sbom.packages(bom)}
        assert listed == installed and len(installed) == len(seen["dists"]) == len(bom["components"])
        assert "pip" not in {name for name, _ in installed}
        assert seen["sbom"] == text  # the output file is the image's own SBOM, byte for byte
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator

        assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None  # the official 1.5 schema, strict
        assert docker_engine.images.get(result.image_id).labels["io.github.mlops-actions.sbom"] == "/sbom.cdx.json"
        # top level: exactly the names of the context's requirements.txt, as installed
        wanted = {sbom.normalize(line.split("==")[0].split(">")[0].split("<")[0].split("[")[0].strip())
                  for line in (context / "requirements.txt").read_text().splitlines() if line.strip()}
        top = dict((sbom.normalize(n), v) for n, v in sbom.top_level_packages(bom))
        assert set(top) == wanted and top.items() <= dict(installed).items() and "scikit-learn" in top
        refs = {c["bom-ref"] for c in bom["components"]} | {bom["metadata"]["component"]["bom-ref"]}
        assert all(ref in refs for dep in bom["dependencies"] for ref in [dep["ref"], *dep["dependsOn"]])
        summary = result.summary()
        assert f"{len(installed)} components" in summary and f"| `scikit-learn` | {top['scikit-learn']} |" in summary
        print(f"SBOM: {len(installed)} components, {len(top)} top level: {sorted(top.items())}")
    finally:
        for t in result.tags:
            docker_engine.images.remove(t, noprune=True)
