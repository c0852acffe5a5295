"""Stage 4, render-dockerfile: a build context (Dockerfile, requirements, server, model) for a model.

The output folder follows the stage rules of :mod:`mlops_actions.core.paths`: it is new, empty or an
earlier render-dockerfile output (marker ``.mlops-output``), never the workspace or checkout root,
never inside the model folder (nor the model folder inside it); it is replaced atomically. The
model folder is copied without following links: a symbolic link in it is refused, so no file of
the runner can reach the build context, and from there the pushed image."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from .. import __version__
from ..core import gha, git, images, modelinfo, paths
from ..core.errors import InputError
from ..core.paths import read_text_input, resource
from ..core.templating import render_template

STAGE = "render-dockerfile"

UID = 10001
# What the scoring server itself imports, besides the flavor's libraries.
SERVER_REQUIREMENTS = ("pyyaml", "pandas", "numpy")
# Packages the model lists that serving does not need (the server loads models natively).
DROP = {"mlflow", "mlflow-skinny", "mlflow-tracing"}
RUNTIMES = ("auto", "native", "onnx")
# What the ONNX runtime image installs: the server's own needs without pandas, plus onnxruntime.
ONNX_REQUIREMENTS = ("numpy", "pyyaml")


@dataclass
class RenderResult:
    dockerfile: Path
    context: Path
    flavor: str
    model_sha256: str
    runtime: str = "native"
    runtime_reason: str = ""
    requirements: list[str] = field(default_factory=list)

    def outputs(self) -> dict[str, object]:
        return {
            "dockerfile": str(self.dockerfile),
            "context": str(self.context),
            "flavor": self.flavor,
            "model-sha256": self.model_sha256,
            "runtime": self.runtime,
            "runtime-reason": self.runtime_reason,
        }

    def summary(self) -> str:
        return (
            f"### 🐳 render-dockerfile\n`{self.dockerfile}` for a `{self.flavor}` model (sha256 "
            f"`{self.model_sha256[:12]}…`)\n\n"
            f"runtime **{self.runtime}**: {self.runtime_reason}"
        )


def serving_requirements(model_dir: Path, flavor: str, input_name: str = "model-dir") -> list[str]:
    """The model's requirements.txt, checked line by line, without mlflow, plus the server's own."""
    path = Path(model_dir) / "requirements.txt"
    lines = (
        read_text_input(path, input_name, "the model's requirements.txt (pip requirement lines)").splitlines()
        if path.is_file()
        else []
    )
    reqs: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        where = f"requirements.txt line {number} '{line[:60]}'"
        if line.startswith("-"):
            raise InputError(
                input_name,
                f"{where} is a pip option",
                "remove index/find-links/editable options; the image installs from the default index only",
            )
        if line.startswith((".", "/", "~")) or "file:" in line or "://" in line:
            raise InputError(
                input_name, f"{where} points at a local path or URL", "pin a released package version instead"
            )
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise InputError(input_name, f"{where} is not a valid requirement", "use the form name==version") from exc
        name = req.name.lower().replace("_", "-")
        if name in DROP:
            continue
        reqs[name] = str(req)
    if "tensorflow-cpu" in reqs:
        reqs.pop("tensorflow", None)  # mlflow lists both; the CPU wheel is the lean one
    for name in SERVER_REQUIREMENTS:
        reqs.setdefault(name, name)
    if flavor == "sklearn":
        reqs.setdefault("scikit-learn", "scikit-learn")
        reqs.setdefault("cloudpickle", "cloudpickle")
    return [reqs[k] for k in sorted(reqs)]


def onnx_requirements(native: list[str]) -> list[str]:
    """The ONNX image's requirements: onnxruntime at the version the equivalence check ran with,
    numpy and pyyaml (pinned as the model pinned them, if it did); no pandas, no flavor library."""
    from importlib.metadata import version

    pinned = {Requirement(r).name.lower(): r for r in native}
    reqs = {"onnxruntime": f"onnxruntime=={version('onnxruntime')}"}
    for name in ONNX_REQUIREMENTS:
        reqs[name] = pinned.get(name, name)
    return [reqs[k] for k in sorted(reqs)]


def choose_runtime(info, runtime: str, staging: Path, check_data: str) -> tuple[str, str, dict]:
    """(runtime, reason, model-info additions). ``onnx`` that cannot be proven equivalent raises;
    ``auto`` falls back to ``native`` with the reason."""
    from ..core import onnx_export

    if runtime == "native":
        return "native", "runtime 'native' asked for", {}
    check = Path(check_data) if check_data else None
    if check is not None and not check.is_file():
        raise InputError(
            "onnx-check-data",
            f"'{check_data}' not found",
            "give a CSV (table models) or .npy file (tensor models), or leave it empty",
        )
    if check is not None:
        _readable_check_data(check)
    try:
        conv = onnx_export.convert(info, staging / "model.onnx", check)
    except onnx_export.NotConvertible as exc:
        (staging / "model.onnx").unlink(missing_ok=True)
        if runtime == "onnx":
            raise InputError(
                "runtime",
                f"'onnx' is not possible for this model: {exc}",
                "use runtime 'auto' (falls back to native) or 'native'",
            ) from exc
        return "native", f"ONNX not used: {exc}", {}
    extra = {
        "onnx": {**conv.server_config(), "path": "/app/model.onnx"},
        "classes": conv.classes,
        "onnx_check": {
            "rows": conv.checked_rows,
            "max_abs_diff": conv.max_abs_diff,
            "tolerance": onnx_export.TOLERANCE,
            "source": conv.check_source,
        },
    }
    return "onnx", conv.reason(), extra


def _readable_check_data(check: Path) -> None:
    """The held-out sample must parse as what it claims to be (a .npy array, else a UTF-8 CSV)
    before the equivalence check reads it: a binary or broken file is one line naming the input."""
    fix = "give a UTF-8 CSV with the model's columns (table models) or a .npy array (tensor models)"
    try:
        if check.suffix.lower() == ".npy":
            import numpy as np

            np.load(check, allow_pickle=False, mmap_mode="r")
        else:
            import pandas as pd

            if b"\0" in check.read_bytes()[:65536]:
                raise ValueError("binary content")
            pd.read_csv(check, nrows=5, encoding="utf-8")
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(
            "onnx-check-data",
            f"'{check}' cannot be read as check data ({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})",
            fix,
        ) from None


def _created() -> str:
    """Reproducible build time: SOURCE_DATE_EPOCH, else the commit time of HEAD, else now; so the
    same commit renders the same Dockerfile and a rebuild from cache gives the same image digest."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not epoch.isdigit():
        epoch = git.output("log", "-1", "--format=%ct")
    when = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch.isdigit() else datetime.now(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def render(
    model_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    template: str | None = None,
    base_image: str = "",
    ca_bundle: str = "",
    port: int = 8080,
    version: str = "",
    source: str = "",
    revision: str = "",
    run_id: str = "",
    runtime: str = "native",
    check_data: str = "",
) -> RenderResult:
    """Write the build context for ``model_dir`` to ``output_dir`` (replaced atomically).

    ``runtime``: ``native`` (this function's default, as before the option existed), ``onnx``
    (ONNX Runtime, or InputError when the model does not convert or fails the equivalence check) or
    ``auto`` (ONNX when it passes, else native with the reason; the CLI's and the action's default).
    ``check_data``: a held-out sample for that check (CSV for table models, .npy for tensor models)."""
    runtime = (runtime or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise InputError("runtime", f"'{runtime}' is not a runtime", f"use one of: {', '.join(RUNTIMES)}")
    model_path = Path(model_dir)
    if model_path.is_dir():
        paths.tree_files(model_path, "model-dir")  # a link in the model folder never reaches the image
    info = modelinfo.read(model_path, "model-dir")
    modelinfo.require_servable(info, "model-dir")
    paths.claim_output(output_dir, STAGE, "output-dir", {"model-dir": model_path})
    if not (1 <= int(port) <= 65535):
        raise InputError("port", f"{port} is not a TCP port", "use a number from 1 to 65535")
    pyver = ".".join(info.python_version.split(".")[:2]) or "3.11"
    if not base_image.strip() and not re.fullmatch(r"3\.\d{1,2}", pyver):
        raise InputError(
            "model-dir",
            f"the model's python_version '{info.python_version[:40]}' is not 3.X(.Y)",
            "re-log the model with mlflow, or set base-image",
        )
    base = base_image.strip() or f"python:{pyver}-slim"
    images.parse(base, "base-image")
    ca_path = Path(ca_bundle) if ca_bundle else None
    if ca_path is not None:
        if not ca_path.is_file():
            raise InputError(
                "ca-bundle",
                f"'{ca_bundle}' not found",
                "give the path of a PEM CA bundle on the runner, or leave it empty",
            )
        head = ca_path.read_bytes()[:4096]
        if b"-----BEGIN CERTIFICATE-----" not in head:
            raise InputError(
                "ca-bundle",
                f"'{ca_bundle}' is not a PEM certificate bundle",
                "give a file with -----BEGIN CERTIFICATE----- blocks",
            )
    requirements = serving_requirements(info.path, info.flavor)
    ctx = gha.github_context()
    model_sha = modelinfo.tree_sha256(info.path)
    created = _created()
    labels = {
        "org.opencontainers.image.title": f"{info.flavor} model {run_id or info.run_id}".strip(),
        "org.opencontainers.image.source": source
        or (f"{ctx['server_url']}/{ctx['repository']}" if ctx["repository"] else ""),
        "org.opencontainers.image.revision": revision or ctx["sha"],
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.base.name": base,
        "dev.mlflow.run-id": run_id or info.run_id,
        "dev.mlflow.flavor": info.flavor,
        "dev.mlflow.model-sha256": model_sha,
        "io.github.mlops-actions.version": __version__,
    }
    labels = {k: v for k, v in labels.items() if v}
    out = Path(output_dir)
    with paths.output_dir(out, STAGE, "output-dir", {"model-dir": model_path}) as staging:
        chosen, reason, extra = choose_runtime(info, runtime, staging, check_data)
        if chosen == "onnx":
            requirements = onnx_requirements(requirements)
        labels["io.github.mlops-actions.runtime"] = chosen
        text = render_template(
            Path(template) if template else resource("Dockerfile.tmpl"),
            {
                "base_image": base,
                "flavor": info.flavor,
                "python_version": pyver,
                "port": int(port),
                "uid": UID,
                "ca_bundle": ca_path is not None,
                "labels": labels,
                "runtime": chosen,
            },
            "template",
        )
        (staging / "Dockerfile").write_text(text, encoding="utf-8")
        (staging / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        (staging / ".dockerignore").write_text(f"**/__pycache__\n**/*.pyc\n{paths.MARKER}\n", encoding="utf-8")
        shutil.copytree(
            resource("scripts/mlops_actions/serving"), staging / "serve", ignore=shutil.ignore_patterns("__pycache__")
        )
        model_files = [rel for rel in paths.tree_files(info.path, "model-dir") if "__pycache__" not in rel.split("/")]
        (staging / "model").mkdir()
        paths.copy_files(info.path, staging / "model", model_files, "model-dir")
        if ca_path is not None:
            shutil.copyfile(ca_path, staging / "ca-bundle.crt")
        model_info = {
            "flavor": info.flavor,
            "run_id": run_id or info.run_id,
            "model_sha256": model_sha,
            "model_uuid": info.model_uuid,
            "python_version": info.python_version,
            "version": version,
            "revision": labels.get("org.opencontainers.image.revision", ""),
            "created": created,
            "serving": f"mlops-actions {__version__}",
            "runtime": chosen,
            "runtime_reason": reason,
            **extra,
        }
        (staging / "model-info.json").write_text(
            json.dumps(model_info, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    return RenderResult(
        dockerfile=out / "Dockerfile",
        context=out,
        flavor=info.flavor,
        model_sha256=model_sha,
        runtime=chosen,
        runtime_reason=reason,
        requirements=requirements,
    )
