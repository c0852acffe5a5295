"""The train stage: the fingerprint that decides reuse, and the params input."""

import subprocess

import pytest

from mlops_actions.core.errors import InputError

from mlops_actions.stages.train import fingerprint, parse_params


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_fingerprint_follows_committed_files_params_and_entry(tmp_path):
    _git("init", "-q", cwd=tmp_path)
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "train.py").write_text("print(1)\n")
    _git("add", ".", cwd=tmp_path)
    base = fingerprint(proj, "entry:main", {"C": "1"})
    assert fingerprint(proj, "entry:main", {"C": "1"}) == base
    assert fingerprint(proj, "entry:main", {"C": "2"}) != base
    assert fingerprint(proj, "entry:other", {"C": "1"}) != base
    (proj / "generated.csv").write_text("not tracked\n")  # untracked data does not count
    assert fingerprint(proj, "entry:main", {"C": "1"}) == base
    (proj / "train.py").write_text("print(2)\n")
    _git("add", ".", cwd=tmp_path)
    assert fingerprint(proj, "entry:main", {"C": "1"}) != base


def test_fingerprint_outside_git_hashes_files(tmp_path):
    (tmp_path / "a.py").write_text("x")
    first = fingerprint(tmp_path, "entry:main", {})
    (tmp_path / "a.py").write_text("y")
    assert fingerprint(tmp_path, "entry:main", {}) != first


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
