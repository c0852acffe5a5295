"""The package's layers, read from the code's own imports (every ``import``, also inside functions):

    entry points   cli.py, pipeline.py (the root action: the chain of stages), demo.py, __main__.py, bootstrap.py
         ↓
    stages/        one module per action (actions/open-pr → stages/open_pr.py); imports core only
         ↓
    core/          what several stages share; imports core only
         ↓
    serving/       the model server baked into the image; imports nothing of the package

A stage never imports another stage and core never imports a stage, so a change to one stage
stays in that stage's module. Each failure lists the offending imports as ``file:line imports module``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "mlops_actions"
ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "scripts" / PACKAGE
ENTRY = {"cli", "pipeline", "demo", "__main__", "bootstrap"}


def module_name(path: Path, source: Path) -> str:
    parts = list(path.relative_to(source.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``path`` that names the package; ``from X
    import y`` yields ``X.y`` too, so ``from . import gate`` inside stages/ counts as stages.gate."""
    name = module_name(path, source)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return [(line, mod) for line, mod in found if mod == PACKAGE or mod.startswith(PACKAGE + ".")]


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__version__":
        return "package"
    if parts[1] in ("core", "stages", "serving"):
        return parts[1]
    return "entry" if parts[1] in ENTRY else "unknown"


def stage_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:3])


def violations(source: Path) -> list[str]:
    """Every import that crosses a layer the wrong way, as ``file:line imports module (rule)``."""
    bad: list[str] = []
    for path in sorted(source.rglob("*.py")):
        here = module_name(path, source)
        mine = layer(here)
        for line, target in imports(path, source):
            theirs = layer(target)
            rule = ""
            if mine == "unknown":
                rule = "a module outside core/, stages/, serving/ and the entry points"
            elif theirs == "unknown" and target.count(".") == 1:
                rule = "an unknown module"
            elif mine == "stages" and theirs == "stages" and target != f"{PACKAGE}.stages" and stage_of(target) != stage_of(here):
                rule = "a stage imports another stage"
            elif mine == "stages" and theirs == "entry":
                rule = "a stage imports an entry point"
            elif mine == "core" and theirs in ("stages", "entry"):
                rule = f"core imports {'a stage' if theirs == 'stages' else 'an entry point'}"
            elif mine == "serving" and theirs != "serving":
                rule = "the model server imports the package"
            elif mine == "package" and target != PACKAGE:
                rule = "the package's __init__ imports a module"
            if rule:
                bad.append(f"{path.relative_to(source.parent)}:{line} imports {target} ({rule})")
    return bad


def test_stages_import_only_core_and_core_imports_no_stage():
    bad = violations(SOURCE)
    assert not bad, "imports against the layers (stages import core only; core imports core only):\n" + "\n".join(bad)


def test_every_action_has_its_stage_module():
    actions = sorted(p.parent.name for p in (ROOT / "actions").glob("*/action.yml"))
    assert actions
    missing = [a for a in actions if not (SOURCE / "stages" / f"{a.replace('-', '_')}.py").is_file()]
    assert not missing, f"actions without scripts/{PACKAGE}/stages/<name>.py: {missing}"


def test_the_check_finds_and_lists_crossing_imports(tmp_path):
    pkg = tmp_path / PACKAGE
    for folder in ("core", "stages", "serving"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("from .stages import gate\n")
    (pkg / "core" / "gha.py").write_text("def f():\n    from ..stages.gate import g\n")
    (pkg / "stages" / "gate.py").write_text("from ..core import gha\nfrom . import open_pr\n")
    (pkg / "stages" / "open_pr.py").write_text("import mlops_actions.stages.gate\nfrom mlops_actions.pipeline import x\n")
    (pkg / "serving" / "server.py").write_text("from ..core import gha\n")
    assert violations(pkg) == [
        f"{PACKAGE}/core/gha.py:2 imports {PACKAGE}.stages.gate (core imports a stage)",
        f"{PACKAGE}/core/gha.py:2 imports {PACKAGE}.stages.gate.g (core imports a stage)",
        f"{PACKAGE}/serving/server.py:1 imports {PACKAGE}.core (the model server imports the package)",
        f"{PACKAGE}/serving/server.py:1 imports {PACKAGE}.core.gha (the model server imports the package)",
        f"{PACKAGE}/stages/gate.py:2 imports {PACKAGE}.stages.open_pr (a stage imports another stage)",
        f"{PACKAGE}/stages/open_pr.py:1 imports {PACKAGE}.stages.gate (a stage imports another stage)",
        f"{PACKAGE}/stages/open_pr.py:2 imports {PACKAGE}.pipeline (a stage imports an entry point)",
        f"{PACKAGE}/stages/open_pr.py:2 imports {PACKAGE}.pipeline.x (a stage imports an entry point)",
    ]
