"""core/sbom.py: the CycloneDX SBOM the builder stage writes of the image's venv, and push-image's
copy of it (fake engine)."""

import io
import json
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest
from packaging.markers import Marker

from mlops_actions.core import sbom
from mlops_actions.core.paths import resource
from mlops_actions.core.templating import render_template
from mlops_actions.stages import push_image as push

SBOM_PY = resource("scripts/mlops_actions/core/sbom.py")
LONG_LICENSE = "Zope Public License (ZPL) Version 2.1\n\nA copyright notice accompanies this license document..."
PACKAGES = {
    # name as published, version, metadata lines
    "Foo_Bar": ("1.0", [
        "License-Expression: MIT",
        "Summary: The   foo bar",
        "Requires-Dist: baz>=1",
        'Requires-Dist: qux ; python_version < "3"',
        'Requires-Dist: extra-only ; extra == "fancy"',
        "Requires-Dist: not-installed>=2",
    ]),
    "baz": ("2.0", [
        "License: BSD",
        "Classifier: License :: OSI Approved :: BSD License",
        'Requires-Dist: zope.interface ; sys_platform == "linux" or sys_platform == "darwin" or sys_platform != "linux"',
    ]),
    "qux": ("3.0", ["License: UNKNOWN"]),
    "extra-only": ("0.1", ["Classifier: License :: OSI Approved :: Apache Software License"]),
    "zope.interface": ("5.0", [
        "License: " + LONG_LICENSE.replace("\n", "\n        "),
        "Classifier: License :: OSI Approved :: Zope Public License",
    ]),
}


def _venv(root: Path, packages: dict = PACKAGES) -> Path:
    """A venv without pip holding fake distributions (dist-info with METADATA only)."""
    venv.create(root, with_pip=False, symlinks=True)
    site = Path(sbom.site_packages(root)[0])
    for name, (version, lines) in packages.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "\n".join(["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", *lines]) + "\n\n", encoding="utf-8"
        )
    return root


def _run(root: Path, requirements: str) -> bytes:
    """sbom.py as the builder stage runs it: the venv's own interpreter, stdout is the file."""
    req = root / "requirements.txt"
    req.write_text(requirements, encoding="utf-8")
    python = root / "bin" / "python"
    return subprocess.run([str(python), "-I", str(SBOM_PY), str(root), str(req)], check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return _venv(tmp_path_factory.mktemp("sbom") / "venv")


def test_the_document_lists_the_venvs_distributions_only_with_purls_licenses_and_top_level(env):
    bom = json.loads(_run(env, "Foo-Bar[fancy]==1.0  # pinned\nqux\n# a comment\n\n"))
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5" and bom["version"] == 1
    assert bom["serialNumber"].startswith("urn:uuid:") and "timestamp" not in bom["metadata"]
    assert bom["metadata"]["tools"]["components"][0]["name"] == "mlops-actions"
    root = bom["metadata"]["component"]
    assert root["bom-ref"] == "python-environment" and root["version"].count(".") == 2
    # the venv's five, not the distributions of the interpreter running the tests (no pip, no click)
    by_name = {c["name"]: c for c in bom["components"]}
    assert set(by_name) == {"baz", "extra-only", "Foo_Bar", "qux", "zope.interface"}
    assert [c["name"] for c in bom["components"]] == ["baz", "extra-only", "Foo_Bar", "qux", "zope.interface"]
    assert all(c["type"] == "library" and c["bom-ref"] == c["purl"] for c in bom["components"])
    assert by_name["Foo_Bar"]["purl"] == "pkg:pypi/foo-bar@1.0"
    assert by_name["zope.interface"]["purl"] == "pkg:pypi/zope-interface@5.0"
    assert by_name["Foo_Bar"]["description"] == "The foo bar"
    # licenses: the expression alone; else the short License field and the classifiers' names
    assert by_name["Foo_Bar"]["licenses"] == [{"expression": "MIT"}]
    assert by_name["baz"]["licenses"] == [{"license": {"name": "BSD"}}, {"license": {"name": "BSD License"}}]
    assert by_name["zope.interface"]["licenses"] == [{"license": {"name": "Zope Public License"}}]  # no full text
    assert "licenses" not in by_name["qux"]  # UNKNOWN is no license
    top = {"name": sbom.TOP_LEVEL, "value": "true"}
    assert [n for n, c in by_name.items() if top in c.get("properties", [])] == ["Foo_Bar", "qux"]
    assert sbom.top_level_packages(bom) == [("Foo_Bar", "1.0"), ("qux", "3.0")]
    assert sbom.packages(bom)[0] == ("baz", "2.0") and len(sbom.packages(bom)) == 5


def test_dependencies_follow_requires_dist_markers_and_requested_extras(env):
    deps = {d["ref"]: d["dependsOn"] for d in json.loads(_run(env, "Foo-Bar[fancy]==1.0\nqux\n"))["dependencies"]}
    assert deps["python-environment"] == ["pkg:pypi/foo-bar@1.0", "pkg:pypi/qux@3.0"]
    # qux only on python < 3: no edge; extra-only because foo-bar[fancy] was asked for; not-installed: absent
    assert deps["pkg:pypi/foo-bar@1.0"] == ["pkg:pypi/baz@2.0", "pkg:pypi/extra-only@0.1"]
    assert deps["pkg:pypi/baz@2.0"] == ["pkg:pypi/zope-interface@5.0"]
    assert deps["pkg:pypi/qux@3.0"] == [] and len(deps) == 6
    plain = {d["ref"]: d["dependsOn"] for d in json.loads(_run(env, "foo.bar\n"))["dependencies"]}
    assert plain["pkg:pypi/foo-bar@1.0"] == ["pkg:pypi/baz@2.0"]  # no extra requested
    assert plain["python-environment"] == ["pkg:pypi/foo-bar@1.0"]
    bom = json.loads(_run(env, "Foo-Bar[fancy]\n"))
    refs = {c["bom-ref"] for c in bom["components"]} | {"python-environment"}
    assert all(r in refs for d in bom["dependencies"] for r in [d["ref"], *d["dependsOn"]])


def test_same_environment_and_requirements_give_the_same_bytes(env, tmp_path):
    first, second = _run(env, "foo-bar\nqux\n"), _run(env, "foo-bar\nqux\n")
    assert first == second  # the builder layer holding it caches
    other = json.loads(_run(env, "foo-bar\n"))
    assert other["serialNumber"] != json.loads(first)["serialNumber"]
    # another environment (baz at another version) gets another serial number
    changed = dict(PACKAGES, baz=("2.1", PACKAGES["baz"][1]))
    again = json.loads(_run(_venv(tmp_path / "v2", changed), "foo-bar\nqux\n"))
    assert again["serialNumber"] != json.loads(first)["serialNumber"]
    assert ("baz", "2.1") in sbom.packages(again)


def test_the_script_refuses_a_folder_without_site_packages(tmp_path):
    run = subprocess.run([sys.executable, str(SBOM_PY), str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 1 and "no site-packages" in run.stderr and run.stdout == ""
    assert subprocess.run([sys.executable, str(SBOM_PY)], capture_output=True).returncode == 2


@pytest.mark.parametrize("marker", [
    'python_version >= "3.8"', 'python_version < "3"', 'python_version == "3.*"', "python_version ~= '3.1'",
    'sys_platform == "win32" or (os_name == "posix" and platform_machine != "nonexistent")',
    'platform_system == "Linux" and implementation_name == "cpython"', '"linux" in sys_platform',
    'python_full_version >= "3.10.0" and python_version not in "2.7, 3.5"', 'platform_python_implementation != "PyPy"',
    'extra == "fancy"', 'extra == "other" or python_version > "3.99"',
])
def test_markers_evaluate_as_packaging_does(marker):
    env = sbom.environment()
    assert sbom.marker_true(marker, env, {"fancy"}) == Marker(marker).evaluate({**env, "extra": "fancy"})


def test_an_unreadable_marker_raises():
    with pytest.raises(ValueError):
        sbom.marker_true('python_version >= "3" and', sbom.environment(), set())
    with pytest.raises(ValueError):
        sbom.marker_true("no_such_variable == '1'", sbom.environment(), set())


def test_top_level_of_another_tools_sbom_are_the_root_components_dependencies():
    bom = {
        "bomFormat": "CycloneDX",
        "metadata": {"component": {"bom-ref": "root"}},
        "components": [{"bom-ref": "a", "name": "a", "version": "1"}, {"bom-ref": "b", "name": "B", "version": "2"}],
        "dependencies": [{"ref": "root", "dependsOn": ["b"]}, {"ref": "b", "dependsOn": ["a"]}],
    }
    assert sbom.top_level_packages(sbom.parse(json.dumps(bom))) == [("B", "2")]
    with pytest.raises(ValueError):
        sbom.parse('{"spdxVersion": "SPDX-2.3"}')


def test_the_template_writes_the_sbom_in_the_builder_and_copies_it_before_the_server_and_model():
    text = render_template(resource("Dockerfile.tmpl"), {
        "base_image": "python:3.11-slim", "flavor": "sklearn", "python_version": "3.11", "port": 8080, "uid": 10001,
        "ca_bundle": False, "labels": {"a": "b"}, "runtime": "native", "system_packages": [], "challenger": False,
        "challenger_onnx": False, "drift_profile": False, "sbom_path": "/sbom.cdx.json",
    }, "template")
    builder, runtime = text.split("FROM ${BASE_IMAGE}", 2)[1:]
    assert builder.index("compileall") < builder.index("COPY sbom.py /tmp/sbom.py")
    assert "RUN /opt/venv/bin/python -I /tmp/sbom.py /opt/venv /tmp/requirements.txt > /sbom.cdx.json" in builder
    assert runtime.index("COPY --from=builder /opt/venv") < runtime.index("COPY --from=builder /sbom.cdx.json /sbom.cdx.json")
    assert runtime.index("/sbom.cdx.json") < runtime.index("COPY serve/") < runtime.index("COPY model/")
    assert text.rstrip().endswith('LABEL io.github.mlops-actions.sbom="/sbom.cdx.json"')


# -- push-image's copy, with a fake engine ----------------------------------------------------


class _Container:
    def __init__(self, files):
        self.files, self.removed = files, False

    def get_archive(self, path):
        from docker.errors import NotFound

        if path not in self.files:
            raise NotFound(f"Could not find the file {path} in container")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = self.files[path]
            info = tarfile.TarInfo(path.rsplit("/", 1)[-1])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return iter([buf.getvalue()]), {"name": info.name, "size": len(data)}

    def remove(self, force=False):
        self.removed = True


class _Engine:
    def __init__(self, files, labels):
        self.made: list[_Container] = []
        self.created: list[dict] = []
        outer = self

        class Images:
            def get(self, ref):
                return type("Image", (), {"labels": labels})()

        class Containers:
            def create(self, image, **kwargs):
                outer.created.append(kwargs)
                outer.made.append(_Container(files))
                return outer.made[-1]

        self.images, self.containers = Images(), Containers()


def test_push_image_copies_the_sbom_the_label_names_outside_the_context(env, tmp_path, monkeypatch):
    data = _run(env, "foo-bar\nqux\n")
    context = tmp_path / "ctx"
    context.mkdir()
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path / "runner"))
    engine = _Engine({"/x/sbom.json": data}, {push.SBOM_LABEL: "/x/sbom.json"})
    got = push.extract_sbom(engine, "cand:1", "sha256:" + "ab" * 32, context)
    assert got.path == (tmp_path / "runner").resolve() / "mlops-sbom-abababababab.cdx.json"
    assert got.path.read_bytes() == data and got.in_image == "/x/sbom.json"
    assert got.components == 5 and got.top_level == [("Foo_Bar", "1.0"), ("qux", "3.0")]
    assert engine.made[0].removed and engine.created[0]["entrypoint"] == ["/nonexistent"]  # never started
    result = push.PushResult(image="r/m:v1", digest="", tags=["r/m:v1"], image_id="sha256:ab", smoke={}, sbom=got)
    assert result.outputs()["sbom"] == str(got.path)
    assert "5 components, 2 top level" in result.summary() and "| `Foo_Bar` | 1.0 |" in result.summary()
    # RUNNER_TEMP inside the context: the temporary folder instead, never the context
    monkeypatch.setenv("RUNNER_TEMP", str(context / "tmp"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert push.sbom_file("sha256:" + "cd" * 32, context).parent == (tmp_path / "tmp").resolve()


def test_an_image_without_sbom_gives_an_empty_output_and_says_so(tmp_path):
    engine = _Engine({}, {})
    got = push.extract_sbom(engine, "cand:1", "sha256:" + "ab" * 32, tmp_path)
    assert got.path is None and "no /sbom.cdx.json" in got.note and engine.made[0].removed
    result = push.PushResult(image="r/m:v1", digest="", tags=["r/m:v1"], image_id="sha256:ab", smoke={}, sbom=got)
    assert result.outputs()["sbom"] == "" and "SBOM: none (the image has no /sbom.cdx.json" in result.summary()
    broken = push.extract_sbom(_Engine({"/sbom.cdx.json": b"{not json"}, {}), "c:1", "sha256:" + "ab" * 32, tmp_path)
    assert broken.path is None and "not a CycloneDX JSON document" in broken.note


def _schema_errors(document: bytes) -> str | None:
    """What CycloneDX's own library says of the document against the official 1.5 schema, strict
    (no property the schema does not define); None when it is valid."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(document.decode("utf-8"))
    return None if error is None else str(error)[:2000]


def test_the_document_is_valid_cyclonedx_1_5_by_the_official_schema(env):
    document = _run(env, "Foo-Bar[fancy]==1.0\nqux\n")
    assert _schema_errors(document) is None
    broken = json.loads(document)
    broken["components"][0]["type"] = "python-package"  # not a component type of the schema
    assert _schema_errors(json.dumps(broken).encode()) is not None
