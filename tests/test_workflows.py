"""Static rules for every workflow and action in the repository (issue: hardening).

The linters (tests/test_lint.py) catch a lot; these rules are the repository's own and cheap to
check on every file: no ``${{ }}`` inside any ``run:``, an explicit ``permissions:`` on every job
of every workflow, third-party actions pinned by full commit SHA with a version comment, and the
flagship pipelines presets of the one reusable pipeline, ml-pipeline.yml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted(ROOT.glob("actions/*/action.yml")) + [ROOT / "action.yml"]
ALL = WORKFLOWS + ACTIONS
IDS = [str(p.relative_to(ROOT)) for p in ALL]
SELF = "mlops-actions/mlops-actions/"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def all_steps(doc: dict) -> list[dict]:
    found = list((doc.get("runs") or {}).get("steps") or [])
    for job in (doc.get("jobs") or {}).values():
        found += job.get("steps") or []
    return found


def uses_lines(path: Path) -> list[tuple[str, str]]:
    """(reference, rest of the line) for every uses: line, comment included."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\s*(?:-\s+)?uses:\s*([^\s#]+)\s*(#.*)?$", line)
        if m:
            out.append((m.group(1), m.group(2) or ""))
    return out


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_no_expression_inside_run(path):
    for step in all_steps(load(path)):
        if "run" in step:
            assert "${{" not in step["run"], f"{path.name}: step {step.get('name') or step.get('id')}: pass values through env:"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[str(p.relative_to(ROOT)) for p in WORKFLOWS])
def test_every_job_declares_permissions(path):
    doc = load(path)
    assert doc.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}} (each job asks for its own)"
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} has no permissions: block"
        perms = job["permissions"] or {}
        assert perms != "write-all" and "write-all" not in str(perms), f"{path.name}: job {name} asks for write-all"


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_third_party_actions_are_pinned_by_sha_with_a_version_comment(path):
    for ref, comment in uses_lines(path):
        if ref.startswith(("./", SELF, "docker://")):
            continue
        assert PINNED.match(ref), f"{path.name}: {ref} is not pinned by a full commit SHA"
        assert re.match(r"#\s*v\d+(\.\d+)*", comment), f"{path.name}: {ref} has no '# vX.Y.Z' comment"


def test_the_rule_catches_an_expression_in_run(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\npermissions: {}\njobs:\n  a:\n    permissions: {}\n    runs-on: x\n    steps:\n"
                   "      - run: echo ${{ github.event.issue.title }}\n      - uses: actions/checkout@v4\n")
    with pytest.raises(AssertionError):
        test_no_expression_inside_run(bad)
    with pytest.raises(AssertionError):
        test_third_party_actions_are_pinned_by_sha_with_a_version_comment(bad)


def test_flagship_pipelines_are_rendered_from_the_one_pipeline():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_pipelines.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _call(doc: dict) -> dict:
    return doc.get("on", doc.get(True))["workflow_call"]


def test_the_job_graph_exists_once():
    """ml-pipeline.yml holds the jobs; each flagship is one job calling it with every input passed
    through, the same secrets and outputs, and only project defaults of its own."""
    source = load(ROOT / ".github/workflows/ml-pipeline.yml")
    assert list(source["jobs"]) == ["data", "train", "select", "gate", "propose", "image", "health", "promote", "summary"]
    for name in ("sentiment", "rice"):
        doc = load(ROOT / f".github/workflows/{name}-pipeline.yml")
        [(job_id, job)] = doc["jobs"].items()
        assert job["uses"].startswith(SELF + ".github/workflows/ml-pipeline.yml@"), job
        assert job["secrets"] == {key: f"${{{{ secrets.{key} }}}}" for key in _call(source)["secrets"]}, name
        inputs = _call(doc)["inputs"]
        assert list(inputs) == list(_call(source)["inputs"]), name
        assert job["with"] == {key: f"${{{{ inputs.{key} }}}}" for key in inputs}, name
        assert list(_call(doc)["secrets"]) == list(_call(source)["secrets"])
        assert {k: v["value"] for k, v in _call(doc)["outputs"].items()} == {
            k: f"${{{{ jobs.{job_id}.outputs.{k} }}}}" for k in _call(source)["outputs"]}
        assert not [k for k, v in inputs.items() if v.get("required")], f"{name}: a preset needs no input"
        assert inputs["name"]["default"] == name and inputs["metric"]["default"]


def test_every_pipeline_job_runs_where_the_caller_says():
    """runs-on of every job comes from an input (a label or a JSON list of labels), none is fixed."""
    jobs = load(ROOT / ".github/workflows/ml-pipeline.yml")["jobs"]
    expected = {"train": "train-runs-on", "image": "build-runs-on", "health": "build-runs-on"}
    for job_id, job in jobs.items():
        runs_on = job["runs-on"]
        key = expected.get(job_id)
        assert "fromJSON(" in runs_on and "inputs.runs-on" in runs_on, (job_id, runs_on)
        assert (key is None) == ("train-runs-on" not in runs_on and "build-runs-on" not in runs_on), (job_id, runs_on)
        if key:
            assert f"inputs.{key}" in runs_on, (job_id, runs_on)
