"""cli.py turns flags into requests: the open-pr, push-image and pipeline commands' flags, parsed by
click as the actions pass them, become the stages' typed requests (secrets from the environment)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from mlops_actions import cli
from mlops_actions.core.errors import InputError


def params(command, args: list[str]) -> dict:
    return command.make_context(command.name, args).params


def test_the_open_pr_command_builds_its_request(monkeypatch):
    seen = []

    def open_pr(req):
        seen.append(req)
        return SimpleNamespace(summary=lambda: "", outputs=lambda: {})

    monkeypatch.setattr("mlops_actions.stages.open_pr.open_pr", open_pr)
    monkeypatch.setenv("GITHUB_TOKEN", "tok")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    args = ["open-pr", "--source-dir", "art", "--repo-path", "models/m", "--labels", "a, b\na", "--draft", "true",
            "--open-pull-request", "false", "--extra-body", "x.md,y.md", "--repository", "acme/model"]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    (req,) = seen
    assert (req.source_dir, req.repo_path, req.labels, req.token) == (Path("art"), "models/m", ["a", "b"], "tok")
    assert req.open_pull_request is False and req.draft is True and req.branch == "mlops/model-update"
    assert req.extra_body == [Path("x.md"), Path("y.md")] and req.repository == "acme/model"


def test_push_flags_make_the_request(monkeypatch):
    monkeypatch.setenv("REGISTRY_PASSWORD", "pw")
    req = cli.push_request("build/image", "false", image="ghcr.io/acme/model", version="1.2.3")
    assert (req.context, req.image, req.version, req.password, req.push) == (Path("build/image"), "ghcr.io/acme/model",
                                                                            "1.2.3", "pw", False)


def test_pipeline_flags_make_one_typed_config(monkeypatch, tmp_path):
    monkeypatch.setenv("GITHUB_TOKEN", "tok")
    monkeypatch.setenv("REGISTRY_PASSWORD", "pw")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    flags = params(cli.pipeline, ["--project-path", str(tmp_path / "proj"), "--params", "C=2.0", "--metric", "f1",
                                  "--repo-path", "models/m", "--labels", "bot", "--image", "ghcr.io/acme/model",
                                  "--version", "1.0.0", "--push", "false", "--env-manager", "local"])
    cfg = cli.pipeline_config(**flags)
    assert cfg.params == {"C": "2.0"} and cfg.env_manager == "local" and cfg.reuse is True and cfg.version == "1.0.0"
    assert cfg.gate is not None and (cfg.gate.metric, cfg.gate.model_name) == ("f1", "proj")
    assert cfg.pr is not None and (cfg.pr.repo_path, cfg.pr.source_dir, cfg.pr.labels, cfg.pr.token) == (
        "models/m", Path("artifacts"), ["bot"], "tok")
    assert cfg.push is not None and (cfg.push.image, cfg.push.version, cfg.push.push, cfg.push.password) == (
        "ghcr.io/acme/model", "1.0.0", False, "pw")


def test_a_bad_boolean_flag_is_one_line_naming_it():
    with pytest.raises(InputError, match="input 'push': 'yes' is not true or false"):
        cli.push_request("ctx", "yes", image="x")
