"""Stage 1, train: run a model project under MLflow tracking and report what it logged."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..core import gha, git, markdown, projectenv
from ..core import tracking as trk
from ..core.errors import InputError, StageError
from ..core.inputs import parse_params
from ..core.tracking import find_model_uri

__all__ = ["parse_params", "train", "fingerprint", "TrainResult"]

DEFAULT_EXPERIMENT = "mlops-actions"


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    model_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    run_url: str = ""
    tracking_uri: str = ""
    env_manager: str = ""
    reused: bool = False

    def outputs(self) -> dict[str, object]:
        return {
            "env-manager": self.env_manager,
            "env-cache": "\n".join(projectenv.cache_paths()),
            "reused": "true" if self.reused else "false",
            "run-id": self.run_id,
            "experiment-id": self.experiment_id,
            "model-uri": self.model_uri,
            "metrics": self.metrics,
            "run-url": self.run_url,
            "tracking-uri": self.tracking_uri,
        }

    def summary(self, tracking: trk.Tracking) -> str:
        """The job-summary section: the run, its model, how it was made, its metrics."""
        link = f"[{self.run_id}]({self.run_url})" if self.run_url else f"`{self.run_id}`"
        rows = [[k, markdown.number(v)] for k, v in self.metrics.items()]
        how = (
            "reused (same fingerprint, nothing trained)"
            if self.reused
            else f"trained in an environment built by `{self.env_manager}`"
        )
        return (
            f"### 🏋️ train\nMLflow run {link}, model `{self.model_uri}`; {how}\n\nTracking store: "
            f"{tracking.describe()}\n\n" + (gha.md_table(["metric", "value"], rows) if rows else "_no metrics logged_")
        )


def run_tags() -> dict[str, str]:
    ctx = gha.github_context()
    tags = {
        "github.sha": ctx["sha"],
        "github.ref": ctx["ref"],
        "github.repository": ctx["repository"],
        "github.workflow": ctx["workflow"],
        "github.run_id": ctx["run_id"],
        "github.run_url": ctx["run_url"],
        "github.actor": ctx["actor"],
        "github.event_name": ctx["event_name"],
        "mlops_actions.stage": "train",
    }
    if not tags["github.sha"]:
        sha = git.output("rev-parse", "HEAD")
        tags["github.sha"] = sha
    return {k: v for k, v in tags.items() if v}


def _ensure_experiment(name: str, tracking: trk.Tracking) -> str:
    import mlflow

    client = mlflow.MlflowClient()
    exp = trk.call(lambda: client.get_experiment_by_name(name), "get experiment", tracking)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise InputError(
                "experiment",
                f"experiment '{name}' is deleted on the server",
                "restore it in the MLflow UI or choose another name",
            )
        return exp.experiment_id
    location = tracking.local_artifact_root()
    return trk.call(lambda: client.create_experiment(name, artifact_location=location), "create experiment", tracking)


def _validate_project(project: Path, script: str | None) -> tuple[str, Path | None]:
    if not project.is_dir():
        raise InputError(
            "project-path",
            f"'{project}' is not a directory",
            "give the folder of the model project relative to the repository root",
        )
    if script:
        path = (project / script).resolve()
        if not path.is_relative_to(project.resolve()):
            raise InputError(
                "script", f"'{script}' points outside project-path", "give a script inside the project folder"
            )
        if not path.is_file():
            raise InputError(
                "script",
                f"'{script}' not found in '{project}'",
                "give the path of a Python training script relative to project-path",
            )
        return "script", path
    if not (project / "MLproject").is_file() and not (project / "MLproject.yaml").is_file():
        raise InputError(
            "project-path", f"'{project}' has no MLproject file", "add an MLproject file or set the script input"
        )
    return "mlproject", None


def train(
    project_path: str,
    *,
    entry_point: str = "main",
    script: str | None = None,
    params: dict[str, str] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    tracking: trk.Tracking,
    autolog: bool = True,
    model_name: str | None = None,
    reuse: bool = False,
    env_manager: str = projectenv.DEFAULT_ENV_MANAGER,
    extra_tags: dict[str, str] | None = None,
) -> TrainResult:
    """Run the project and return its run. With ``reuse``, a finished run of the same fingerprint
    (project files as committed, entry point or script, parameters) is returned instead of training
    again, so a re-run of the same commit proposes the same artifacts and builds the same image.
    ``extra_tags`` (the caller's, e.g. the sweep a run belongs to) are set on the run, the reused one too."""
    project = Path(project_path)
    mode, script_path = _validate_project(project, script)
    env_manager = projectenv.check_env_manager(env_manager)
    if mode == "mlproject" and env_manager != "local" and not projectenv.mlproject_declares_env(project):
        raise InputError(
            "project-path",
            f"{project}/MLproject declares no environment, so env-manager {env_manager} would install nothing",
            "add python_env: python_env.yaml (python and dependencies: -r requirements.txt) to the MLproject, or "
            "set env-manager: local",
        )
    params = params or {}
    import mlflow

    trk.preflight(tracking)
    trk.activate(tracking)
    experiment_id = _ensure_experiment(experiment or DEFAULT_EXPERIMENT, tracking)
    client = mlflow.MlflowClient()
    tags = run_tags()
    tags[FINGERPRINT_TAG] = fingerprint(project, script or f"entry:{entry_point}", params)
    extra_tags = extra_tags or {}

    previous = _finished_run(client, experiment_id, tags[FINGERPRINT_TAG], tracking) if reuse else None
    if previous is not None:
        gha.notice(
            f"reusing MLflow run {previous.info.run_id}: same project files, entry point and params (fingerprint "
            f"{tags[FINGERPRINT_TAG][:12]})"
        )
        for key, value in extra_tags.items():
            trk.call(functools.partial(client.set_tag, previous.info.run_id, key, value), "tag run", tracking)
        return _result(previous, client, tracking, model_name, env_manager, reused=True)

    tags.update(extra_tags)
    with gha.group(f"train {project} ({mode}, env-manager {env_manager}) → {tracking.describe()}"):
        if mode == "mlproject":
            run_id = _run_mlproject(project, entry_point, params, experiment_id, run_name, tracking, env_manager)
            for key, value in tags.items():
                trk.call(functools.partial(client.set_tag, run_id, key, value), "tag run", tracking)
        else:
            assert script_path is not None  # mode "script" is chosen only when a script is given
            run_id = _run_script(
                script_path, project, params, experiment_id, run_name, tags, tracking, autolog, client, env_manager
            )

    run = trk.call(lambda: client.get_run(run_id), "read run", tracking)
    if run.info.status != "FINISHED":
        raise StageError(f"run {run_id} ended with status {run.info.status}", "read the training log above")
    return _result(run, client, tracking, model_name, env_manager)


def _result(
    run, client, tracking: trk.Tracking, model_name: str | None, env_manager: str = "", reused: bool = False
) -> TrainResult:
    model_uri = find_model_uri(run, client, tracking, model_name)
    return TrainResult(
        env_manager=env_manager,
        reused=reused,
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        model_uri=model_uri,
        metrics=dict(sorted(run.data.metrics.items())),
        run_url=tracking.run_url(run.info.experiment_id, run.info.run_id),
        tracking_uri=tracking.display_uri,
    )


FINGERPRINT_TAG = "mlops_actions.fingerprint"


def fingerprint(project: Path, entry: str, params: dict[str, str]) -> str:
    """What decides a training: the project's files (git blob ids of what is committed, so DVC
    pointers count and generated or ignored files do not; file digests outside git), the entry
    point or script, and the parameters."""
    h = hashlib.sha256()
    h.update(f"{entry}\n".encode())
    for key in sorted(params):
        h.update(f"{key}={params[key]}\n".encode())
    listing = git.output("ls-files", "-s", "--", ".", cwd=project)
    if listing:
        h.update(listing.encode())
    else:
        for path in sorted(p for p in project.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(path.relative_to(project).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _finished_run(client, experiment_id: str, print_: str, tracking: trk.Tracking):
    runs = trk.call(
        lambda: client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{FINGERPRINT_TAG}` = '{print_}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        ),
        "search runs",
        tracking,
    )
    return runs[0] if runs else None


def _run_mlproject(
    project: Path,
    entry_point: str,
    params: dict[str, str],
    experiment_id: str,
    run_name: str | None,
    tracking: trk.Tracking,
    env_manager: str,
) -> str:
    import mlflow
    from mlflow.exceptions import ExecutionException, MlflowException

    where = f"the environment {project}/MLproject declares (python_env / conda_env)"
    failure: Exception | None
    with projectenv.tools_on_path(env_manager), projectenv.scrubbed_process_env(), projectenv.StderrTail() as tail:
        try:
            submitted = mlflow.projects.run(
                uri=str(project.resolve()),
                entry_point=entry_point,
                parameters=params,
                experiment_id=experiment_id,
                run_name=run_name or None,
                env_manager=env_manager,
                synchronous=True,
            )
            failure = None
        except ExecutionException as exc:
            failure = exc
        except MlflowException as exc:
            failure = exc
    if failure is None:
        return submitted.run_id
    text = str(failure).splitlines()[0] if str(failure) else failure.__class__.__name__
    if isinstance(failure, ExecutionException) and ("entry point" in text.lower() or "parameter" in text.lower()):
        name = "entry-point" if "entry point" in text.lower() else "params"
        raise InputError(name, text, "match the MLproject file's entry points and parameters") from failure
    module = tail.missing_module()
    if module:
        raise projectenv.missing_module_error(module, env_manager, where) from failure
    raise StageError(f"training failed: {text}", "read the training log above") from failure


def _run_script(
    script: Path,
    project: Path,
    params: dict[str, str],
    experiment_id: str,
    run_name: str | None,
    tags: dict[str, str],
    tracking: trk.Tracking,
    autolog: bool,
    client,
    env_manager: str,
) -> str:
    with projectenv.tools_on_path(env_manager):
        interpreter = projectenv.script_python(project, script, env_manager)
    run = trk.call(
        lambda: client.create_run(experiment_id, tags=tags, run_name=run_name or None), "create run", tracking
    )
    run_id = run.info.run_id
    for key, value in params.items():
        trk.call(functools.partial(client.log_param, run_id, key, value), "log params", tracking)
    env = projectenv.scrubbed_environ()
    env.update(
        MLFLOW_RUN_ID=run_id,
        MLFLOW_EXPERIMENT_ID=experiment_id,
        MLFLOW_TRACKING_URI=tracking.uri,
        PATH=projectenv.tool_path(),
    )
    # bootstrap.py runs by path: it needs only mlflow, which the project's own environment has
    cmd = [
        interpreter.python,
        str(Path(__file__).parents[1] / "bootstrap.py"),
        "--autolog" if autolog else "--no-autolog",
        str(script),
    ]
    for key, value in params.items():
        cmd += [f"--{key}", value]
    returncode, module = projectenv.run_streaming(cmd, project, env)
    status = "FINISHED" if returncode == 0 else "FAILED"
    current = trk.call(lambda: client.get_run(run_id), "read run", tracking)
    if current.info.status == "RUNNING":
        trk.call(lambda: client.set_terminated(run_id, status), "end run", tracking)
    if module:
        raise projectenv.missing_module_error(module, env_manager, interpreter.source or "the runner's Python")
    if returncode != 0:
        raise StageError(f"training script {script.name} exited with code {returncode}", "read the training log above")
    return run_id
