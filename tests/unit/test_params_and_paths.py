import pytest

from mlops_actions.artifacts import safe_relative
from mlops_actions.errors import InputError
from mlops_actions.git import validate_branch
from mlops_actions.pr import split_list
from mlops_actions.train import parse_params


def test_params_parse_lines_comments_and_blank_lines():
    assert parse_params("epochs=3\n\n# c\n lr = 0.1 \nname=a=b") == {"epochs": "3", "lr": "0.1", "name": "a=b"}


@pytest.mark.parametrize("text,needle", [
    ("epochs", "has no '='"),
    ("=3", "empty key"),
    ("epochs=", "empty value"),
    ("a=1\na=2", "given twice"),
    ("ep och=1", "not a valid parameter name"),
    ("$(rm)=1", "not a valid parameter name"),
])
def test_params_refused_with_input_named(text, needle):
    with pytest.raises(InputError) as err:
        parse_params(text)
    assert err.value.input_name == "params"
    assert needle in err.value.line() and "fix:" in err.value.line()
    assert "\n" not in err.value.line()


@pytest.mark.parametrize("value,expected", [("models/x", "models/x"), ("./models//x/", "models/x"), ("", "")])
def test_safe_relative_ok(value, expected):
    assert safe_relative(value, "repo-path") == expected


@pytest.mark.parametrize("value", ["../../etc", "/etc/passwd", "models/../../x", "a\\b", "a\x00b"])
def test_safe_relative_refuses_traversal(value):
    with pytest.raises(InputError, match="repo-path"):
        safe_relative(value, "repo-path")


@pytest.mark.parametrize("name", ["mlops/model-update", "bot_1.2"])
def test_branch_ok(name):
    assert validate_branch(name, "branch") == name


@pytest.mark.parametrize("name", ["a b", "x;rm -rf", "-x", "a..b", "a/", "x.lock", "a@{1}", "$(id)", ""])
def test_branch_refused(name):
    with pytest.raises(InputError, match="'branch'"):
        validate_branch(name, "branch")


def test_split_list_dedupes_and_trims():
    assert split_list("a, b\nc,,a") == ["a", "b", "c"]
