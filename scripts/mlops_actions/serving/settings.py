"""The server's settings from the environment: each bad value is one line naming the variable and
the fix (the caller exits 2 with it). Standard library only: the image imports it before gunicorn."""

from __future__ import annotations

import os
from collections.abc import Mapping


class SettingError(ValueError):
    pass


def _text(name: str, env: Mapping[str, str] | None) -> str:
    return ((os.environ if env is None else env).get(name) or "").strip()


def whole(name: str, env: Mapping[str, str] | None = None, *, default: int, low: int = 1) -> int:
    """An integer >= ``low`` (``default`` when unset or empty)."""
    text = _text(name, env)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a whole number; fix: set {name} to an integer >= {low}") from None
    if value < low:
        raise SettingError(f"{name}={value} is below {low}; fix: set {name} to an integer >= {low}")
    return value


def flag(name: str, env: Mapping[str, str] | None = None, *, default: bool) -> bool:
    """``1`` or ``0`` (``default`` when unset or empty)."""
    text = _text(name, env)
    if text not in ("", "0", "1"):
        raise SettingError(f"{name}={text!r} is not 0 or 1; fix: set {name} to 1 (on) or 0 (off)")
    return default if not text else text == "1"


def share(name: str, env: Mapping[str, str] | None = None, *, default: float = 0.0) -> float:
    """A number from 0 to 1 (a ratio of requests, a sample share)."""
    text = _text(name, env)
    try:
        value = float(text) if text else default
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise SettingError(f"{name}={text!r} is not a ratio; fix: set {name} to a number from 0 to 1")
    return value


def positive(name: str, env: Mapping[str, str] | None = None, *, default: float) -> float:
    """A number above 0 (a threshold)."""
    text = _text(name, env)
    try:
        value = float(text) if text else default
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise SettingError(f"{name}={text!r} is not a number above 0; fix: set {name} to e.g. {default}")
    return value
