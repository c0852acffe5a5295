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


def read_text_input(path: Path, input_name: str, what: str, max_bytes: int = 1_000_000) -> str:
    """A small text file named by an input (a spec, a template, a Markdown section): refused with
    one line when it is missing, larger than ``max_bytes``, binary (a NUL byte) or not UTF-8,
    before anything reads it whole."""
    from .errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(input_name, f"'{path}' not found", f"give the path of {what}")
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(input_name, f"'{path}' is {size / 1e6:.1f} MB, more than {max_bytes / 1e6:g} MB for {what}",
                         f"give {what}, not a data or binary file")
    data = path.read_bytes()
    if b"\0" in data:
        raise InputError(input_name, f"'{path}' is a binary file", f"give {what} (UTF-8 text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(input_name, f"'{path}' is not UTF-8 text (byte {exc.start})", f"save {what} as UTF-8") from None
