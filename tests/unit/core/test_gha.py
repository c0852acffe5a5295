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


def test_mask_emits_add_mask_whole_and_per_line_only_in_actions(capsys, monkeypatch):
    gha.mask("secret")
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    gha.mask("one\ntwo")
    assert capsys.readouterr().out == "::add-mask::one%0Atwo\n::add-mask::one\n::add-mask::two\n"


@pytest.mark.parametrize("secret,expected", [
    ("50%off", ["::add-mask::50%25off"]),  # the runner unescapes %25: the mask is the secret as written
    ("p%0Aw", ["::add-mask::p%250Aw"]),  # not unescaped into a line break
    ("tok\n::error::forged", ["::add-mask::tok%0A::error::forged", "::add-mask::tok", "::add-mask::::error::forged"]),
    ("a\r\n::warning::x\r", ["::add-mask::a%0D%0A::warning::x%0D", "::add-mask::a", "::add-mask::::warning::x"]),
])
def test_mask_escapes_so_a_secret_is_masked_whole_and_forges_nothing(capsys, monkeypatch, secret, expected):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    gha.mask(secret)
    lines = capsys.readouterr().out.splitlines()
    assert lines == expected
    assert all(line.startswith("::add-mask::") for line in lines)  # every line is the mask command, none forged


def test_log_defuses_workflow_commands(capsys):
    gha.log("ok\n::warning::forged\n  ::error::x\r::notice::y\nrow ##[error]z")
    lines = capsys.readouterr().out.splitlines()
    assert not any(line.strip().startswith("::") or "##[" in line for line in lines), lines
    assert lines[0] == "ok" and lines[1] == "» ::warning::forged"


def test_md_inline_keeps_a_value_on_its_line():
    assert gha.md_inline("a\n## heading <img src=x> `code`") == "a ## heading &lt;img src=x&gt; \u02cbcode\u02cb"


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
