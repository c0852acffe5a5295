#!/usr/bin/env python3
"""Keep every self-reference (``mlops-actions/mlops-actions/...@REF``) on one release ref.

Reusable workflows and docs reference this repository's actions by full path and ref (a ``./``
path would resolve in the caller's repository), so a release must move them all together.

    python scripts/check_refs.py            # check: every reference uses the expected ref (v1)
    python scripts/check_refs.py --ref v2   # check against another ref
    python scripts/check_refs.py --set v2   # rewrite every reference to v2 (release branches)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = "v1"
REF_RE = re.compile(r"(mlops-actions/mlops-actions(?:/[A-Za-z0-9_./-]+)?)@([A-Za-z0-9_.\-/]+)")
GLOBS = ("action.yml", "actions/*/action.yml", "actions/*/README.md", ".github/workflows/*.yml", "templates/**/*.j2",
         "README.md", "docs/**/*.md", "model_project/*/README.md")


def files(root: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in GLOBS:
        found.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(found)


def check(root: Path, ref: str) -> list[str]:
    problems = []
    for path in files(root):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for m in REF_RE.finditer(line):
                if m.group(2) != ref:
                    problems.append(f"{path.relative_to(root)}:{number}: {m.group(0)} (expected @{ref})")
    return problems


def rewrite(root: Path, ref: str) -> list[Path]:
    changed = []
    for path in files(root):
        text = path.read_text(encoding="utf-8")
        new = REF_RE.sub(lambda m: f"{m.group(1)}@{ref}", text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default=EXPECTED)
    ap.add_argument("--set", dest="set_ref")
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args(argv)
    if args.set_ref:
        for path in rewrite(args.root, args.set_ref):
            print(f"rewrote {path.relative_to(args.root)}")
        return 0
    problems = check(args.root, args.ref)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
