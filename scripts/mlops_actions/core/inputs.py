"""Input types several stages parse the same way: lists and relative paths."""

from __future__ import annotations

import re

from .errors import InputError


def split_list(text: str | None) -> list[str]:
    """Comma- or newline-separated values, trimmed, empty ones dropped, order kept, no duplicates."""
    seen: list[str] = []
    for part in re.split(r"[,\n]", text or ""):
        part = part.strip()
        if part and part not in seen:
            seen.append(part)
    return seen


def safe_relative(value: str, input_name: str) -> str:
    """A relative POSIX path with no '..', no absolute root and no control characters."""
    text = (value or "").strip().strip("/")
    if value and (value.startswith("/") or "\\" in value):
        raise InputError(
            input_name, f"'{value}' must be a relative path", "give a path relative to the root, e.g. models/sentiment"
        )
    if any(ord(c) < 32 for c in text):
        raise InputError(input_name, "contains control characters", "give a plain relative path")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InputError(input_name, f"'{value}' climbs out with '..'", "give a path inside the root, without '..'")
    return "/".join(parts)
