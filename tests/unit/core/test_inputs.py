"""Input types: relative paths and lists."""

import pytest

from mlops_actions.core.inputs import safe_relative
from mlops_actions.core.errors import InputError
from mlops_actions.core.inputs import split_list


@pytest.mark.parametrize("value,expected", [("models/x", "models/x"), ("./models//x/", "models/x"), ("", "")])
def test_safe_relative_ok(value, expected):
    assert safe_relative(value, "repo-path") == expected


@pytest.mark.parametrize("value", ["../../etc", "/etc/passwd", "models/../../x", "a\\b", "a\x00b"])
def test_safe_relative_refuses_traversal(value):
    with pytest.raises(InputError, match="repo-path"):
        safe_relative(value, "repo-path")


def test_split_list_dedupes_and_trims():
    assert split_list("a, b\nc,,a") == ["a", "b", "c"]
