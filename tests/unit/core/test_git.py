"""Branch names the bot may push to."""

import pytest

from mlops_actions.core.errors import InputError
from mlops_actions.core.git import validate_branch


@pytest.mark.parametrize("name", ["mlops/model-update", "bot_1.2"])
def test_branch_ok(name):
    assert validate_branch(name, "branch") == name


@pytest.mark.parametrize("name", ["a b", "x;rm -rf", "-x", "a..b", "a/", "x.lock", "a@{1}", "$(id)", ""])
def test_branch_refused(name):
    with pytest.raises(InputError, match="'branch'"):
        validate_branch(name, "branch")
