"""The Python linters over the package, configured in pyproject.toml, as tests:

- ``ruff check``: pycodestyle (120 columns), pyflakes, isort, bugbear, pyupgrade, comprehensions,
  simplify, blind except, unused noqa; no findings;
- ``ruff format --check``: the package is formatted as ``ruff format`` writes it;
- ``mypy``: no errors (``check_untyped_defs``; only untyped third-party libraries are skipped).

The tools come with the test extras (``pip install -c constraints.txt -e .[test]``). A missing tool
fails its test, unless MLOPS_ALLOW_MISSING_LINTERS=1, which skips it instead (as in test_lint.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "scripts/mlops_actions"


def tool(name: str) -> str:
    for candidate in (Path(sys.executable).parent / name, shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    message = f"{name} is not installed (pip install -c constraints.txt -e '.[test]')"
    if os.environ.get("MLOPS_ALLOW_MISSING_LINTERS") == "1":
        pytest.skip(message)
    pytest.fail(message + "; set MLOPS_ALLOW_MISSING_LINTERS=1 to skip instead", pytrace=False)


def run(*cmd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1", MYPY_FORCE_COLOR="0")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def test_ruff_check_finds_nothing():
    proc = run(tool("ruff"), "check", "--no-cache", "--output-format", "concise", PACKAGE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_leaves_the_package_as_it_is():
    proc = run(tool("ruff"), "format", "--no-cache", "--check", "--diff", PACKAGE)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr


def test_mypy_finds_no_error():
    proc = run(tool("mypy"), "--no-incremental", "--cache-dir", os.devnull)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_configuration_keeps_the_rule_families_and_no_blanket_ignore():
    """A finding is fixed, or carries ``# noqa: CODE`` / ``# type: ignore[code]`` where it stands."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assert config["ruff"]["line-length"] == 120
    lint = config["ruff"]["lint"]
    assert {"E", "F", "W", "I", "B", "UP"} <= set(lint["select"]) and not lint.get("ignore")
    assert not lint.get("per-file-ignores")
    mypy = config["mypy"]
    assert "ignore_errors" not in mypy and mypy["check_untyped_defs"]
    for override in mypy.get("overrides", []):
        assert set(override) <= {"module", "ignore_missing_imports"}, override
