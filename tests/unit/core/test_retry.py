"""retry_or_raise: transient failures are retried, then end as one StageError (or an InputError naming the input)."""

import pytest

from mlops_actions.core.errors import InputError, StageError, TransientError
from mlops_actions.core.retry import retry_or_raise


def flaky(failures: int, calls: list[int]):
    def fn():
        calls.append(1)
        if len(calls) <= failures:
            raise TransientError("HTTP 503")
        return "ok"
    return fn


def test_succeeds_after_transient_failures():
    calls: list[int] = []
    assert retry_or_raise(flaky(2, calls), what="x", fix="f", attempts=3, sleep=lambda s: None) == "ok"
    assert len(calls) == 3


def test_gives_up_with_one_stage_error():
    with pytest.raises(StageError) as info:
        retry_or_raise(flaky(9, []), what="x", fix="re-run", attempts=2, sleep=lambda s: None,
                       message="registry r: {problem} after retries")
    assert info.value.line() == "registry r: HTTP 503 after retries; fix: re-run"


def test_gives_up_with_an_input_error_when_an_input_is_named():
    with pytest.raises(InputError) as info:
        retry_or_raise(flaky(9, []), what="x", fix="check it", input_name="registry", attempts=1, sleep=lambda s: None)
    assert info.value.line() == "input 'registry': HTTP 503 after retries; fix: check it"


def test_braces_in_the_message_are_kept():
    with pytest.raises(StageError, match=r"at http://h/\{x\} failed \(HTTP 503\)"):
        retry_or_raise(flaky(9, []), what="x", fix="f", attempts=1, sleep=lambda s: None,
                       message="at http://h/{x} failed ({problem})")


def test_other_errors_pass_through_at_once():
    calls: list[int] = []

    def boom():
        calls.append(1)
        raise InputError("a", "bad")

    with pytest.raises(InputError):
        retry_or_raise(boom, what="x", fix="f", attempts=3, sleep=lambda s: None)
    assert len(calls) == 1
