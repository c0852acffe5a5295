"""Static rules for every workflow and action in the repository (issue: hardening).

The linters (tests/test_lint.py) catch a lot; these rules are the repository's own and cheap to
check on every file: no ``${{ }}`` inside any ``run:``, an explicit ``permissions:`` on every job
of every workflow, third-party actions pinned by full commit SHA with a version comment, and the
flagship pipelines current with their template."""

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


def test_flagship_pipelines_are_rendered_from_the_template():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_pipelines.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_both_pipelines_chain_the_same_stages():
    jobs = {name: list(load(ROOT / f".github/workflows/{name}-pipeline.yml")["jobs"]) for name in ("sentiment", "rice")}
    assert jobs["sentiment"] == jobs["rice"] == ["data", "train", "gate", "propose", "image", "health", "promote", "summary"]
