"""Stage 2, fetch-artifacts: download a run's artifacts and its model, write and verify a manifest.

The directory is replaced atomically: everything lands in a sibling temporary folder first and
is swapped in only once the download is complete and the manifest verified, so a failed or
interrupted fetch leaves the previous contents untouched and never mixes old and new files.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import manifest, modelinfo, tracking as trk
from .errors import InputError, StageError

RUN_FILE = "mlops-run.json"
_SAFE_TAGS = ("github.sha", "github.ref", "github.repository", "github.run_url", "github.workflow", "mlflow.runName", "mlflow.source.git.commit")


@dataclass
class FetchResult:
    path: Path
    model_path: Path | None
    flavor: str
    python_version: str
    manifest: Path

    def outputs(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "model-path": str(self.model_path or ""),
            "flavor": self.flavor,
            "python-version": self.python_version,
            "manifest": str(self.manifest),
        }


def safe_relative(value: str, input_name: str) -> str:
    """A relative POSIX path with no '..', no absolute root and no control characters."""
    text = (value or "").strip().strip("/")
    if value and (value.startswith("/") or "\\" in value):
        raise InputError(input_name, f"'{value}' must be a relative path", "give a path relative to the root, e.g. models/sentiment")
    if any(ord(c) < 32 for c in text):
        raise InputError(input_name, "contains control characters", "give a plain relative path")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InputError(input_name, f"'{value}' climbs out with '..'", "give a path inside the root, without '..'")
    return "/".join(parts)


def fetch(
    run_id: str,
    dest: str | os.PathLike[str],
    *,
    tracking: trk.Tracking,
    artifact_path: str = "",
    model_uri: str = "",
    include_model: bool = True,
) -> FetchResult:
    run_id = (run_id or "").strip()
    if not run_id:
        raise InputError("run-id", "is empty", "pass the run-id output of the train step")
    sub = safe_relative(artifact_path, "artifact-path")
    import mlflow
    from mlflow.exceptions import MlflowException

    dest = Path(dest)
    trk.preflight(tracking)
    trk.activate(tracking)
    client = mlflow.MlflowClient()

    def get_run():
        try:
            return client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "not found" in str(exc).lower():
                raise InputError("run-id", f"no run '{run_id}' on {tracking.display_uri}", "pass the run-id output of the train step against the same tracking-uri") from exc
            raise

    run = trk.call(get_run, "read run", tracking)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        expected = _download_run_artifacts(client, run_id, sub, staging, tracking)
        model_dir = modelinfo.find_model_dir(staging)
        resolved_model_uri = model_uri
        if include_model and model_dir is None:
            if not resolved_model_uri:
                from .train import find_model_uri

                resolved_model_uri = find_model_uri(run, client, tracking)
            target = staging / "model"
            trk.call(
                lambda: mlflow.artifacts.download_artifacts(artifact_uri=resolved_model_uri, dst_path=str(target)),
                "download model",
                tracking,
            )
            model_dir = modelinfo.find_model_dir(target)
            if model_dir is None:
                raise StageError(f"model {resolved_model_uri} has no MLmodel file", "log the model with mlflow.<flavor>.log_model")
        _check_sizes(staging, expected)
        info = modelinfo.read(model_dir) if model_dir else None
        _write_run_file(staging, run, tracking, resolved_model_uri, info)
        manifest.write(staging)
        _swap(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final_model = dest / model_dir.relative_to(staging) if model_dir else None
    manifest.verify(dest, "path")
    return FetchResult(
        path=dest,
        model_path=final_model,
        flavor=info.flavor if info else "",
        python_version=info.python_version if info else "",
        manifest=dest / manifest.NAME,
    )


def _download_run_artifacts(client, run_id: str, sub: str, staging: Path, tracking: trk.Tracking) -> dict[str, int]:
    """Download (all or a sub-path of) the run's artifacts; return the sizes the server lists."""
    import mlflow

    expected: dict[str, int] = {}

    def walk(path: str | None) -> None:
        for entry in trk.call(lambda: client.list_artifacts(run_id, path), "list artifacts", tracking):
            if entry.is_dir:
                walk(entry.path)
            elif entry.file_size is not None:
                rel = entry.path[len(sub) + 1:] if sub and entry.path.startswith(sub + "/") else entry.path
                expected[rel if sub else entry.path] = entry.file_size

    walk(sub or None)
    if sub and not expected:
        # a sub-path that names a single file lists as itself from its parent
        parent = sub.rsplit("/", 1)[0] if "/" in sub else None
        listed = {e.path: e for e in trk.call(lambda: client.list_artifacts(run_id, parent), "list artifacts", tracking)}
        if sub not in listed:
            raise InputError("artifact-path", f"run {run_id} has no artifact '{sub}'", "leave it empty for all artifacts or give a path listed in the MLflow UI")
        expected[sub.rsplit("/", 1)[-1]] = listed[sub].file_size or 0
    if not expected and not sub:
        return expected
    target = staging / "_dl"
    downloaded = Path(
        trk.call(
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
            raise StageError(f"artifact '{rel}' listed by the server was not downloaded", "re-run the job; the artifact store may be unstable")
        if size and p.stat().st_size != size:
            raise StageError(f"artifact '{rel}' is {p.stat().st_size} bytes, the server lists {size}", "re-run the job; the download was truncated")


def _write_run_file(staging: Path, run, tracking: trk.Tracking, model_uri: str, info) -> None:
    data = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "tracking_uri": tracking.display_uri if tracking.is_http else "",
        "run_url": tracking.run_url(run.info.experiment_id, run.info.run_id),
        "params": dict(sorted(run.data.params.items())),
        "metrics": dict(sorted(run.data.metrics.items())),
        "tags": {k: v for k, v in sorted(run.data.tags.items()) if k in _SAFE_TAGS},
        "model_uri": model_uri,
        "flavor": info.flavor if info else "",
        "python_version": info.python_version if info else "",
        "started": _iso(run.info.start_time),
    }
    (staging / RUN_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _iso(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _swap(staging: Path, dest: Path) -> None:
    """Replace ``dest`` with ``staging`` so readers see the old tree or the new one, never a mix."""
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir() or dest.is_symlink():
            raise InputError("path", f"'{dest}' exists and is not a directory", "choose another destination")
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        dest.rename(old)
        try:
            staging.rename(dest)
        except OSError:
            old.rename(dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(dest)
