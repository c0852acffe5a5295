#!/usr/bin/env python3
"""Print the requirements of mlops-actions (pyproject.toml, plus the extras named on the command
line) that the running interpreter does not satisfy, one per line; print nothing when all are met.

setup-action.sh runs it with the action's venv interpreter (created with --system-site-packages),
so a runner whose Python already has the libraries skips pip entirely.

    python scripts/deps-missing.py pyproject.toml [EXTRA ...]
"""

from __future__ import annotations

import importlib.metadata as md
import sys

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]


def missing(pyproject: str, extras: list[str]) -> list[str]:
    with open(pyproject, "rb") as fh:
        project = tomllib.load(fh)["project"]
    wanted = list(project.get("dependencies") or [])
    for extra in extras:
        options = project.get("optional-dependencies") or {}
        if extra not in options:
            raise SystemExit(f"unknown extra '{extra}' (known: {', '.join(sorted(options))})")
        wanted += options[extra]
    out = []
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            out.append(text)
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            out.append(text)
    return out


if __name__ == "__main__":
    print("\n".join(missing(sys.argv[1], [e for arg in sys.argv[2:] for e in arg.split(",") if e])))
