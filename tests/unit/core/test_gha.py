import pytest

from mlops_actions.core import gha


def test_outputs_use_heredoc_for_multiline_and_json_for_objects(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    gha.set_outputs({"a": "x", "tags": "r:1\nr:2", "metrics": {"acc": 0.5}})
    text = out.read_text()
    assert "a=x\n" in text
    assert 'metrics={"acc":0.5}\n' in text
    head, body = text.split("tags<<", 1)
    delim, rest = body.split("\n", 1)
    assert rest.startswith("r:1\nr:2\n" + delim + "\n")
    assert delim.startswith("ghadelimiter_")


def test_outside_actions_outputs_print_and_files_untouched(capsys, tmp_path):
    gha.set_outputs({"run-id": "abc"})
    gha.add_summary("ignored")
    assert "run-id=abc" in capsys.readouterr().out


def test_mask_emits_add_mask_per_line_only_in_actions(capsys, monkeypatch):
    gha.mask("secret")
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    gha.mask("one\ntwo")
    assert capsys.readouterr().out == "::add-mask::one\n::add-mask::two\n"


def test_error_escapes_newlines(capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    gha.error("bad\nthing 100%", title="x")
    assert capsys.readouterr().out == "::error title=x::bad%0Athing 100%25\n"


def test_group_in_actions(capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with gha.group("build"):
        print("inside")
    out = capsys.readouterr().out
    assert out.startswith("::group::build\ninside\n") and out.rstrip().endswith("::endgroup::")


def test_md_table_escapes_pipes():
    assert gha.md_table(["a"], [["x|y"]]).splitlines()[2] == "| x\\|y |"


@pytest.mark.parametrize("ref,expected", [("refs/heads/main", "main"), ("", "")])
def test_github_context_reads_env(monkeypatch, ref, expected):
    monkeypatch.setenv("GITHUB_REF_NAME", expected)
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    monkeypatch.setenv("GITHUB_RUN_ID", "7")
    ctx = gha.github_context()
    assert ctx["ref_name"] == expected
    assert ctx["run_url"] == "https://github.com/o/r/actions/runs/7"
