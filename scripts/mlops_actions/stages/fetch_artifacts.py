"""Stage 2, fetch-artifacts: download a run's artifacts and its model, write and verify a manifest.

Only a finished, live run is fetched (:func:`read_run`, shared with gate): a deleted run or one
that is not FINISHED is refused naming ``run-id``. The destination follows the stage rules of
:mod:`mlops_actions.core.paths`: it is new, empty or an earlier fetch-artifacts output (marker
``.mlops-output``), never the workspace or checkout root, and it is replaced atomically:
everything lands in a sibling temporary folder first and is swapped in only once the download is
complete and the manifest written, so a failed or interrupted fetch leaves the previous contents
untouched and never mixes old and new files. Every artifact name the server lists must be a
plain relative path inside the run (no ``..``, no absolute path); a link in the downloaded tree is
refused; the manifest never follows one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..core import gha, manifest, modelinfo, paths, trend
from ..core import tracking as trk
from ..core.errors import InputError, StageError
from ..core.inputs import safe_relative
from ..core.run_record import RunRecord
from ..core.tracking import check_model_uri, find_model_uri, mlflow_call, read_run

STAGE = "fetch-artifacts"
_SAFE_TAGS = (
    "github.sha",
    "github.ref",
    "github.repository",
    "github.run_url",
    "github.workflow",
    "mlflow.runName",
    "mlflow.source.git.commit",
)


@dataclass
class FetchResult:
    path: Path
    model_path: Path | None
    flavor: str
    python_version: str
    manifest: Path
    trend: Path | None = None
    trend_points: int = 0

    def outputs(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "model-path": str(self.model_path or ""),
            "flavor": self.flavor,
            "python-version": self.python_version,
            "manifest": str(self.manifest),
            "trend": str(self.trend or ""),
        }

    def summary(self, run_id: str, tracking: trk.Tracking) -> str:
        count = len(self.manifest.read_text(encoding="utf-8").splitlines())
        return (
            f"### 📦 fetch-artifacts\n{count} files from run `{run_id}` in `{self.path}` (verified against "
            f"`{self.manifest.name}`); "
            f"model flavor `{self.flavor or '—'}`, Python {self.python_version or '—'}"
            + (f"; trend plot `{trend.FILE}` of {self.trend_points} runs" if self.trend else "")
            + f"\n\nTracking store: {tracking.describe()}"
        )


def fetch(
    run_id: str,
    dest: str | os.PathLike[str],
    *,
    tracking: trk.Tracking,
    artifact_path: str = "",
    model_uri: str = "",
    include_model: bool = True,
    trend_metric: str = "",
    trend_runs: int = 20,
) -> FetchResult:
    run_id = (run_id or "").strip()
    if not run_id:
        raise InputError("run-id", "is empty", "pass the run-id output of the train step")
    trend_metric = trend_metric.strip()
    if "`" in trend_metric or "\n" in trend_metric:
        raise InputError(
            "trend-metric", f"'{trend_metric}' is not a metric name", "give the metric the gate decides on"
        )
    if not 2 <= trend_runs <= trend.MAX_RUNS:
        raise InputError(
            "trend-runs", f"{trend_runs} is not between 2 and {trend.MAX_RUNS}", "give how many runs the plot shows"
        )
    sub = safe_relative(artifact_path, "artifact-path")
    model_uri = check_model_uri(model_uri, "model-uri")
    dest = paths.claim_output(dest, STAGE, "path")  # refused before any call to the server
    import mlflow

    trk.preflight(tracking)
    trk.activate(tracking)
    client = mlflow.MlflowClient()
    run = read_run(client, run_id, tracking)
    with paths.output_dir(dest, STAGE, "path") as staging:
        expected = _download_run_artifacts(client, run_id, sub, staging, tracking)
        paths.tree_files(staging, "run-id")  # nothing downloaded may be a link
        model_dir = modelinfo.find_model_dir(staging)
        resolved_model_uri = model_uri
        if include_model and model_dir is None:
            if not resolved_model_uri:
                resolved_model_uri = mlflow_call(
                    lambda: find_model_uri(run, client, tracking), "find the run's model", tracking
                )
            target = staging / "model"
            mlflow_call(
                lambda: mlflow.artifacts.download_artifacts(artifact_uri=resolved_model_uri, dst_path=str(target)),
                "download model",
                tracking,
            )
            paths.tree_files(target, "model-uri" if model_uri else "run-id")
            model_dir = modelinfo.find_model_dir(target)
            if model_dir is None:
                raise StageError(
                    f"model {resolved_model_uri} has no MLmodel file", "log the model with mlflow.<flavor>.log_model"
                )
        _check_sizes(staging, expected)
        info = modelinfo.read(model_dir, "run-id") if model_dir else None
        _write_run_file(staging, run, tracking, resolved_model_uri, info)
        trend_points = 0
        if trend_metric:
            trend_points = _write_trend(client, run, trend_metric, trend_runs, staging, tracking)
        manifest.write(staging, "run-id")
        relative_model = model_dir.relative_to(staging) if model_dir else None
    final_model = dest / relative_model if relative_model is not None else None
    manifest.verify(dest, "path")
    return FetchResult(
        path=dest,
        model_path=final_model,
        flavor=info.flavor if info else "",
        python_version=info.python_version if info else "",
        manifest=dest / manifest.NAME,
        trend=dest / trend.FILE if trend_points else None,
        trend_points=trend_points,
    )


def _write_trend(client, run, metric: str, runs: int, staging: Path, tracking: trk.Tracking) -> int:
    """``metric_trend.png``: ``metric`` over the experiment's last ``runs`` finished runs. A run
    that did not log it gets no plot and a warning (the gate names the metric it needs)."""
    if metric not in run.data.metrics:
        gha.warning(f"fetch-artifacts: input 'trend-metric': run {run.info.run_id} logged no '{metric}': no trend plot")
        return 0
    if (staging / trend.FILE).exists():  # the run's own file of that name is kept, never replaced
        gha.warning(f"fetch-artifacts: the run's artifacts hold a {trend.FILE} already: it is kept, no trend plot")
        return 0
    points = mlflow_call(
        lambda: trend.history(client, run.info.experiment_id, metric, run, runs), "search the experiment", tracking
    )
    trend.plot(points, metric, run.info.run_id, staging / trend.FILE)
    return len(points)


def _safe_listed(path: str, run_id: str, tracking: trk.Tracking) -> str:
    """An artifact name as the server listed it: a plain relative POSIX path, or a StageError
    naming the server (a hostile or broken server must not steer a download out of the folder)."""
    text = str(path or "")
    parts = text.split("/")
    if (
        not text
        or text.startswith("/")
        or "\\" in text
        or any(ord(c) < 32 for c in text)
        or any(p in ("", ".", "..") for p in parts)
        or (len(text) > 1 and text[1] == ":")
    ):
        raise StageError(
            f"MLflow at {tracking.display_uri} listed an unsafe artifact name {text[:80]!r} for run {run_id}",
            "check the tracking server: artifact names must be relative paths inside the run",
        )
    return text


def _download_run_artifacts(client, run_id: str, sub: str, staging: Path, tracking: trk.Tracking) -> dict[str, int]:
    """Download (all or a sub-path of) the run's artifacts; return the sizes the server lists."""
    import mlflow

    expected: dict[str, int] = {}

    def walk(path: str | None) -> None:
        for entry in mlflow_call(lambda: client.list_artifacts(run_id, path), "list artifacts", tracking):
            _safe_listed(entry.path, run_id, tracking)
            if path and not entry.path.startswith(path + "/"):
                raise StageError(
                    f"MLflow at {tracking.display_uri} listed '{entry.path[:80]}' under '{path}' for run {run_id}",
                    "check the tracking server: a folder lists only what is inside it",
                )
            if entry.is_dir:
                walk(entry.path)
            elif entry.file_size is not None:
                rel = entry.path[len(sub) + 1 :] if sub and entry.path.startswith(sub + "/") else entry.path
                expected[rel if sub else entry.path] = entry.file_size

    walk(sub or None)
    if sub and not expected:
        # a sub-path that names a single file lists as itself from its parent
        parent = sub.rsplit("/", 1)[0] if "/" in sub else None
        listed = {
            _safe_listed(e.path, run_id, tracking): e
            for e in mlflow_call(lambda: client.list_artifacts(run_id, parent), "list artifacts", tracking)
        }
        if sub not in listed:
            raise InputError(
                "artifact-path",
                f"run {run_id} has no artifact '{sub}'",
                "leave it empty for all artifacts or give a path listed in the MLflow UI",
            )
        expected[sub.rsplit("/", 1)[-1]] = listed[sub].file_size or 0
    if not expected and not sub:
        return expected
    target = staging / "_dl"
    downloaded = Path(
        mlflow_call(
            lambda: mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=sub or None, dst_path=str(target)),
            "download artifacts",
            tracking,
        )
    )
    # move the downloaded tree (or single file) to the staging root
    src = downloaded if downloaded.is_dir() else downloaded.parent
    for item in list(src.iterdir()):
        item.rename(staging / item.name)
    shutil.rmtree(target, ignore_errors=True)
    return expected


def _check_sizes(staging: Path, expected: dict[str, int]) -> None:
    for rel, size in expected.items():
        p = staging / rel
        if not p.is_file():
            raise StageError(
                f"artifact '{rel}' listed by the server was not downloaded",
                "re-run the job; the artifact store may be unstable",
            )
        if size and p.stat().st_size != size:
            raise StageError(
                f"artifact '{rel}' is {p.stat().st_size} bytes, the server lists {size}",
                "re-run the job; the download was truncated",
            )


def _write_run_file(staging: Path, run, tracking: trk.Tracking, model_uri: str, info) -> None:
    RunRecord(
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        experiment_id=run.info.experiment_id,
        tracking_uri=tracking.display_uri if tracking.is_http else "",
        run_url=tracking.run_url(run.info.experiment_id, run.info.run_id),
        params=dict(sorted(run.data.params.items())),
        metrics=dict(sorted(run.data.metrics.items())),
        tags={k: v for k, v in sorted(run.data.tags.items()) if k in _SAFE_TAGS},
        model_uri=model_uri,
        flavor=info.flavor if info else "",
        python_version=info.python_version if info else "",
        started=_iso(run.info.start_time),
    ).write(staging)


def _iso(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
