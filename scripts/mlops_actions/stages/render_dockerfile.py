"""Stage 4, render-dockerfile: a build context (Dockerfile, requirements, server, model) for a model.

The output folder follows the stage rules of :mod:`mlops_actions.core.paths`: it is new, empty or an
earlier render-dockerfile output (marker ``.mlops-output``), never the workspace or checkout root,
never inside the model folder (nor the model folder inside it); it is replaced atomically. The
model folder is copied without following links: a symbolic link in it is refused, so no file of
the runner can reach the build context, and from there the pushed image.

A requirement pinning PyTorch's CPU build (``torch==2.5.1+cpu``, as mlflow logs a CPU install) is
only on PyTorch's own index: the rendered requirements.txt then starts with ``--extra-index-url
https://download.pytorch.org/whl/cpu`` (``MLOPS_TORCH_CPU_INDEX`` names a mirror instead), as
PyTorch's install guide tells pip users; without such a pin no index is added."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .. import __version__
from ..core import drift_reference, gha, git, images, modelinfo, paths
from ..core.errors import InputError
from ..core.paths import read_text_input, resource
from ..core.templating import render_template

STAGE = "render-dockerfile"

UID = 10001
# What the scoring server itself imports, besides the flavor's libraries.
SERVER_REQUIREMENTS = ("pyyaml", "pandas", "numpy")
# The process supervisor every image runs (serving/supervisor.py): the version its worker class
# and the fault tests were checked with (constraints.txt installs the same one for the tests).
GUNICORN = "gunicorn==26.2.0"
# Packages the model lists that serving does not need (the server loads models natively; the
# pyfunc runtime gets mlflow-skinny instead, at the model's mlflow version).
DROP = {"mlflow", "mlflow-skinny", "mlflow-tracing"}
RUNTIMES = ("auto", "native", "onnx", "pyfunc")
# What the ONNX runtime image installs: the server's own needs without pandas, plus onnxruntime.
ONNX_REQUIREMENTS = ("numpy", "pyyaml")
# What a native xgboost image keeps of the model's list: a Booster loads without scikit-learn (a
# scikit-learn wrapper, MLmodel model_class xgboost.sklearn.*, keeps scikit-learn too).
XGBOOST_KEEP = {"xgboost-cpu", "numpy", "scipy", *SERVER_REQUIREMENTS}
# What a native onnx-flavor image keeps: onnxruntime loads the file (no onnx package).
ONNX_FLAVOR_KEEP = {"onnxruntime", *SERVER_REQUIREMENTS}
# Debian packages the runtime stage installs when the image holds the Python package (the key):
# the lightgbm wheel links the system OpenMP library, which python:*-slim lacks.
SYSTEM_PACKAGES = {"lightgbm": ("libgomp1",)}
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+!-]*")  # a version from MLmodel, safe to pin with ==
# Build tools of python_env.yaml the builder never needs (its own pip, isolated builds).
BUILD_TOOLS = {"pip", "setuptools", "wheel"}
# Where the image holds its SBOM (CycloneDX JSON of /opt/venv, written by core/sbom.py in the builder).
SBOM_PATH = "/sbom.cdx.json"
# PyTorch's CPU wheels carry the local version +cpu (torch==2.5.1+cpu, torchvision==0.20.1+cpu, as
# mlflow logs them from a CPU install) and live on PyTorch's own index, not on PyPI: a pin like that
# puts the index in the rendered requirements.txt as an extra index (what PyTorch's install guide
# and pip users do). TORCH_CPU_INDEX_ENV names a mirror of it instead (an http(s) URL).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CPU_INDEX_ENV = "MLOPS_TORCH_CPU_INDEX"


@dataclass
class RenderResult:
    dockerfile: Path
    context: Path
    flavor: str
    model_sha256: str
    runtime: str = "native"
    runtime_reason: str = ""
    requirements: list[str] = field(default_factory=list)
    system_packages: list[str] = field(default_factory=list)
    challenger: dict = field(default_factory=dict)  # model-info.json's challenger section, if any
    drift_reference: str = ""  # what the drift profile holds; empty: no profile

    def outputs(self) -> dict[str, object]:
        return {
            "dockerfile": str(self.dockerfile),
            "context": str(self.context),
            "flavor": self.flavor,
            "model-sha256": self.model_sha256,
            "runtime": self.runtime,
            "runtime-reason": self.runtime_reason,
            "challenger-runtime": self.challenger.get("runtime", ""),
        }

    def summary(self) -> str:
        apt = f"\n\nsystem packages: `{' '.join(self.system_packages)}`" if self.system_packages else ""
        beside = ""
        if self.challenger:
            ch = self.challenger
            beside = (
                f"\n\nchallenger beside it (`{ch['flavor']}`, run `{ch.get('run_id', '')}`, sha256 "
                f"`{ch['model_sha256'][:12]}…`): runtime **{ch['runtime']}**: {ch['runtime_reason']}. "
                "Start the image with `SHADOW_RATIO` (scored by both, answered by the champion) or "
                "`CANARY_RATIO` (answered by the challenger); `/monitoring` compares them."
            )
        return (
            f"### 🐳 render-dockerfile\n`{self.dockerfile}` for a `{self.flavor}` model (sha256 "
            f"`{self.model_sha256[:12]}…`)\n\n"
            f"runtime **{self.runtime}**: {self.runtime_reason}{apt}{beside}"
            + (
                f"\n\ndrift reference profile: {self.drift_reference} (`/monitoring/drift`)"
                if self.drift_reference
                else ""
            )
        )


def _name(req: Requirement) -> str:
    return canonicalize_name(req.name)


def model_requirements(model_dir: Path, input_name: str = "model-dir") -> dict[str, Requirement]:
    """The model's requirements.txt, checked line by line, by canonical package name."""
    path = Path(model_dir) / "requirements.txt"
    lines = (
        read_text_input(path, input_name, "the model's requirements.txt (pip requirement lines)").splitlines()
        if path.is_file()
        else []
    )
    reqs: dict[str, Requirement] = {}
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
        reqs[_name(req)] = req
    return reqs


def mlflow_pin(model_dir: Path, mlflow_version: str = "", input_name: str = "model-dir") -> str:
    """``mlflow-skinny`` at the version the model pinned (its mlflow or mlflow-skinny line, else
    MLmodel's mlflow_version), the pyfunc runtime's only mlflow package."""
    listed = model_requirements(model_dir, input_name)
    for name in ("mlflow", "mlflow-skinny"):
        if name in listed and str(listed[name].specifier):
            return f"mlflow-skinny{listed[name].specifier}"
    return f"mlflow-skinny=={mlflow_version}" if _VERSION.fullmatch(mlflow_version) else "mlflow-skinny"


def _build_dependencies(model_dir: Path, input_name: str) -> dict[str, str]:
    """python_env.yaml's build_dependencies that serving may need: all but pip, setuptools and
    wheel (the builder has its own pip; pip builds an sdist in an isolated environment)."""
    path = Path(model_dir) / "python_env.yaml"
    if not path.is_file():
        return {}
    try:
        env = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return {}
    deps = env.get("build_dependencies") if isinstance(env, dict) else None
    out: dict[str, str] = {}
    for line in deps if isinstance(deps, list) else []:
        try:
            req = Requirement(str(line))
        except InvalidRequirement as exc:
            raise InputError(
                input_name,
                f"python_env.yaml build dependency '{str(line)[:60]}' is not a valid requirement",
                "use the form name==version",
            ) from exc
        if req.url:
            raise InputError(
                input_name,
                f"python_env.yaml build dependency '{str(line)[:60]}' points at a URL",
                "pin a released package version instead",
            )
        if _name(req) not in BUILD_TOOLS:
            out[_name(req)] = str(req)
    return out


def serving_requirements(
    model_dir: Path,
    flavor: str,
    input_name: str = "model-dir",
    *,
    runtime: str = "native",
    mlflow_version: str = "",
    flavor_version: str = "",
    model_class: str = "",
) -> list[str]:
    """What the image installs for ``runtime`` (native or pyfunc; onnx: :func:`onnx_requirements`
    of the native list), from the model's requirements.txt, checked line by line:

    - always: no mlflow (pyfunc: ``mlflow-skinny`` at the model's mlflow version instead), the
      server's own pyyaml/pandas/numpy, ``tensorflow-cpu`` over ``tensorflow`` and ``xgboost-cpu``
      at the version of ``xgboost`` (the CPU wheel bundles libgomp; no nvidia-nccl);
    - native xgboost: only the booster's needs (xgboost-cpu, numpy, scipy, the server's; and
      scikit-learn when ``model_class``, MLmodel's, is a scikit-learn wrapper such as XGBClassifier);
    - native onnx flavor: onnxruntime (the model's pin, else the one here), no onnx package;
    - pyfunc: everything else the model lists, plus python_env.yaml build dependencies other
      than pip/setuptools/wheel.

    ``flavor_version``: the flavor library's version from MLmodel, the pin when the model lists none."""
    listed = model_requirements(model_dir, input_name)
    reqs = {name: str(req) for name, req in listed.items() if name not in DROP}
    if "tensorflow-cpu" in reqs:
        reqs.pop("tensorflow", None)  # mlflow lists both; the CPU wheel is the lean one
    if "xgboost" in listed:
        cpu = listed["xgboost"]
        cpu.name = "xgboost-cpu"
        reqs.pop("xgboost")
        reqs.setdefault("xgboost-cpu", str(cpu))  # a model's own xgboost-cpu line wins
    pin = f"=={flavor_version}" if _VERSION.fullmatch(flavor_version) else ""
    if runtime == "pyfunc":
        reqs["mlflow-skinny"] = mlflow_pin(model_dir, mlflow_version, input_name)
        for name, line in _build_dependencies(model_dir, input_name).items():
            reqs.setdefault(name, line)
    elif flavor == "xgboost":
        wrapper = sklearn_wrapper(model_class)
        reqs = {k: v for k, v in reqs.items() if k in XGBOOST_KEEP or (wrapper and k == "scikit-learn")}
        reqs.setdefault("xgboost-cpu", f"xgboost-cpu{pin}")
        if wrapper:
            reqs.setdefault("scikit-learn", "scikit-learn")
    elif flavor == "lightgbm":
        reqs.setdefault("lightgbm", f"lightgbm{pin}")
    elif flavor == "onnx":
        reqs = {k: v for k, v in reqs.items() if k in ONNX_FLAVOR_KEEP}
        reqs.setdefault("onnxruntime", _local_pin("onnxruntime"))
    for name in SERVER_REQUIREMENTS:
        reqs.setdefault(name, name)
    reqs["gunicorn"] = GUNICORN
    if flavor == "sklearn":
        reqs.setdefault("scikit-learn", "scikit-learn")
        reqs.setdefault("cloudpickle", "cloudpickle")
    return [reqs[k] for k in sorted(reqs)]


def sklearn_wrapper(model_class: str) -> bool:
    """An xgboost model_class that needs scikit-learn to load (not a Booster; none means Booster)."""
    return bool(model_class) and not model_class.endswith(".Booster")


def image_requirements(info: modelinfo.ModelInfo, chosen: str, input_name: str = "model-dir") -> list[str]:
    """What the image installs to serve ``info`` with runtime ``chosen``."""
    conf = info.flavors.get(info.flavor) or {}
    requirements = serving_requirements(
        info.path,
        info.flavor,
        input_name,
        runtime="pyfunc" if chosen == "pyfunc" else "native",
        mlflow_version=info.mlflow_version,
        flavor_version=str(conf.get("xgb_version") or conf.get("lgb_version") or ""),
        model_class=str(conf.get("model_class") or "") if info.flavor == "xgboost" else "",
    )
    return onnx_requirements(requirements) if chosen == "onnx" else requirements


def cpu_local_pins(requirements: list[str]) -> list[str]:
    """The lines pinning a ``+cpu`` local version (``torch==2.5.1+cpu``, ``+cpu.cxx11.abi``)."""
    from packaging.version import InvalidVersion, Version

    found = []
    for line in requirements:
        for spec in Requirement(line).specifier:
            with contextlib.suppress(InvalidVersion):
                local = Version(spec.version).local if spec.operator in ("==", "===") else None
                if local == "cpu" or str(local or "").startswith("cpu."):
                    found.append(line)
                    break
    return found


def pip_options(requirements: list[str]) -> list[str]:
    """The option lines the rendered requirements.txt starts with: PyTorch's CPU index as an extra
    index when a requirement pins a ``+cpu`` build (no index otherwise); ``MLOPS_TORCH_CPU_INDEX``
    replaces the URL (a mirror)."""
    if not cpu_local_pins(requirements):
        return []
    url = os.environ.get(TORCH_CPU_INDEX_ENV, "").strip() or TORCH_CPU_INDEX
    if not re.fullmatch(r"https?://[^\s'\"\\]+", url):
        raise InputError(
            TORCH_CPU_INDEX_ENV,
            f"'{url[:80]}' is not an http(s) URL",
            f"give the URL of PyTorch's CPU wheel index or a mirror of it, or unset it ({TORCH_CPU_INDEX})",
        )
    return [f"--extra-index-url {url}"]


def merge_requirements(champion: list[str], challenger: list[str]) -> list[str]:
    """One list serving both models: a pinned line wins over a bare name; two different pins of
    one package are an InputError on challenger-dir (one environment cannot hold both)."""
    merged = {_name(Requirement(r)): r for r in champion}
    for line in challenger:
        name = _name(Requirement(line))
        mine = merged.get(name)
        if mine is None or not Requirement(mine).specifier:
            merged[name] = line
        elif Requirement(line).specifier and Requirement(line).specifier != Requirement(mine).specifier:
            raise InputError(
                "challenger-dir",
                f"the champion needs '{mine}' and the challenger '{line}'; one image cannot hold both",
                f"log both models with the same {name} version, or build them as two images",
            )
    return [merged[k] for k in sorted(merged)]


def system_packages(requirements: list[str]) -> list[str]:
    """Debian packages the runtime stage needs for these requirements (lightgbm: libgomp1)."""
    names = {_name(Requirement(r)) for r in requirements}
    return sorted({pkg for name in names for pkg in SYSTEM_PACKAGES.get(name, ())})


def _local_pin(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name}=={version(name)}"
    except PackageNotFoundError:
        return name


def onnx_requirements(native: list[str]) -> list[str]:
    """The ONNX image's requirements: onnxruntime at the version the equivalence check ran with,
    numpy and pyyaml (pinned as the model pinned them, if it did); no pandas, no flavor library."""
    pinned = {_name(Requirement(r)): r for r in native}
    reqs = {"onnxruntime": _local_pin("onnxruntime"), "gunicorn": GUNICORN}
    for name in ONNX_REQUIREMENTS:
        reqs[name] = pinned.get(name, name)
    return [reqs[k] for k in sorted(reqs)]


def choose_runtime(info: modelinfo.ModelInfo, runtime: str, staging: Path, check_data: str) -> tuple[str, str, dict]:
    """(runtime, reason, model-info additions) for ``runtime`` auto, native, onnx or pyfunc.

    auto: sklearn/Keras/TensorFlow → ONNX when the conversion passes the equivalence check, else
    native; pytorch with a float32 tensor signature → ONNX (torch.onnx, where torch is installed)
    when it passes that check, else pyfunc; xgboost/lightgbm → native (ONNX for boosters is not
    attempted); onnx flavor → native (onnxruntime, as it is); any other model with a
    python_function flavor → pyfunc. A runtime the
    model cannot have is an InputError on ``runtime``; ``onnx`` that cannot be proven equivalent too."""
    flavor = info.flavor
    if runtime == "pyfunc":
        if not info.has_pyfunc:
            raise InputError(
                "runtime",
                f"'pyfunc' needs a python_function flavor; this '{flavor}' model has none",
                "use runtime 'auto' or 'native'",
            )
        return "pyfunc", f"runtime 'pyfunc' asked for: mlflow.pyfunc with {_skinny(info)}", {}
    if runtime == "native":
        if flavor not in modelinfo.NATIVE_FLAVORS:
            raise InputError(
                "runtime",
                f"'native' has no loader for model flavor '{flavor}' (native: {', '.join(modelinfo.NATIVE_FLAVORS)})",
                "use runtime 'auto' or 'pyfunc' (mlflow.pyfunc in the image)",
            )
        return "native", "runtime 'native' asked for", {}
    if flavor not in modelinfo.ONNX_CONVERTIBLE:
        if runtime == "onnx":
            if flavor == "onnx":
                why, fix = (
                    "it is an ONNX model already",
                    "use runtime 'auto' or 'native' (onnxruntime serves it as it is)",
                )
            else:
                other = "'native'" if flavor in modelinfo.NATIVE_FLAVORS else "'pyfunc'"
                why, fix = f"no ONNX converter for flavor '{flavor}'", f"use runtime 'auto' or {other}"
            raise InputError("runtime", f"'onnx' is not possible for this model: {why}", fix)
        chosen, reason = AUTO.get(flavor) or _auto_xgboost(info) or _auto_pyfunc(info)
        return chosen, reason, {}
    return _try_onnx(info, runtime, staging, check_data)


# What auto picks, and why, for the flavors served natively without an ONNX attempt.
AUTO = {
    "lightgbm": (
        "native",
        "native lightgbm (libgomp1 from apt): no mlflow in the image; ONNX for boosters is not attempted yet",
    ),
    "onnx": ("native", "ONNX model: served as it is by onnxruntime (no mlflow, no onnx package)"),
}


def _auto_xgboost(info: modelinfo.ModelInfo) -> tuple[str, str] | None:
    if info.flavor != "xgboost":
        return None
    model_class = str((info.flavors.get("xgboost") or {}).get("model_class") or "")
    if sklearn_wrapper(model_class):
        name = model_class.rpartition(".")[2]
        what = f"native xgboost {name} (xgboost-cpu, scikit-learn wrapper): no mlflow in the image"
    else:
        what = "native xgboost booster (xgboost-cpu): no mlflow, no scikit-learn in the image"
    return "native", f"{what}; ONNX for boosters is not attempted yet"


def _auto_pyfunc(info: modelinfo.ModelInfo) -> tuple[str, str]:
    if info.flavor == modelinfo.PYFUNC:
        return "pyfunc", f"custom python_function model: mlflow.pyfunc with {_skinny(info)}"
    return "pyfunc", f"no lean loader for flavor '{info.flavor}': mlflow.pyfunc with {_skinny(info)}"


def _skinny(info: modelinfo.ModelInfo) -> str:
    return mlflow_pin(info.path, info.mlflow_version).replace("==", " ", 1)


def _try_onnx(info: modelinfo.ModelInfo, runtime: str, staging: Path, check_data: str) -> tuple[str, str, dict]:
    """``onnx`` that cannot be proven equivalent raises; ``auto`` falls back to ``native`` (pyfunc for
    a flavor without a native loader, pytorch) with the reason."""
    from ..core import onnx_export

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
        fallback = "native" if info.flavor in modelinfo.NATIVE_FLAVORS else "pyfunc"
        if runtime == "onnx":
            raise InputError(
                "runtime",
                f"'onnx' is not possible for this model: {exc}",
                f"use runtime 'auto' (falls back to {fallback}) or '{fallback}'",
            ) from exc
        if fallback == "pyfunc":
            return "pyfunc", f"ONNX not used: {exc}; mlflow.pyfunc with {_skinny(info)}", {}
        return "native", f"ONNX not used: {exc}", {}
    extra = {
        "onnx": {**conv.server_config(), "path": "/app/model.onnx"},
        "classes": conv.classes,
        "onnx_check": {
            "rows": conv.checked_rows,
            "max_abs_diff": conv.max_abs_diff,
            "tolerance": onnx_export.TOLERANCE,
            "source": conv.check_source,
            "rows_by_source": conv.rows_by_source,
            "max_diff_at": conv.max_diff_at,
            "labels_compared": conv.labels_compared,
        },
    }
    return "onnx", conv.reason(), extra


def _readable_check_data(check: Path, input_name: str = "onnx-check-data") -> None:
    """A sample (held-out rows for the equivalence check, or the drift reference) must parse as
    what it claims to be (a .npy array, else a UTF-8 CSV) before it is read: a binary or broken
    file is one line naming the input."""
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
            input_name,
            f"'{check}' cannot be read as a sample ({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})",
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
    challenger_dir: str | os.PathLike[str] = "",
    reference_data: str = "",
) -> RenderResult:
    """Write the build context for ``model_dir`` to ``output_dir`` (replaced atomically).

    ``runtime``: ``native`` (this function's default, as before the option existed: the flavor's own
    library, for sklearn, tensorflow, keras, xgboost, lightgbm and onnx models), ``onnx`` (ONNX
    Runtime, or InputError when the model does not convert or fails the equivalence check),
    ``pyfunc`` (mlflow.pyfunc with mlflow-skinny, any model with a python_function flavor) or
    ``auto`` (the CLI's and the action's default: see :func:`choose_runtime`; the reason is kept).
    ``check_data``: a held-out sample for that check (CSV for table models, .npy for tensor models).
    ``challenger_dir``: a second model baked in beside the champion (``/app/challenger``, its runtime
    chosen the same way), for shadow and canary traffic (the server's SHADOW_RATIO, CANARY_RATIO).
    ``reference_data``: a sample of the training data (CSV, or .npy for a tensor model) whose
    profile (``drift-profile.json``: bins and shares, no rows) the server compares traffic with."""
    runtime = (runtime or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise InputError("runtime", f"'{runtime}' is not a runtime", f"use one of: {', '.join(RUNTIMES)}")
    model_path = Path(model_dir)
    if model_path.is_dir():
        paths.tree_files(model_path, "model-dir")  # a link in the model folder never reaches the image
    info = modelinfo.read(model_path, "model-dir")
    modelinfo.require_servable(info, "model-dir")
    challenger = _challenger(challenger_dir)
    inputs = {"model-dir": model_path, **({"challenger-dir": challenger.path} if challenger else {})}
    paths.claim_output(output_dir, STAGE, "output-dir", inputs)
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
    model_requirements(info.path)  # a bad requirements.txt fails before any conversion
    reference = _reference(reference_data)
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
    if challenger:
        labels["io.github.mlops-actions.challenger.run-id"] = challenger.run_id
        labels["io.github.mlops-actions.challenger.model-sha256"] = modelinfo.tree_sha256(challenger.path)
    labels = {k: v for k, v in labels.items() if v}
    out = Path(output_dir)
    ch_section: dict = {}
    with paths.output_dir(out, STAGE, "output-dir", inputs) as staging:
        chosen, reason, extra = choose_runtime(info, runtime, staging, check_data)
        requirements = image_requirements(info, chosen)
        if challenger:
            ch_section, ch_requirements = _stage_challenger(challenger, runtime, staging, check_data)
            requirements = merge_requirements(requirements, ch_requirements)
        apt = system_packages(requirements)
        labels["io.github.mlops-actions.runtime"] = chosen
        drift_note = ""
        if reference is not None:
            built, drift_note = drift_reference.build(info, reference)
            (staging / "drift-profile.json").write_text(json.dumps(built, indent=1) + "\n", encoding="utf-8")
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
                "system_packages": apt,
                "challenger": bool(challenger),
                "challenger_onnx": ch_section.get("runtime") == "onnx",
                "drift_profile": reference is not None,
                "sbom_path": SBOM_PATH,
            },
            "template",
        )
        (staging / "Dockerfile").write_text(text, encoding="utf-8")
        lines = pip_options(requirements) + requirements
        (staging / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (staging / ".dockerignore").write_text(f"**/__pycache__\n**/*.pyc\n{paths.MARKER}\n", encoding="utf-8")
        shutil.copytree(
            resource("scripts/mlops_actions/serving"), staging / "serve", ignore=shutil.ignore_patterns("__pycache__")
        )
        # the SBOM generator the builder stage runs with the image's venv (standard library only)
        shutil.copyfile(resource("scripts/mlops_actions/core/sbom.py"), staging / "sbom.py")
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
            "system_packages": apt,
            **extra,
            **({"challenger": ch_section} if ch_section else {}),
            **({"drift_reference": drift_note} if reference is not None else {}),
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
        system_packages=apt,
        challenger=ch_section,
        drift_reference=drift_note,
    )


def _reference(reference_data: str) -> Path | None:
    """The drift reference sample (input reference-data), checked readable, or None."""
    if not str(reference_data).strip():
        return None
    path = Path(reference_data)
    if not path.is_file():
        raise InputError(
            "reference-data",
            f"'{reference_data}' not found",
            "give a CSV sample of the training data (a .npy array for a tensor model), or leave it empty",
        )
    _readable_check_data(path, "reference-data")
    return path


def _challenger(challenger_dir: str | os.PathLike[str]) -> modelinfo.ModelInfo | None:
    """The challenger model, checked as the champion is (input challenger-dir), or None."""
    if not str(challenger_dir).strip():
        return None
    path = Path(challenger_dir)
    if path.is_dir():
        paths.tree_files(path, "challenger-dir")
    ch = modelinfo.read(path, "challenger-dir")
    modelinfo.require_servable(ch, "challenger-dir")
    model_requirements(ch.path, "challenger-dir")
    return ch


def _stage_challenger(ch: modelinfo.ModelInfo, runtime: str, staging: Path, check_data: str) -> tuple[dict, list[str]]:
    """Put the challenger in the context (``challenger/``, ``challenger.onnx``): its model-info
    section and what the image must install for it."""
    work = staging / ".challenger"
    work.mkdir()
    chosen, reason, extra = choose_runtime(ch, runtime, work, check_data)
    if chosen == "onnx":
        (work / "model.onnx").rename(staging / "challenger.onnx")
        extra["onnx"]["path"] = "/app/challenger.onnx"
    shutil.rmtree(work)
    files = [rel for rel in paths.tree_files(ch.path, "challenger-dir") if "__pycache__" not in rel.split("/")]
    (staging / "challenger").mkdir()
    paths.copy_files(ch.path, staging / "challenger", files, "challenger-dir")
    section = {
        "flavor": ch.flavor,
        "run_id": ch.run_id,
        "model_sha256": modelinfo.tree_sha256(ch.path),
        "model_uuid": ch.model_uuid,
        "path": "challenger",
        "runtime": chosen,
        "runtime_reason": reason,
        **extra,
    }
    return section, image_requirements(ch, chosen, "challenger-dir")
