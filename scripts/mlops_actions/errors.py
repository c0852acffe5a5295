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


class StageError(MlopsError):
    """The stage could not finish for a reason outside the inputs (a service, a smoke test)."""


class TransientError(MlopsError):
    """A failure worth retrying (connection refused, 5xx, 429); carries an optional delay hint."""

    def __init__(self, problem: str, fix: str | None = None, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(problem, fix)
