"""Where the repository's shared files (templates, Dockerfile.tmpl) are found at run time."""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    """The mlops-actions checkout: $MLOPS_ACTIONS_ROOT, or the tree this package sits in."""
    env = os.environ.get("MLOPS_ACTIONS_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def resource(relative: str) -> Path:
    return root() / relative
