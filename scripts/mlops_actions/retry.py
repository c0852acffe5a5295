"""Bounded retry with exponential backoff and jitter, honouring Retry-After hints."""

from __future__ import annotations

import os
import random
import sys
import time
from typing import Callable, TypeVar

from .errors import TransientError

T = TypeVar("T")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


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
    attempts = attempts or int(_env_float("MLOPS_RETRY_ATTEMPTS", 4))
    base = base_delay if base_delay is not None else _env_float("MLOPS_RETRY_BASE_DELAY", 1.0)
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


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:200]
