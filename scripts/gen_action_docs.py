#!/usr/bin/env python3
"""(Re)write the generated part of each action's README from its action.yml.

For ``actions/<stage>/action.yml`` (README: ``actions/<stage>/README.md``) and the root
``action.yml`` (README: ``README.md``), the text between ``<!-- BEGIN GENERATED -->`` and
``<!-- END GENERATED -->`` is replaced by an Inputs table (Name | Type | Default | Description)
and an Outputs table (Name | Description). Everything outside the markers is hand-written.

A stage README must exist and hold the markers. The root README is optional here: it is
updated only when it exists and holds the markers.

    python scripts/gen_action_docs.py            # rewrite stale READMEs
    python scripts/gen_action_docs.py --check    # exit 1 listing stale READMEs, write nothing
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

BEGIN = "<!-- BEGIN GENERATED -->"
END = "<!-- END GENERATED -->"
FOOTER = "_Generated from action.yml, do not edit; run `python scripts/gen_action_docs.py`._"
ROOT = Path(__file__).resolve().parent.parent
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_BOOL_WORDS = re.compile(r"\btrue or false\b", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    action: Path
    readme: Path
    optional: bool  # the root README: skipped when missing or without markers


def targets(root: Path = ROOT) -> list[Target]:
    found = [Target(p, p.parent / "README.md", False) for p in sorted((root / "actions").glob("*/action.yml"))]
    if (root / "action.yml").is_file():
        found.append(Target(root / "action.yml", root / "README.md", True))
    return found


def load_action(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a mapping")
    return data


def input_type(spec: dict) -> str:
    default = "" if spec.get("default") is None else str(spec.get("default")).strip()
    if default.lower() in ("true", "false") or _BOOL_WORDS.search(str(spec.get("description") or "")):
        return "boolean"
    if _NUMBER.match(default):
        return "number"
    return "string"


def _cell(text: object) -> str:
    """One Markdown table cell: one line, pipes escaped, angle brackets shown literally."""
    value = " ".join(str(text or "").split())
    return value.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return f"`{text}`".replace("|", "\\|")


def render(action: dict) -> str:
    lines = ["## Inputs", "", "| Name | Type | Default | Description |", "|---|---|---|---|"]
    for name, spec in (action.get("inputs") or {}).items():
        spec = spec or {}
        required = str(spec.get("required", False)).lower() == "true"
        label = _code(name) + (" **(required)**" if required else "")
        if "default" in spec and spec["default"] is not None:
            default = _code(str(spec["default"])) if str(spec["default"]) != "" else "`''`"
        else:
            default = "—"
        lines.append(f"| {label} | {input_type(spec)} | {default} | {_cell(spec.get('description'))} |")
    lines += ["", "## Outputs", "", "| Name | Description |", "|---|---|"]
    for name, spec in (action.get("outputs") or {}).items():
        lines.append(f"| {_code(name)} | {_cell((spec or {}).get('description'))} |")
    lines += ["", FOOTER]
    return "\n".join(lines)


def splice(text: str, block: str) -> str | None:
    """The README text with the generated region replaced; None when the markers are missing."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[: start + len(BEGIN)] + "\n" + block + "\n" + text[end:]


def process(target: Target, check: bool) -> tuple[str, str]:
    """(status, message); status is one of ok, updated, stale, skipped, error."""
    readme = target.readme
    if not readme.is_file():
        if target.optional:
            return "skipped", f"{readme}: missing (optional)"
        return "error", f"{readme}: missing; create it with {BEGIN} and {END} markers"
    current = readme.read_text(encoding="utf-8")
    new = splice(current, render(load_action(target.action)))
    if new is None:
        if target.optional:
            return "skipped", f"{readme}: no {BEGIN} / {END} markers (optional)"
        return "error", f"{readme}: no {BEGIN} / {END} markers"
    if new == current:
        return "ok", str(readme)
    if check:
        return "stale", f"{readme}: generated tables differ from {target.action.name}"
    readme.write_text(new, encoding="utf-8")
    return "updated", str(readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 listing stale READMEs")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    bad = []
    for target in targets(args.root.resolve()):
        status, message = process(target, args.check)
        if status in ("stale", "error"):
            bad.append(message)
        elif status == "updated":
            print(f"updated {message}")
        elif status == "skipped":
            print(f"note: {message}", file=sys.stderr)
    if bad:
        print("stale action docs:" if args.check else "action docs not generated:", file=sys.stderr)
        for message in bad:
            print(f"  {message}", file=sys.stderr)
        if args.check:
            print("fix: python scripts/gen_action_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
