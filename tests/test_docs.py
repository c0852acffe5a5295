"""The action metadata and its docs: generated READMEs are current, every input is described, and
every composite step follows the repository's rules (inputs reach a script only through env:,
strict bash, outputs wired to what the mlops CLI writes to $GITHUB_OUTPUT)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GEN = ROOT / "scripts" / "gen_action_docs.py"
ACTIONS = sorted(ROOT.glob("actions/*/action.yml")) + [ROOT / "action.yml"]
IDS = [str(p.relative_to(ROOT)) for p in ACTIONS]
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)
INPUT_REF = re.compile(r"\binputs\.([A-Za-z0-9_-]+)")
SHELL_VAR = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")
# Which source code writes each CLI command's step outputs: (module, function) pairs whose dict
# literals (string keys) are the names passed to gha.set_outputs.
EMITTERS = {
    "train": [("stages/train.py", "outputs")],
    "fetch-artifacts": [("stages/fetch_artifacts.py", "outputs")],
    "open-pr": [("stages/open_pr.py", "outputs")],
    "render-dockerfile": [("stages/render_dockerfile.py", "outputs")],
    "push-image": [("stages/push_image.py", "outputs")],
    "pipeline": [("pipeline.py", "run_pipeline"), ("stages/train.py", "outputs")],
    "validate-data": [("stages/validate_data.py", "outputs")],
    "drift": [("stages/drift.py", "outputs")],
    "summary": [("stages/summary.py", "outputs")],
    "gate": [("stages/gate.py", "outputs")],
    "promote-image": [("stages/promote_image.py", "outputs")],
    "health-check": [("stages/health_check.py", "outputs")],
    "dvc": [("stages/dvc.py", "outputs")],
    "scan": [("stages/scan.py", "outputs")],
    "sweep": [("stages/sweep.py", "outputs")],
}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def steps(action: dict) -> list[dict]:
    return (action.get("runs") or {}).get("steps") or []


def run_steps(action: dict) -> list[dict]:
    return [s for s in steps(action) if "run" in s]


def emitted_keys(module: str, function: str) -> set[str]:
    tree = ast.parse((ROOT / "scripts" / "mlops_actions" / module).read_text(encoding="utf-8"))
    keys: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Dict):
                    keys |= {k.value for k in inner.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                elif (isinstance(inner, ast.Subscript) and isinstance(inner.ctx, ast.Store)
                      and isinstance(inner.slice, ast.Constant) and isinstance(inner.slice.value, str)):
                    keys.add(inner.slice.value)
    assert keys, f"no output names found in {function}() of {module}"
    return keys


def cli_invocation(script: str) -> tuple[str, list[str]]:
    """The mlops subcommand a step runs and the --flags it passes."""
    m = re.search(r'"\$mlops"\s+([a-z][a-z-]*)', script)
    assert m, 'the step does not run "$mlops" <command>'
    return m.group(1), re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", script[m.end():])


def cli_command(name: str):
    try:
        from mlops_actions.cli import main
    except ImportError:
        sys.path.insert(0, str(ROOT / "scripts"))
        from mlops_actions.cli import main
    command = main.commands.get(name)
    assert command is not None, f"mlops has no command '{name}'"
    return command


def test_generated_docs_are_current():
    proc = subprocess.run([sys.executable, str(GEN), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_mode_reports_stale_readme(tmp_path):
    """--check exits 1 naming the stale file and leaves it alone; a normal run fixes it."""
    stage = tmp_path / "actions" / "demo"
    stage.mkdir(parents=True)
    (stage / "action.yml").write_text(yaml.safe_dump({
        "name": "demo", "description": "d",
        "inputs": {
            "flag": {"description": "Switch: true or false.", "default": "false"},
            "count": {"description": "How many.", "default": "3"},
            "name": {"description": "A <name> | pipe.", "required": True},
        },
        "outputs": {"result": {"description": "The result.", "value": "${{ steps.run.outputs.result }}"}},
        "runs": {"using": "composite", "steps": []},
    }))
    readme = stage / "README.md"
    readme.write_text("# demo\n\nHand-written.\n\n<!-- BEGIN GENERATED -->\nold\n<!-- END GENERATED -->\n\nTail.\n")
    before = readme.read_text()
    proc = subprocess.run([sys.executable, str(GEN), "--check", "--root", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1 and "actions/demo/README.md" in proc.stderr
    assert readme.read_text() == before
    proc = subprocess.run([sys.executable, str(GEN), "--root", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = readme.read_text()
    assert text.startswith("# demo\n\nHand-written.\n") and text.endswith("<!-- END GENERATED -->\n\nTail.\n")
    assert "| `flag` | boolean | `false` | Switch: true or false. |" in text
    assert "| `count` | number | `3` | How many. |" in text
    assert "| `name` **(required)** | string | — | A &lt;name&gt; \\| pipe. |" in text
    assert "| `result` | The result. |" in text
    assert "run `python scripts/gen_action_docs.py`" in text
    assert subprocess.run([sys.executable, str(GEN), "--check", "--root", str(tmp_path)]).returncode == 0


def test_stage_readme_without_markers_fails_check(tmp_path):
    stage = tmp_path / "actions" / "demo"
    stage.mkdir(parents=True)
    (stage / "action.yml").write_text("name: demo\ndescription: d\nruns:\n  using: composite\n  steps: []\n")
    (stage / "README.md").write_text("# demo\n")
    proc = subprocess.run([sys.executable, str(GEN), "--check", "--root", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1 and "markers" in proc.stderr


@pytest.mark.parametrize("path", ACTIONS, ids=IDS)
def test_metadata_is_described(path):
    action = load(path)
    assert action.get("name") and action.get("description")
    for kind in ("inputs", "outputs"):
        for name, spec in (action.get(kind) or {}).items():
            assert KEBAB.match(name), f"{kind[:-1]} '{name}' is not kebab-case"
            assert str((spec or {}).get("description") or "").strip(), f"{kind[:-1]} '{name}' has no description"


@pytest.mark.parametrize("path", ACTIONS, ids=IDS)
def test_run_steps_are_strict_and_expression_free(path):
    action = load(path)
    assert action["runs"]["using"] == "composite"
    assert run_steps(action), "no run: step"
    for step in run_steps(action):
        script = step["run"]
        assert "${{" not in script, f"step {step.get('id')}: ${{{{ }}}} inside run: (pass it through env:)"
        assert script.lstrip().startswith("set -euo pipefail"), f"step {step.get('id')}: run: must start with set -euo pipefail"
        assert step.get("shell") == "bash", f"step {step.get('id')}: shell must be bash"


@pytest.mark.parametrize("path", ACTIONS, ids=IDS)
def test_inputs_reach_scripts_only_through_env(path):
    action = load(path)
    declared = set(action.get("inputs") or {})
    used: set[str] = set()
    for step in steps(action):
        for key, value in step.items():
            for expr in EXPR.findall(yaml.safe_dump(value) if not isinstance(value, str) else value):
                refs = set(INPUT_REF.findall(expr))
                assert not refs or key in ("env", "with", "if"), f"step {step.get('id')}: inputs used in {key}:"
                assert refs <= declared, f"step {step.get('id')}: undeclared inputs {sorted(refs - declared)}"
                used |= refs
        if "run" in step:
            env = step.get("env") or {}
            script = step["run"]
            referenced = {v for v in SHELL_VAR.findall(script) if v.startswith("INPUT_")}
            assert referenced <= set(env), f"step {step.get('id')}: {sorted(referenced - set(env))} used but not in env:"
            unused = {k for k in env if k.startswith("INPUT_")} - referenced
            assert not unused, f"step {step.get('id')}: env {sorted(unused)} never used by the script"
    assert declared - used == set(), f"inputs that reach no step: {sorted(declared - used)}"


@pytest.mark.parametrize("path", ACTIONS, ids=IDS)
def test_scripts_call_real_cli_flags(path):
    for step in run_steps(load(path)):
        command, flags = cli_invocation(step["run"])
        known = {opt for param in cli_command(command).params for opt in getattr(param, "opts", [])}
        assert set(flags) <= known, f"mlops {command} has no {sorted(set(flags) - known)}"


@pytest.mark.parametrize("path", ACTIONS, ids=IDS)
def test_outputs_come_from_the_cli(path):
    action = load(path)
    ids = {s.get("id"): s for s in steps(action) if s.get("id")}
    for name, spec in (action.get("outputs") or {}).items():
        m = re.fullmatch(r"\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)\s*\}\}", str(spec.get("value", "")).strip())
        assert m, f"output '{name}': value must be ${{{{ steps.<id>.outputs.{name} }}}}"
        step_id, key = m.groups()
        assert step_id == "run" and key == name, f"output '{name}': value must be ${{{{ steps.run.outputs.{name} }}}}"
        assert step_id in ids, f"output '{name}': no step with id '{step_id}'"
        command, _ = cli_invocation(ids[step_id]["run"])
        emitted = set().union(*(emitted_keys(module, fn) for module, fn in EMITTERS[command]))
        assert key in emitted, f"output '{name}': mlops {command} writes no '{key}' (it writes {sorted(emitted)})"


@pytest.mark.parametrize("path", ACTIONS, ids=IDS)
def test_no_expression_in_metadata_text(path):
    """The runner refuses an action whose input or output description holds an expression
    ("expressions are not allowed here"): act failed a whole pipeline on one such description."""
    action = load(path)
    for kind in ("inputs", "outputs"):
        for name, spec in (action.get(kind) or {}).items():
            assert "${{" not in str(spec.get("description", "")), f"{kind[:-1]} '{name}': expression in its description"


def _screenshots():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_screenshots", ROOT / "scripts" / "docs_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_pr_body_and_summary_in_docs_has_a_screenshot_of_its_current_text():
    """docs/screenshots/<name>.png is the rendered first screen of docs/<name>.md (headless Chromium,
    scripts/docs_screenshots.py): each PNG carries the sha256 of the Markdown it shows."""
    shots = _screenshots()
    sources = shots.sources()
    assert {p.name for p in sources} >= {"sentiment-pr-body.md", "rice-pr-body.md", "sentiment-summary.md"}, sources
    assert shots.stale() == [], "run python scripts/docs_screenshots.py (apt-get install -y chromium)"
    for md in sources:
        png = (ROOT / "docs" / "screenshots" / f"{md.stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and shots.source_of(png) == shots.digest(md)
    # the check can fail: a screenshot carrying another text's digest is not of this one
    bare = png[:8] + png[8:].split(b"tEXt" + shots.KEY)[0][:-4] + png[png.rindex(b"IEND") - 4:]
    assert shots.source_of(bare) == "" and shots.source_of(shots.with_source(bare, "0" * 64)) == "0" * 64


def test_docs_link_their_screenshots():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for md in _screenshots().sources():
        assert f"docs/screenshots/{md.stem}.png" in readme, md.name
