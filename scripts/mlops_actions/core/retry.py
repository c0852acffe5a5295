"""Bounded retry with exponential backoff and jitter, honouring Retry-After hints."""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import InputError, StageError, TransientError, positive_number

T = TypeVar("T")

MAX_ATTEMPTS = 20
MAX_BASE_DELAY = 60.0


def settings() -> tuple[int, float]:
    """(attempts, base delay) from ``MLOPS_RETRY_ATTEMPTS`` (a whole number 1-20, default 4) and
    ``MLOPS_RETRY_BASE_DELAY`` (seconds 0-60, default 1); anything else is an InputError naming the
    variable, never a silent default (0 attempts would otherwise mean "never try")."""
    attempts = _env_number(
        "MLOPS_RETRY_ATTEMPTS", 4, integer=True, maximum=MAX_ATTEMPTS, example="a whole number of tries (1 = no retry)"
    )
    delay = _env_number(
        "MLOPS_RETRY_BASE_DELAY",
        1.0,
        maximum=MAX_BASE_DELAY,
        unit="s",
        zero_ok=True,
        example="seconds before the first retry",
    )
    return int(attempts), float(delay)


def _env_number(name: str, default: float, **rule: Any) -> float:
    raw = os.environ.get(name, "").strip()
    return positive_number(raw, name, **rule) if raw else default


def retry(
    fn: Callable[[], T],
    *,
    what: str,
    attempts: int | None = None,
    base_delay: float | None = None,
    max_delay: float = 30.0,
    retry_on: tuple[type[BaseException], ...] = (TransientError,),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds or ``attempts`` are used; re-raise the last error.

    ``MLOPS_RETRY_ATTEMPTS`` and ``MLOPS_RETRY_BASE_DELAY`` override the defaults (4 tries,
    1 s doubling), so a workflow can tune patience without code changes.
    """
    env_attempts, env_delay = settings()
    attempts = attempts or env_attempts
    base = base_delay if base_delay is not None else env_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except retry_on as exc:
            if attempt == attempts:
                raise
            hint = getattr(exc, "retry_after", None)
            delay = min(max_delay, hint if hint is not None else base * 2 ** (attempt - 1))
            delay += random.uniform(0, delay * 0.1) if hint is None else 0
            sys.stderr.write(
                f"retry: {what} failed ({_short(exc)}); attempt {attempt + 1}/{attempts} in {delay:.1f}s\n"
            )
            sleep(delay)
    raise AssertionError("unreachable")


def retry_or_raise(
    fn: Callable[[], T],
    *,
    what: str,
    fix: str,
    message: str = "{problem} after retries",
    input_name: str | None = None,
    **kwargs,
) -> T:
    """``retry(fn)``; when every attempt failed transiently, one StageError (an InputError naming
    ``input_name`` when given) whose problem is ``message`` with ``{problem}`` replaced by the last
    transient problem."""
    try:
        return retry(fn, what=what, **kwargs)
    except TransientError as exc:
        text = message.replace("{problem}", exc.problem)
        if input_name:
            raise InputError(input_name, text, fix) from exc
        raise StageError(text, fix) from exc


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:200]
