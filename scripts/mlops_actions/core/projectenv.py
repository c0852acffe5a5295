"""The Python environment a model project trains in, built the MLflow way.

``env-manager`` follows MLflow's own choices (``mlflow run --env-manager``):

* ``uv`` (default): MLflow creates a virtualenv with ``uv`` from what the project declares and
  caches it under ``MLFLOW_ENV_ROOT`` (default ``~/.mlflow/envs``); wheels come from uv's cache
  (``UV_CACHE_DIR``, default ``~/.cache/uv``). Works on a bare runner: ``uv`` is a dependency of
  mlops-actions, so it sits next to the interpreter that runs the stage.
* ``virtualenv``: the same with ``python -m venv`` and pip, the interpreter from pyenv (MLflow's rule).
* ``local``: the interpreter that runs mlops-actions, with whatever it has installed (a self-hosted
  runner with the libraries baked in).

What the project declares, in MLflow's order: an MLproject's ``python_env`` / ``conda_env``; for a
plain script, ``python_env.yaml``, the pip part of ``conda.yaml``, or ``requirements.txt`` (next to
the script, then in the project folder).

Training code gets a scrubbed environment: tokens and passwords that only other stages need
(GitHub, registry, Actions runtime) are removed before it starts; MLflow's and the artifact
stores' credentials stay, because the training code logs with them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from .errors import InputError, StageError

ENV_MANAGERS = ("uv", "virtualenv", "local")
DEFAULT_ENV_MANAGER = "uv"

# Secrets only other stages need: never handed to the user's training code.
_DROP_EXACT = {
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "PR_TOKEN",
    "GITHUB_APP_PRIVATE_KEY",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_CACHE_URL",
    "ACTIONS_RESULTS_URL",
    "ACTIONS_RUNTIME_URL",
    "DOCKER_AUTH_CONFIG",
}
_DROP_PREFIXES = ("REGISTRY_", "DOCKER_PASSWORD", "DOCKER_USERNAME", "INPUT_")
_SECRET_WORDS = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|PRIVATE_KEY|API_KEY", re.IGNORECASE)
# What training code legitimately logs or reads data with.
_KEEP_PREFIXES = ("MLFLOW_", "DAGSHUB_", "AWS_", "AZURE_", "GOOGLE_", "GCS_", "HF_", "HUGGING_FACE_")

_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")
_IMPORT_TO_PACKAGE = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "tensorflow": "tensorflow-cpu",
    "mlflow": "mlflow",
}


def scrubbed_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default os.environ) without the secrets that training code must not see."""
    out = {}
    for name, value in (os.environ if env is None else env).items():
        if name.startswith(_KEEP_PREFIXES):
            out[name] = value
        elif name in _DROP_EXACT or name.startswith(_DROP_PREFIXES) or _SECRET_WORDS.search(name):
            continue
        else:
            out[name] = value
    return out


@contextlib.contextmanager
def scrubbed_process_env() -> Iterator[None]:
    """os.environ scrubbed for the duration (MLflow starts the entry point with os.environ)."""
    saved = dict(os.environ)
    keep = scrubbed_environ(saved)
    for name in set(saved) - set(keep):
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_env_manager(value: str) -> str:
    value = (value or DEFAULT_ENV_MANAGER).strip().lower()
    if value not in ENV_MANAGERS:
        raise InputError(
            "env-manager",
            f"'{value}' is not one of {', '.join(ENV_MANAGERS)}",
            "use uv (default: builds what the project declares), virtualenv (pyenv + pip) or local",
        )
    if value == "virtualenv" and not shutil.which("pyenv"):
        raise InputError(
            "env-manager",
            "'virtualenv' needs pyenv on the runner (MLflow installs the project's Python with it)",
            "use env-manager: uv (default), or install pyenv before this step",
        )
    return value


def tool_path() -> str:
    """PATH with the running interpreter's bin folder first: ``python`` in an MLproject command
    (env-manager local) is this interpreter, and ``uv`` is the one installed beside it."""
    bindir = str(Path(sys.executable).parent)
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bindir]
    return os.pathsep.join([bindir, *rest])


@contextlib.contextmanager
def tools_on_path(env_manager: str) -> Iterator[None]:
    saved = os.environ.get("PATH")
    os.environ["PATH"] = tool_path()
    try:
        if env_manager == "uv" and not shutil.which("uv"):
            raise InputError(
                "env-manager",
                "'uv' is not installed next to the interpreter that runs mlops-actions",
                "pip install uv (a dependency of mlops-actions), or use env-manager: local",
            )
        yield
    finally:
        if saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved


def cache_paths() -> list[str]:
    """Folders worth keeping between runs (hand them to actions/cache): uv's wheel cache and
    MLflow's environments."""
    uv = os.environ.get("UV_CACHE_DIR") or str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv")
    envs = os.environ.get("MLFLOW_ENV_ROOT") or str(Path.home() / ".mlflow" / "envs")
    return [uv, envs]


def mlproject_declares_env(project: Path) -> bool:
    """True when MLflow will build an environment for the MLproject (python_env, conda_env or a
    conda.yaml beside it); False when it would run the command with nothing installed."""
    import yaml

    spec_file = project / "MLproject" if (project / "MLproject").is_file() else project / "MLproject.yaml"
    try:
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(
            "project-path", f"{spec_file} is not readable YAML ({exc.__class__.__name__})", "fix the MLproject file"
        ) from exc
    if not isinstance(spec, dict):
        raise InputError("project-path", f"{spec_file} is not a mapping", "fix the MLproject file")
    if "docker_env" in spec:
        raise InputError(
            "project-path",
            f"{spec_file} declares docker_env, which the train stage does not run",
            "declare python_env (python_env.yaml) instead, or run the project with mlflow run yourself",
        )
    return bool(spec.get("python_env") or spec.get("conda_env") or (project / "conda.yaml").is_file())


@dataclass(frozen=True)
class ScriptEnv:
    python: str
    source: str  # the file the dependencies came from ("" for local)


def _script_python_env(project: Path, script: Path):
    """MLflow's _PythonEnv for a plain script, from what the project declares."""
    from mlflow.utils.environment import _PythonEnv

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        ("python_env.yaml", lambda p: _PythonEnv.from_yaml(str(p))),
        ("conda.yaml", lambda p: _PythonEnv.from_conda_yaml(str(p))),
    ]
    for name, load in candidates:
        path = project / name
        if path.is_file():
            try:
                return load(path), path
            except Exception as exc:  # MLflow raises several types for a bad file
                raise InputError(
                    "project-path",
                    f"{path} is not a valid {name} ({str(exc).splitlines()[0][:120]})",
                    "fix it: python, build_dependencies and dependencies as MLflow documents",
                ) from exc
    for folder in (script.parent, project):
        req = folder / "requirements.txt"
        if req.is_file():
            rel = os.path.relpath(req, project)
            return _PythonEnv(python=version, build_dependencies=["pip"], dependencies=[f"-r {rel}"]), req
    raise InputError(
        "env-manager",
        "the script's project declares no dependencies (no python_env.yaml, conda.yaml or requirements.txt in "
        f"{project})",
        "add a requirements.txt next to the script (with mlflow and your libraries), or use env-manager: local",
    )


def script_python(project: Path, script: Path, env_manager: str) -> ScriptEnv:
    """The interpreter a plain script trains with: built from the project's declaration (uv or
    virtualenv, cached like MLflow's own environments) or this one (local)."""
    if env_manager == "local":
        return ScriptEnv(python=sys.executable, source="")
    from mlflow.utils.virtualenv import _create_virtualenv, _get_mlflow_virtualenv_root, _get_virtualenv_name

    python_env, source = _script_python_env(project, script)
    env_dir = Path(_get_mlflow_virtualenv_root()) / _get_virtualenv_name(python_env, project)
    print(f"training environment: {env_manager}, Python {python_env.python}, from {source} → {env_dir}", flush=True)
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        _create_virtualenv(
            local_model_path=project.resolve(),
            python_env=python_env,
            env_dir=env_dir,
            env_manager=cast(Literal["virtualenv", "uv"], env_manager),
        )
    except Exception as exc:  # a failed install is the user's declaration or the network
        raise StageError(
            f"building the training environment from {source} failed ({str(exc).splitlines()[0][:200]})",
            "fix the dependencies it declares (the install log is above), then re-run",
        ) from exc
    return ScriptEnv(python=str(env_dir / "bin" / "python"), source=str(source))


class StderrTail:
    """Copies everything written to file descriptor 2 (by this process and the processes it
    starts) to the log as it comes, and keeps the last lines to explain a failure."""

    def __init__(self, lines: int = 200):
        self.tail: deque[str] = deque(maxlen=lines)
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StderrTail:
        sys.stderr.flush()
        self._saved = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._read = read_fd
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        return self

    def _pump(self) -> None:
        buf = b""
        with os.fdopen(self._read, "rb", buffering=0) as src:
            while True:
                chunk = src.read(65536)
                if not chunk:
                    break
                os.write(self._saved, chunk)
                buf += chunk
                *done, buf = buf.split(b"\n")
                self.tail.extend(line.decode("utf-8", "replace") for line in done)
        if buf:
            self.tail.append(buf.decode("utf-8", "replace"))

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last write end held by fd 2
        if self._thread is not None:
            self._thread.join(timeout=10)
        os.close(self._saved)

    def missing_module(self) -> str | None:
        for line in reversed(self.tail):
            found = _MISSING_MODULE.search(line)
            if found:
                return found.group(1)
        return None


def missing_module_error(module: str, env_manager: str, where: str) -> StageError:
    top = module.split(".")[0]
    package = _IMPORT_TO_PACKAGE.get(top, top)
    if env_manager == "local":
        fix = (
            f"install {package} on the runner before this step, or use env-manager: uv so the project's "
            f"declared dependencies are installed"
        )
    else:
        fix = f"add {package} to {where} (the dependencies env-manager {env_manager} installs), then re-run"
    fix += f"; if '{top}' is a module of your repository, keep it next to the script (its folder is on sys.path)"
    return StageError(f"the training code imports '{module}', which its environment does not have", fix)


def run_streaming(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str | None]:
    """Run ``cmd``, streaming its output to the log; return its exit code and the module a
    ModuleNotFoundError named, if any."""
    with StderrTail() as tail:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    return proc.returncode, (tail.missing_module() if proc.returncode else None)
