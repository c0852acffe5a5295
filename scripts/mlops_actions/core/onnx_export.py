"""ONNX conversion for the serving image (render-dockerfile ``runtime``), kept only when it is proven
equivalent to the native model.

sklearn models (pipelines included, TF-IDF on a text column too) go through skl2onnx, Keras models
through tf2onnx. The check runs both models on the model's input example and on a held-out sample
(``check_data``: a CSV with the signature's columns, or a ``.npy`` array for tensor models; for a
tensor model without one, seeded noisy copies of the input example) and requires equal class labels
(argmax for probability outputs) and probabilities/outputs within ``tolerance`` (absolute).
Any failure is a :class:`NotConvertible` with the reason, which the caller turns into a fallback to
the native runtime (``auto``) or an error (``onnx``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .modelinfo import ModelInfo

TOLERANCE = 1e-4
MAX_CHECK_ROWS = 2000
# MLflow column types → ONNX tensor element types understood by skl2onnx
_COLUMN_TYPES = {"string": "string", "double": "float64", "float": "float32", "long": "int64", "integer": "int64"}


class NotConvertible(Exception):
    """Why a model is not served through ONNX (one line, user-facing)."""


@dataclass
class Conversion:
    kind: str  # "table" (named columns, sklearn) or "tensor" (one array, Keras)
    inputs: list[dict]  # [{"name": onnx input, "column": signature column, "dtype": ...}]
    label: str = ""  # ONNX output holding class labels (sklearn classifiers)
    output: str = ""  # ONNX output returned as predictions when there is no label output
    classes: list = field(default_factory=list)
    checked_rows: int = 0
    max_abs_diff: float = 0.0
    check_source: str = ""

    def server_config(self) -> dict:
        return {"kind": self.kind, "inputs": self.inputs, "label": self.label, "output": self.output}

    def reason(self) -> str:
        return (
            f"ONNX equivalent to the native model on {self.checked_rows} rows ({self.check_source}): "
            f"labels equal, max |Δ| {self.max_abs_diff:.2e} ≤ {TOLERANCE:g}"
        )


def convert(
    info: ModelInfo, onnx_path: Path, check_data: Path | None = None, tolerance: float = TOLERANCE
) -> Conversion:
    """Write ``onnx_path`` and return what the server needs, or raise NotConvertible."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise NotConvertible(
            "onnxruntime is not installed where render-dockerfile runs (pip install 'mlops-actions[onnx]')"
        ) from exc
    from ..serving.server import Model

    try:
        native = Model(info.path)
    except Exception as exc:  # any load failure is a reason to stay native
        raise NotConvertible(
            f"the native model does not load here for the check ({exc.__class__.__name__}: {str(exc)[:120]})"
        ) from exc
    if native.flavor == "sklearn":
        return _convert_sklearn(info, native, Path(onnx_path), check_data, tolerance)
    if native.flavor in ("tensorflow", "keras"):
        return _convert_keras(info, native, Path(onnx_path), check_data, tolerance)
    raise NotConvertible(f"no ONNX converter for flavor '{native.flavor}'")


def _example_payload(info: ModelInfo):
    path = info.serving_example
    if path is None:
        raise NotConvertible("the model has no input example (serving_input_example.json) to check the conversion on")
    return json.loads(path.read_text(encoding="utf-8"))


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise NotConvertible(
            f"onnxruntime cannot load the converted model ({' '.join(str(exc).split())[:200]})"
        ) from exc


def _run(sess, feed: dict) -> list:
    try:
        return sess.run(None, feed)
    except Exception as exc:  # skl2onnx raises many kinds for unsupported pieces
        raise NotConvertible(f"onnxruntime fails on the check inputs ({' '.join(str(exc).split())[:200]})") from exc


# --- sklearn -------------------------------------------------------------------------------------


def _convert_sklearn(info: ModelInfo, native, onnx_path: Path, check_data: Path | None, tolerance: float) -> Conversion:
    import numpy as np
    import pandas as pd

    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType, StringTensorType
    except ImportError as exc:
        raise NotConvertible(
            "skl2onnx is not installed where render-dockerfile runs (pip install 'mlops-actions[onnx]')"
        ) from exc
    types = {
        "string": StringTensorType,
        "float64": DoubleTensorType,
        "float32": FloatTensorType,
        "int64": Int64TensorType,
    }
    if not native.columns:
        raise NotConvertible("the model signature names no input columns")
    inputs: list[dict] = []
    for col in native.columns:
        dtype = _COLUMN_TYPES.get(str(native.types.get(col)))
        if dtype is None:
            raise NotConvertible(
                f"input column '{col}' has type '{native.types.get(col)}', which the ONNX path does not map"
            )
        inputs.append({"name": _onnx_name(col, len(inputs)), "column": col, "dtype": dtype})
    model = native._model
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    is_classifier = hasattr(final, "classes_") and hasattr(model, "predict_proba")
    options: dict = {type(final): {"zipmap": False}} if is_classifier else {}
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    # lower-casing in ONNX Runtime needs a C++ locale; C.UTF-8 is built into glibc (no locales package)
    for vec in (TfidfVectorizer, CountVectorizer):
        options.setdefault(vec, {"locale": "C.UTF-8"})
    try:
        with _sublinear_tf_fix():
            proto = convert_sklearn(
                model,
                initial_types=[(i["name"], types[i["dtype"]]([None, 1])) for i in inputs],
                options=options or None,
            )
    except Exception as exc:
        raise _cannot_convert("skl2onnx", exc) from exc
    sess = _save(proto, onnx_path)
    outs = [o.name for o in sess.get_outputs()]
    label = outs[0] if is_classifier else ""
    proba = next((o for o in outs[1:] if "prob" in o.lower()), outs[1] if is_classifier and len(outs) > 1 else "")

    frames = [native.frame(_example_payload(info))]
    source = "input example"
    if check_data is not None:
        held = pd.read_csv(check_data, nrows=MAX_CHECK_ROWS)
        missing = [c for c in native.columns if c not in held.columns]
        if missing:
            raise NotConvertible(f"check data '{check_data}' lacks column(s) {', '.join(missing)}")
        frames.append(held[native.columns].dropna())
        source += f" + {len(frames[-1])} rows of {Path(check_data).name}"
    df = pd.concat(frames, ignore_index=True)
    feed = table_feed(inputs, {c: df[c].tolist() for c in native.columns})
    got = dict(zip(outs, _run(sess, feed), strict=True))
    diff = 0.0
    if is_classifier:
        want_labels = np.asarray(model.predict(df))
        got_labels = np.asarray(got[label]).ravel()
        if want_labels.shape != got_labels.shape or not all(
            a == b for a, b in zip(want_labels.tolist(), got_labels.tolist(), strict=False)
        ):
            bad = int(sum(a != b for a, b in zip(want_labels.tolist(), got_labels.tolist(), strict=False)))
            raise NotConvertible(
                f"the ONNX model predicts other labels than the native one on {bad} of {len(df)} check rows"
            )
        if proba:
            diff = float(
                np.abs(
                    np.asarray(model.predict_proba(df), dtype="float64") - np.asarray(got[proba], dtype="float64")
                ).max()
            )
    else:
        diff = float(
            np.abs(
                np.asarray(model.predict(df), dtype="float64").ravel()
                - np.asarray(got[outs[0]], dtype="float64").ravel()
            ).max()
        )
    if not diff <= tolerance:
        raise NotConvertible(
            f"ONNX outputs differ from the native model by up to {diff:.2e} (> tolerance {tolerance:g}) on the "
            "check rows"
        )
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(final, "classes_", [])] if is_classifier else []
    return Conversion(
        kind="table",
        inputs=inputs,
        label=label,
        output="" if is_classifier else outs[0],
        classes=classes,
        checked_rows=len(df),
        max_abs_diff=diff,
        check_source=source,
    )


def _cannot_convert(converter: str, exc: Exception) -> NotConvertible:
    return NotConvertible(
        f"{converter} cannot convert it ({exc.__class__.__name__}: {' '.join(str(exc).split())[:160]})"
    )


def _save(proto, onnx_path: Path):
    """Write the converted model (stable bytes) and open an ONNX Runtime session on it."""
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx_path.write_bytes(_stable_bytes(proto))
    return _session(onnx_path)


def _stable_bytes(proto) -> bytes:
    """The serialized model without what changes from one conversion to the next (the converters
    name the graph with a random UUID and list the opsets in set order), so the same model always
    gives the same file: a rerun rebuilds no image layer and keeps the digest."""
    proto.graph.name = "mlops-model"
    opsets = sorted((o.domain, o.version) for o in proto.opset_import)  # a set's order in the converter
    del proto.opset_import[:]
    for domain, version in opsets:
        entry = proto.opset_import.add()
        entry.domain, entry.version = domain, version
    return proto.SerializeToString()


@contextlib.contextmanager
def _sublinear_tf_fix():
    """skl2onnx 1.20 writes TF-IDF's ``sublinear_tf`` as log(tf + 1); scikit-learn computes
    1 + log(tf) for tf > 0 (0 stays 0). For counts that is log(max(tf, 1)) + min(tf, 1), which this
    swaps in for the two helpers the converter's sublinear branch (their only use) calls. The
    equivalence check still decides."""
    from skl2onnx.operator_converters import tfidf_transformer as mod

    state: dict = {}

    def add(scope, inputs, output, container, broadcast=None):
        state["x"], state["ones"] = inputs
        container.add_node("Max", list(inputs), output, name=scope.get_unique_operator_name("Max"))

    def log(scope, input_name, output, container):
        logged = scope.get_unique_variable_name("log_tf")
        capped = scope.get_unique_variable_name("min_tf_1")
        container.add_node("Log", input_name, logged, name=scope.get_unique_operator_name("Log"))
        container.add_node("Min", [state["x"], state["ones"]], capped, name=scope.get_unique_operator_name("Min"))
        container.add_node("Add", [logged, capped], output, name=scope.get_unique_operator_name("Add"))

    saved = mod.apply_add, mod.apply_log
    mod.apply_add, mod.apply_log = add, log
    try:
        yield
    finally:
        mod.apply_add, mod.apply_log = saved


def _onnx_name(column: str, index: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(column))
    return safe if safe and not safe[0].isdigit() else f"input_{index}"


def table_feed(inputs: list[dict], columns: dict) -> dict:
    """ONNX feeds (n, 1) arrays per input from column lists; shared with the server."""
    import numpy as np

    feed = {}
    for spec in inputs:
        values = columns[spec["column"]]
        if spec["dtype"] == "string":
            arr = np.array(["" if v is None else str(v) for v in values], dtype=object)
        else:
            arr = np.asarray(values, dtype=spec["dtype"])
        feed[spec["name"]] = arr.reshape(-1, 1)
    return feed


# --- Keras ---------------------------------------------------------------------------------------


def _convert_keras(info: ModelInfo, native, onnx_path: Path, check_data: Path | None, tolerance: float) -> Conversion:
    import numpy as np

    model = native._model
    if not hasattr(model, "predict") or not getattr(model, "inputs", None):
        raise NotConvertible(
            "the Keras model is a bare SavedModel (no .keras file), which the ONNX path does not convert"
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NotConvertible("the ONNX path serves single-input, single-output Keras models only")
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError as exc:
        raise NotConvertible(
            f"tf2onnx is not installed where render-dockerfile runs ({exc.name}); pip install 'mlops-actions[onnx]'"
        ) from exc
    example = native.frame(_example_payload(info))
    shape = tuple(model.input_shape)
    if example.ndim == len(shape) - 1:
        example = example[None, ...]
    spec = (tf.TensorSpec((None, *shape[1:]), tf.float32, name="input"),)
    fn = tf.function(lambda t: model(t, training=False), input_signature=spec)
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=17)
    except Exception as exc:
        raise _cannot_convert("tf2onnx", exc) from exc
    sess = _save(proto, onnx_path)
    batches = [example.astype("float32")]
    source = "input example"
    if check_data is not None:
        held = np.load(check_data)[:MAX_CHECK_ROWS].astype("float32")
        if held.shape[1:] != example.shape[1:]:
            raise NotConvertible(
                f"check data '{check_data}' has shape {held.shape}, the model takes (n, "
                f"{', '.join(map(str, shape[1:]))})"
            )
        batches.append(held)
        source += f" + {len(held)} arrays of {Path(check_data).name}"
    else:
        rng = np.random.default_rng(0)
        scale = float(np.abs(example).max() or 1.0) * 0.05
        batches.append((example + rng.normal(0, scale, example.shape)).astype("float32"))
        source += " + as many seeded noisy copies of it"
    x = np.concatenate(batches)
    want = np.asarray(model.predict(x, verbose=0), dtype="float64")
    got = np.asarray(_run(sess, {sess.get_inputs()[0].name: x})[0], dtype="float64")
    if want.shape != got.shape:
        raise NotConvertible(f"ONNX output shape {got.shape} differs from the native {want.shape}")
    if want.ndim == 2 and want.shape[1] > 1 and not np.array_equal(want.argmax(axis=1), got.argmax(axis=1)):
        raise NotConvertible("the ONNX model's top class differs from the native one on some check inputs")
    diff = float(np.abs(want - got).max())
    if not diff <= tolerance:
        raise NotConvertible(
            f"ONNX outputs differ from the native model by up to {diff:.2e} (> tolerance {tolerance:g}) on the "
            "check inputs"
        )
    name = sess.get_inputs()[0].name
    return Conversion(
        kind="tensor",
        inputs=[{"name": name, "column": "", "dtype": "float32"}],
        output=sess.get_outputs()[0].name,
        classes=list(native.classes or []),
        checked_rows=len(x),
        max_abs_diff=diff,
        check_source=source,
    )
