"""Every ```yaml block in README.md and actions/*/README.md is extracted and checked.

Each block is classified, explicitly; a block that fits no kind fails (nothing is skipped):

- ``workflow``: a mapping with ``jobs:`` -- linted as is; when it leaves out ``on:`` (a workflow
  cut down to its ``jobs:``) ``on: push`` is added, and ``permissions: {}`` when it has none.
- ``jobs``: a mapping of job ids to jobs (each value has ``runs-on`` or ``uses``) -- wrapped as
  ``on: push``, ``permissions: {}``, ``jobs: <block>``.
- ``job``: a job body without ``runs-on`` (``permissions:`` and/or ``steps:``) -- wrapped as
  ``on: push``, ``permissions: {}`` and one job ``snippet`` that ``runs-on: ubuntu-latest`` with
  the block's keys (its ``permissions``, ``steps``, ...).
- ``steps``: a list of steps -- wrapped like ``job`` with ``steps: <block>`` (no job permissions,
  so the job has none: the workflow's ``permissions: {}``).

A snippet shows one part of a workflow and may refer to what it leaves out: ``steps.<id>``
of a step before it, ``needs.<job>`` of another job. For each such reference to an id the
snippet does not define, the skeleton adds a stub before it -- a step ``id: <id>, run: 'true'``
(a run step's outputs are untyped) or a job ``<job>`` on ubuntu-latest with an ``outputs:``
entry for every ``needs.<job>.outputs.<name>`` used, which the snippet's job then ``needs`` -- so the linters see a complete workflow
and no finding is caused by the cut.

Every workflow (as is or wrapped) must give 0 findings from actionlint (tests/infra/
install-linters.sh) and from ``zizmor --offline`` with this repository's .github/zizmor.yml:
this repository's own actions ``mlops-actions/*`` may be ref-pinned (``@v1``), every other
action must be pinned by commit SHA.

- ``data``: YAML that is not a workflow, recognised by file and top-level keys (``DATA``):
  validate-data specs (parsed with ``mlops_actions.stages.validate_data.load_spec``; a fragment without
  ``format`` is read as a csv spec) and drift ``columns`` values (valid YAML, the right shape).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from test_lint import actionlint, installer, run_actionlint, tool  # noqa: F401  (session fixtures, shared with test_lint)

ROOT = Path(__file__).resolve().parent.parent
READMES = [ROOT / "README.md"] + sorted(ROOT.glob("actions/*/README.md"))
FENCE = re.compile(r"^```yaml[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
ZIZMOR_CONFIG = ROOT / ".github" / "zizmor.yml"
SPEC_KEYS = {"format", "description", "min_rows", "columns", "label", "duplicates", "splits", "classes",
             "min_per_class", "extensions", "max_corrupt"}
# file -> (what the non-workflow YAML is, the top-level keys it may have)
DATA = {
    "actions/validate-data/README.md": ("validate-data spec", SPEC_KEYS),
    "actions/drift/README.md": ("drift columns input / columns file", {"columns"}),
}
WORKFLOW_KEYS = {"on", True, "jobs", "steps", "runs-on", "uses", "run", "permissions", "needs"}
STEPS_REF = re.compile(r"\bsteps\.([A-Za-z_][\w-]*)")
NEEDS_REF = re.compile(r"\bneeds\.([A-Za-z_][\w-]*)(?:\.outputs\.([A-Za-z_][\w-]*))?")


# Known failures, each in the root README (not generated; fixed by hand, see the reason). strict:
# once the README is fixed the test passes, the xfail turns into a failure, and the entry must go.
KNOWN: dict[tuple[str, str], str] = {}


def params(test: str, items: list[tuple]) -> list:
    """pytest params named by file:block-number; a KNOWN failure is a strict xfail with its reason."""
    return [pytest.param(*item, id=item[0],
                         marks=[pytest.mark.xfail(reason=KNOWN[test, item[0]], strict=True)] if (test, item[0]) in KNOWN else [])
            for item in items]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def extract() -> list[tuple[str, str]]:
    """(file:block-number, text) for every ```yaml block, numbered from 1 per file."""
    found = []
    for path in READMES:
        for number, m in enumerate(FENCE.finditer(path.read_text(encoding="utf-8")), start=1):
            found.append((f"{rel(path)}:{number}", textwrap.dedent(m.group(1))))
    return found


SNIPPETS = extract()
IDS = [name for name, _ in SNIPPETS]


def classify(name: str, doc) -> str:
    file = name.rsplit(":", 1)[0]
    if isinstance(doc, list) and doc and all(isinstance(s, dict) and ("uses" in s or "run" in s) for s in doc):
        return "steps"
    if not isinstance(doc, dict) or not doc:
        return "unknown"
    if "jobs" in doc:
        return "workflow"
    if all(isinstance(job, dict) and ("runs-on" in job or "uses" in job) for job in doc.values()):
        return "jobs"
    if "steps" in doc and "runs-on" not in doc and set(doc) <= {"permissions", "steps", "env", "if", "needs",
                                                               "environment", "defaults", "timeout-minutes"}:
        return "job"
    if file in DATA and set(doc) <= DATA[file][1] and not set(doc) & WORKFLOW_KEYS:
        return "data"
    return "unknown"


def _stub_steps(steps: list[dict], text: str) -> list[dict]:
    defined = {s.get("id") for s in steps if isinstance(s, dict)}
    missing = sorted(set(STEPS_REF.findall(text)) - defined)
    return [{"id": step_id, "run": "true"} for step_id in missing] + steps


def _stub_jobs(jobs: dict, text: str) -> dict:
    outputs: dict[str, set[str]] = defaultdict(set)
    for job_id, output in NEEDS_REF.findall(text):
        outputs[job_id]
        if output:
            outputs[job_id].add(output)
    for job in jobs.values():
        needs = job.get("needs") or []
        for job_id in [needs] if isinstance(needs, str) else needs:
            outputs[job_id]
    stubs = {}
    for job_id in sorted(set(outputs) - set(jobs)):
        stub = {"runs-on": "ubuntu-latest", "steps": [{"run": "true"}]}
        if outputs[job_id]:
            stub["outputs"] = {name: "''" for name in sorted(outputs[job_id])}
        stubs[job_id] = stub
    return {**stubs, **jobs}


def as_workflow(kind: str, doc, text: str) -> str:
    """The snippet as a complete workflow (see the module docstring for each kind)."""
    if kind == "workflow":
        if "on" in doc or True in doc:  # YAML 1.1 reads a bare `on` key as True
            return text
        return yaml.safe_dump({"on": "push", "permissions": doc.get("permissions", {}), **doc},
                              sort_keys=False, width=1000)
    if kind == "jobs":
        jobs = _stub_jobs(doc, text)
    else:
        body = {"steps": doc} if kind == "steps" else dict(doc)
        job = {"runs-on": "ubuntu-latest", **body}
        job["steps"] = _stub_steps(job["steps"], text)
        needed = sorted({job_id for job_id, _ in NEEDS_REF.findall(text)})
        if needed and "needs" not in job:
            job["needs"] = needed
        jobs = _stub_jobs({"snippet": job}, text)
    return yaml.safe_dump({"on": "push", "permissions": {}, "jobs": jobs}, sort_keys=False, width=1000)


def parse(name: str, text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        pytest.fail(f"{name}: not valid YAML: {exc}", pytrace=False)


WORKFLOW_SNIPPETS = []
DATA_SNIPPETS = []
for _name, _text in SNIPPETS:
    try:
        _doc = yaml.safe_load(_text)
    except yaml.YAMLError:
        continue  # test_snippet_kind reports it
    _kind = classify(_name, _doc)
    if _kind == "data":
        DATA_SNIPPETS.append((_name, _text))
    elif _kind != "unknown":
        WORKFLOW_SNIPPETS.append((_name, _kind, as_workflow(_kind, _doc, _text)))


def test_snippets_found():
    assert len(SNIPPETS) >= len(READMES) - 1, IDS  # every action README shows its usage
    assert WORKFLOW_SNIPPETS and DATA_SNIPPETS


def test_known_failures_name_real_snippets():
    assert {name for _, name in KNOWN} <= set(IDS), KNOWN


def test_every_snippet_is_checked():
    """Each block is either linted as a workflow or checked as data (or is a KNOWN failure)."""
    checked = {s[0] for s in WORKFLOW_SNIPPETS} | {s[0] for s in DATA_SNIPPETS}
    unchecked = set(IDS) - checked - {name for (test, name) in KNOWN if test == "kind"}
    assert not unchecked, sorted(unchecked)


@pytest.mark.parametrize("name,text", params("kind", SNIPPETS))
def test_snippet_kind(name, text):
    """Valid YAML, and recognised as a workflow / jobs / job / steps / data snippet."""
    doc = parse(name, text)
    kind = classify(name, doc)
    assert kind != "unknown", (f"{name}: neither a workflow, jobs, a job, steps nor known data "
                               f"(top level: {list(doc) if isinstance(doc, dict) else type(doc).__name__}); "
                               "make it one, or add its file and keys to DATA in tests/test_snippets.py")


@pytest.mark.parametrize("name,text", params("data", DATA_SNIPPETS))
def test_data_snippet(name, text, tmp_path):
    doc = parse(name, text)
    if name.startswith("actions/validate-data/"):
        sys.path.insert(0, str(ROOT / "scripts"))
        from mlops_actions.stages.validate_data import load_spec
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump({"format": "csv", **doc}), encoding="utf-8")
        load_spec(spec)  # raises on an unknown key or a wrong type
    else:
        columns = doc["columns"]
        if isinstance(columns, str):
            pairs = [p.strip() for p in re.split(r"[,\n]", columns) if p.strip()]
            assert all(re.fullmatch(r"[\w .-]+=(text|categorical|numeric|ignore)", p) for p in pairs), pairs
        else:
            assert isinstance(columns, dict) and columns, columns
            assert set(columns.values()) <= {"text", "categorical", "numeric", "ignore"}, columns


@pytest.fixture(scope="session")
def snippet_files(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("snippets")
    files = {}
    for name, _kind, workflow in WORKFLOW_SNIPPETS:
        path = work / (re.sub(r"[^\w.-]+", "__", name) + ".yml")
        path.write_text(workflow, encoding="utf-8")
        files[name] = path
    return files


@pytest.fixture(scope="session")
def actionlint_snippet_findings(actionlint, snippet_files) -> dict[str, list[str]]:  # noqa: F811
    """One actionlint process over every snippet workflow: findings per snippet."""
    by_path = {str(path): name for name, path in snippet_files.items()}
    findings: dict[str, list[str]] = defaultdict(list)
    for m in run_actionlint(actionlint, list(by_path)):
        if isinstance(m, str):
            findings["?"].append(m)
        else:
            findings[by_path.get(m.group(1), "?")].append(m.group(0))
    assert not findings.get("?"), "unparsed actionlint output:\n" + "\n".join(findings["?"])
    return findings


@pytest.mark.parametrize("name,kind,workflow", params("actionlint", WORKFLOW_SNIPPETS))
def test_snippet_actionlint(name, kind, workflow, actionlint_snippet_findings):
    assert not actionlint_snippet_findings.get(name), (
        f"actionlint findings in {name} ({kind}), linted as:\n{workflow}\n" + "\n".join(actionlint_snippet_findings[name]))


@pytest.mark.parametrize("name,kind,workflow", params("zizmor", WORKFLOW_SNIPPETS))
def test_snippet_zizmor(name, kind, workflow, snippet_files, installer):  # noqa: F811
    proc = subprocess.run([tool("zizmor", installer), "--offline", "--no-progress", "--format", "plain",
                           "--config", str(ZIZMOR_CONFIG), str(snippet_files[name])],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, f"zizmor findings in {name} ({kind}), linted as:\n{workflow}\n{proc.stdout}{proc.stderr}"


def test_wrapping_keeps_findings(actionlint, installer, tmp_path):  # noqa: F811
    """The skeleton hides nothing: a bad steps snippet, wrapped, is still reported by both linters."""
    text = ("- uses: actions/checkout@v4\n"
            "- run: echo \"${{ github.event.pull_request.title }}\"\n")
    path = tmp_path / "bad.yml"
    path.write_text(as_workflow(classify("x:1", yaml.safe_load(text)), yaml.safe_load(text), text), encoding="utf-8")
    lint = subprocess.run([actionlint, str(path)], capture_output=True, text=True, timeout=120)
    assert "potentially untrusted" in lint.stdout, lint.stdout + lint.stderr
    ziz = subprocess.run([tool("zizmor", installer), "--offline", "--no-progress", "--format", "plain",
                          "--config", str(ZIZMOR_CONFIG), str(path)], capture_output=True, text=True, timeout=120)
    assert "unpinned-uses" in ziz.stdout and "artipacked" in ziz.stdout, ziz.stdout + ziz.stderr
