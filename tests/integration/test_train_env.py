"""The train stage builds the environment the project declares (MLflow's env managers), through
the console script a workflow step runs: uv by default, local on request; a module the
environment lacks is one line naming it; training code never sees the other stages' secrets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest

from conftest import SENTIMENT

MLOPS = str(Path(sys.executable).with_name("mlops"))


def run_mlops(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    # a PATH without the test venv: the stage must find its own python and uv
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GITHUB_", "INPUT_"))}
    base["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    base.update(env)
    return subprocess.run([MLOPS, *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=900)


def outputs(proc: subprocess.CompletedProcess) -> dict[str, str]:
    out = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.replace("-", "").isalnum():
            out.setdefault(key, value)
    return out


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(("::error", "error:"))]


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


FIT = """
    import os, mlflow, pandas as pd
    from sklearn.linear_model import LogisticRegression
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}); y = [0, 0, 1, 1]
    with mlflow.start_run():
        seen = sorted(k for k in ("GITHUB_TOKEN", "REGISTRY_PASSWORD", "PR_TOKEN", "ACTIONS_RUNTIME_TOKEN", "INPUT_PASSWORD") if k in os.environ)
        mlflow.set_tag("secrets_seen", ",".join(seen) or "none")
        mlflow.set_tag("tracking_user_seen", os.environ.get("MLFLOW_TRACKING_USERNAME", ""))
        mlflow.set_tag("python", os.sys.prefix)
        LogisticRegression().fit(x, y)
"""
SECRETS = {"GITHUB_TOKEN": "ghs_secret1", "REGISTRY_PASSWORD": "reg-secret2", "PR_TOKEN": "pat-secret3",
           "ACTIONS_RUNTIME_TOKEN": "rt-secret4", "INPUT_PASSWORD": "in-secret5"}


def test_plain_script_trains_in_the_env_its_requirements_declare_without_the_other_stages_secrets(mlflow_auth_server, tmp_path):
    proj = project(tmp_path, {"fit.py": FIT, "requirements.txt": "mlflow>=3.1,<4\nscikit-learn\npandas\n"})
    env = {"MLFLOW_TRACKING_USERNAME": mlflow_auth_server.username, "MLFLOW_TRACKING_PASSWORD": mlflow_auth_server.password, **SECRETS}
    proc = run_mlops("train", "--project-path", str(proj), "--script", "fit.py", "--tracking-uri", mlflow_auth_server.url,
                     "--experiment", "env-script", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = outputs(proc)
    assert out["env-manager"] == "uv"
    client = mlflow.MlflowClient(tracking_uri=mlflow_auth_server.url)
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = mlflow_auth_server.username, mlflow_auth_server.password
    try:
        tags = client.get_run(out["run-id"]).data.tags
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    assert tags["secrets_seen"] == "none"
    assert tags["tracking_user_seen"] == mlflow_auth_server.username  # MLflow's own credentials stay
    assert tags["python"].startswith(str(Path.home() / ".mlflow" / "envs")), tags["python"]  # not the stage's interpreter
    for value in SECRETS.values():
        assert value not in proc.stdout + proc.stderr


def test_mlproject_default_env_manager_builds_python_env_yaml(tmp_path):
    """The flagship MLproject (python_env.yaml → requirements.txt) on a PATH with no venv: uv builds it."""
    shutil.copytree(SENTIMENT, tmp_path / "sentiment", ignore=shutil.ignore_patterns("data", "mlruns", "__pycache__"))
    proc = run_mlops("train", "--project-path", "sentiment", "--params", "rows=300", cwd=tmp_path,
                     env={"GITHUB_WORKSPACE": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = outputs(proc)
    assert out["env-manager"] == "uv" and out["run-id"]
    assert "source " in proc.stderr + proc.stdout and "/.mlflow/envs/" in proc.stderr + proc.stdout  # MLflow activated its env
    metrics = json.loads(out["metrics"])
    assert metrics["test_accuracy"] > 0.6


def test_local_env_manager_runs_the_mlproject_command_with_the_stages_interpreter(tmp_path):
    """`python train.py` in an MLproject is the interpreter that runs mlops, not the machine's python3."""
    shutil.copytree(SENTIMENT, tmp_path / "sentiment", ignore=shutil.ignore_patterns("data", "mlruns", "__pycache__"))
    proc = run_mlops("train", "--project-path", "sentiment", "--params", "rows=300", "--env-manager", "local", cwd=tmp_path,
                     env={"GITHUB_WORKSPACE": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert outputs(proc)["env-manager"] == "local"


def test_a_module_the_environment_lacks_is_one_line_naming_it(tmp_path):
    proj = project(tmp_path, {
        "MLproject": """
            name: lacks
            python_env: python_env.yaml
            entry_points:
              main:
                command: "python fit.py"
        """,
        "python_env.yaml": """
            python: "%d.%d"
            build_dependencies: [pip]
            dependencies: [-r requirements.txt]
        """ % sys.version_info[:2],
        "requirements.txt": "mlflow>=3.1,<4\npandas\n",  # lightgbm forgotten
        "fit.py": "import mlflow\nimport lightgbm.basic\n",
    })
    proc = run_mlops("train", "--project-path", str(proj), cwd=tmp_path, env={"GITHUB_WORKSPACE": str(tmp_path)})
    assert proc.returncode == 1
    lines = errors(proc)
    assert len(lines) == 1, lines
    assert "'lightgbm'" in lines[0] and "add lightgbm to" in lines[0] and "MLproject" in lines[0]


@pytest.mark.parametrize("case, files, args, name", [
    ("mlproject-without-env", {"MLproject": "name: x\nentry_points:\n  main:\n    command: python fit.py\n", "fit.py": "print(1)\n"}, [], "project-path"),
    ("script-without-requirements", {"fit.py": "print(1)\n"}, ["--script", "fit.py"], "env-manager"),
    ("unknown-env-manager", {"fit.py": "print(1)\n", "requirements.txt": "mlflow\n"}, ["--script", "fit.py", "--env-manager", "conda"], "env-manager"),
    ("virtualenv-without-pyenv", {"fit.py": "print(1)\n", "requirements.txt": "mlflow\n"}, ["--script", "fit.py", "--env-manager", "virtualenv"], "env-manager"),
    ("bad-python-env", {"fit.py": "print(1)\n", "python_env.yaml": "python: [3\n"}, ["--script", "fit.py"], "project-path"),
])
def test_undeclared_or_unknown_environments_are_refused_before_any_run(tmp_path, case, files, args, name):
    proj = project(tmp_path, files)
    proc = run_mlops("train", "--project-path", str(proj), *args, cwd=tmp_path, env={"GITHUB_WORKSPACE": str(tmp_path)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = errors(proc)
    assert len(lines) == 1 and f"input '{name}'" in lines[0], lines
    assert "unexpected" not in lines[0]
    assert not (tmp_path / ".mlops" / "mlflow.db").exists() or case  # refused before training
