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


PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def parse_params(text: str | None, input_name: str = "params") -> dict[str, str]:
    """``key=value`` lines (blank lines and ``#`` comments skipped) into a dict, strictly."""
    params: dict[str, str] = {}
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise InputError(input_name, f"line {number} '{_clip(line)}' has no '='", "write one key=value per line")
        key, value = (part.strip() for part in line.split("=", 1))
        if not key:
            raise InputError(
                input_name, f"line {number} '{_clip(line)}' has an empty key", "write one key=value per line"
            )
        if not PARAM_NAME_RE.match(key):
            raise InputError(
                input_name,
                f"line {number}: '{_clip(key)}' is not a valid parameter name",
                "use letters, digits, _ . - and start with a letter",
            )
        if value == "":
            raise InputError(
                input_name,
                f"line {number}: '{key}' has an empty value",
                "give a value or remove the line to use the default",
            )
        if key in params:
            raise InputError(input_name, f"line {number}: '{key}' is given twice", "keep one line per parameter")
        params[key] = value
    return params


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
