"""Facts about an MLflow model directory (the folder holding ``MLmodel``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import InputError

# Flavors the serving image loads with the flavor's own library, without mlflow (runtime "native";
# "onnx" models are served as they are by onnxruntime).
NATIVE_FLAVORS = ("sklearn", "tensorflow", "keras", "xgboost", "lightgbm", "onnx")
# Flavors render-dockerfile can convert to ONNX (runtime "onnx", core/onnx_export.py); pytorch
# models that do not convert are served by mlflow.pyfunc (they have no native loader).
ONNX_CONVERTIBLE = ("sklearn", "tensorflow", "keras", "pytorch")
# Any other model is served through mlflow.pyfunc (runtime "pyfunc") when it has that flavor section.
PYFUNC = "python_function"


@dataclass
class ModelInfo:
    path: Path
    flavors: dict
    flavor: str
    python_version: str
    model_uuid: str = ""
    run_id: str = ""
    signature: dict = field(default_factory=dict)
    has_input_example: bool = False
    mlflow_version: str = ""

    @property
    def has_pyfunc(self) -> bool:
        """The model can be loaded by ``mlflow.pyfunc.load_model`` (a python_function section)."""
        return isinstance(self.flavors.get(PYFUNC), dict)

    @property
    def serving_example(self) -> Path | None:
        p = self.path / "serving_input_example.json"
        return p if p.is_file() else None


def find_model_dir(root: Path) -> Path | None:
    """The shallowest directory below ``root`` (or root itself) that holds an ``MLmodel`` file."""
    root = Path(root)
    if (root / "MLmodel").is_file():
        return root
    candidates = sorted(root.rglob("MLmodel"), key=lambda p: (len(p.parts), str(p)))
    return candidates[0].parent if candidates else None


def read(model_dir: Path, input_name: str = "model-dir") -> ModelInfo:
    model_dir = Path(model_dir)
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise InputError(
            input_name,
            f"'{model_dir}' holds no MLmodel file",
            "point it at the model-path output of fetch-artifacts (the folder with MLmodel)",
        )
    try:
        data = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise InputError(
            input_name, f"'{mlmodel}' is not valid YAML ({exc.__class__.__name__})", "re-log the model with mlflow"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(input_name, f"'{mlmodel}' is not valid MLmodel YAML", "re-log the model with mlflow")
    flavors = data.get("flavors") or {}
    if not isinstance(flavors, dict) or not flavors:
        raise InputError(
            input_name, f"'{mlmodel}' declares no flavors", "re-log the model with mlflow.<flavor>.log_model"
        )
    if not all(isinstance(k, str) and isinstance(v, (dict, type(None))) for k, v in flavors.items()):
        raise InputError(
            input_name,
            f"'{mlmodel}' has a malformed flavors section (each flavor must be a name with a mapping)",
            "re-log the model with mlflow.<flavor>.log_model",
        )
    native = [f for f in flavors if f != "python_function"]
    flavor = native[0] if native else "python_function"
    pyver = str((flavors.get("python_function") or {}).get("python_version") or "")
    env_file = model_dir / "python_env.yaml"
    if env_file.is_file():
        try:
            env = yaml.safe_load(env_file.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            env = {}
        if isinstance(env, dict) and env.get("python"):
            pyver = str(env["python"])
    return ModelInfo(
        path=model_dir,
        flavors=flavors,
        flavor=flavor,
        python_version=pyver,
        model_uuid=str(data.get("model_uuid") or data.get("model_id") or ""),
        run_id=str(data.get("run_id") or ""),
        signature=signature if isinstance(signature := data.get("signature"), dict) else {},
        has_input_example=bool(data.get("saved_input_example_info")),
        mlflow_version=str(data.get("mlflow_version") or ""),
    )


def require_servable(info: ModelInfo, input_name: str = "model-dir") -> None:
    """The serving image can load the model: a native loader for its flavor, or mlflow.pyfunc."""
    if info.flavor not in NATIVE_FLAVORS and not info.has_pyfunc:
        raise InputError(
            input_name,
            f"model flavor '{info.flavor}' has no python_function flavor and no serving loader",
            f"log it with mlflow.pyfunc.log_model(python_model=...) or a supported flavor "
            f"({', '.join(NATIVE_FLAVORS)})",
        )


def tree_sha256(directory: Path) -> str:
    """A digest of a directory's files (relative paths and contents), stable across machines."""
    h = hashlib.sha256()
    directory = Path(directory)
    for p in sorted(q for q in directory.rglob("*") if q.is_file()):
        h.update(p.relative_to(directory).as_posix().encode() + b"\0")
        h.update(file_sha256(p).encode() + b"\n")
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
