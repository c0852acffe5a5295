"""Errors a user can act on: each renders as one line naming the input and the fix."""

from __future__ import annotations


class MlopsError(Exception):
    """A failure with a one-line message and a fix. Exit code 1 unless said otherwise."""

    exit_code = 1

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        text = self.problem.rstrip(".")
        if self.fix:
            text += f"; fix: {self.fix.rstrip('.')}"
        return " ".join(text.split())


class InputError(MlopsError):
    """A bad value for a named input (exit code 2)."""

    exit_code = 2

    def __init__(self, input_name: str, problem: str, fix: str | None = None):
        self.input_name = input_name
        super().__init__(f"input '{input_name}': {problem}", fix)


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***`` (for messages that quote a
    tool's output: git's stderr, the Docker engine's API errors)."""
    return text.replace(secret, "***") if secret else text


class StageError(MlopsError):
    """The stage could not finish for a reason outside the inputs (a service, a smoke test)."""


class TransientError(MlopsError):
    """A failure worth retrying (connection refused, 5xx, 429); carries an optional delay hint."""

    def __init__(self, problem: str, fix: str | None = None, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(problem, fix)


def positive_number(
    value: object,
    input_name: str,
    *,
    integer: bool = False,
    maximum: float | None = None,
    unit: str = "",
    example: str = "",
    zero_ok: bool = False,
) -> float:
    """The one rule for numeric inputs (timeouts, ports, retry settings): a finite number above 0
    (a whole number when ``integer``; 0 too when ``zero_ok``), at most ``maximum``. ``nan``, ``inf``, 0, negatives, text
    and booleans are refused with one line naming the input. Returns a float (an int when
    ``integer``)."""
    import math

    unit_text = f" {unit}" if unit else ""
    hint = example or ("a whole number" if integer else "a number")
    limit = f" up to {maximum:g}{unit_text}" if maximum is not None else ""
    fix = f"write {hint} {'from 0' if zero_ok else 'above 0'}{limit}"
    if isinstance(value, bool):
        raise InputError(input_name, f"'{value}' is not a number", fix)
    text = str(value).strip()
    try:
        number: float = float(text)
    except (TypeError, ValueError):
        raise InputError(input_name, f"'{value}' is not a number", fix) from None
    if not math.isfinite(number):
        raise InputError(input_name, f"'{value}' is not a finite number", fix)
    if integer:
        if number != int(number) or not text.lstrip("+-").isdigit():
            raise InputError(input_name, f"'{value}' is not a whole number", fix)
        number = int(number)
    if number < 0 or (number == 0 and not zero_ok):
        raise InputError(input_name, f"'{value}' is {'negative' if number < 0 else 'not above 0'}", fix)
    if maximum is not None and number > maximum:
        raise InputError(input_name, f"'{value}' is more than {maximum:g}{unit_text}", fix)
    return number
