"""ONNX conversion for the serving image (render-dockerfile ``runtime``), kept only when it is proven
equivalent to the native model.

sklearn models (pipelines included, TF-IDF on a text column too) go through skl2onnx, Keras models
through tf2onnx, pytorch models with one float32 tensor input through torch.onnx (torch.export's
exporter where onnxscript is installed, else the TorchScript one; torch must be installed where
render-dockerfile runs), checked against ``mlflow.pyfunc``, which serves them otherwise. The check
runs both models on three samples and requires equal class labels (argmax for probability outputs)
and probabilities/outputs within ``tolerance`` (absolute) on every row:

- the model's input example (``serving_input_example.json`` or ``input_example.json``);
- :data:`SYNTHESIZED_ROWS` rows synthesized around it, seeded (the same sample in every run): for a
  table model, per signature column type — numbers spread over and beyond the example's range, with
  jitter, 0 and the example's own values (integers stay integers, non-negative columns stay
  non-negative); strings recombined from the example's words and the model's vocabulary (shuffled,
  subsets, repeats, unseen words, other cases, empty); a column a fitted encoder of the model knows
  mostly takes its categories (rows the native model rejects, like an unknown category, are left out
  and replaced); booleans both ways — so a conversion that is exact on two example rows and wrong
  a little further away (float32 thresholds on large numbers, a tokenizer edge case) is caught; for
  a tensor model, noisy copies of the example at a few scales;
- the held-out sample ``check_data`` when given (a CSV with the signature's columns, or a ``.npy``
  array for tensor models), up to :data:`MAX_CHECK_ROWS` rows.

Any failure is a :class:`NotConvertible` naming the first disagreeing row (its sample and values),
which the caller turns into a fallback to the native runtime (``auto``) or an error (``onnx``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from .modelinfo import ModelInfo

TOLERANCE = 1e-4
MAX_CHECK_ROWS = 2000
SYNTHESIZED_ROWS = 500  # rows synthesized around the input example (fewer for large tensors)
SEED = 0
_MAX_TENSOR_VALUES = 20_000_000  # caps the synthesized tensor sample (~80 MB of float32)
# the names of the samples in rows_by_source, in the order they are checked
EXAMPLE, SYNTHESIZED, CHECK_DATA = "example", "synthesized", "check data"
# MLflow column types → ONNX tensor element types understood by skl2onnx
_COLUMN_TYPES = {"string": "string", "double": "float64", "float": "float32", "long": "int64", "integer": "int64"}


class NotConvertible(Exception):
    """Why a model is not served through ONNX (one line, user-facing)."""

    # when the equivalence check fails: rows_by_source, label_mismatches, max_abs_diff (the largest
    # difference seen), row (the first disagreeing row, as the message names it)
    details: dict | None = None


@dataclass
class Conversion:
    kind: str  # "table" (named columns, sklearn) or "tensor" (one array, Keras)
    inputs: list[dict]  # [{"name": onnx input, "column": signature column, "dtype": ...}]
    label: str = ""  # ONNX output holding class labels (sklearn classifiers)
    output: str = ""  # ONNX output returned as predictions when there is no label output
    classes: list = field(default_factory=list)
    checked_rows: int = 0
    max_abs_diff: float = 0.0
    check_source: str = ""  # e.g. "2 example, 500 synthesized around it, 10 held-out from x.csv"
    rows_by_source: dict[str, int] = field(default_factory=dict)  # {EXAMPLE: 2, SYNTHESIZED: 500, CHECK_DATA: 10}
    max_diff_at: str = ""  # where max_abs_diff was, e.g. "synthesized row 17, probability of class 1"
    label_mismatches: int = 0  # always 0 in a Conversion (any mismatch is NotConvertible)
    labels_compared: bool = False  # class labels (or the top class) were compared, not only outputs
    tolerance: float = TOLERANCE

    def server_config(self) -> dict:
        return {"kind": self.kind, "inputs": self.inputs, "label": self.label, "output": self.output}

    def reason(self) -> str:
        labels = "labels equal, " if self.labels_compared else ""
        where = f" ({self.max_diff_at})" if self.max_diff_at else ""
        return (
            f"ONNX equivalent to the native model on {self.checked_rows} rows ({self.check_source}): "
            f"{labels}max |Δ| {self.max_abs_diff:.1e} ≤ {self.tolerance:.0e}{where}"
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
    if info.flavor == "pytorch":  # no native loader in the server: checked against mlflow.pyfunc
        return _convert_pytorch(info, Path(onnx_path), check_data, tolerance)
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
    """The input example as a scoring payload: the serving example MLflow writes next to the model
    (``saved_input_example_info``), else ``serving_input_example.json``, else the raw example
    (``input_example.json``: a pandas ``split``/``records`` frame or ``{"inputs": ...}``)."""
    import yaml

    try:
        meta = yaml.safe_load((info.path / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        meta = {}
    saved = meta.get("saved_input_example_info") if isinstance(meta, dict) else None
    saved = saved if isinstance(saved, dict) else {}
    candidates = [(saved.get("serving_input_path"), True), ("serving_input_example.json", True)]
    candidates += [(saved.get("artifact_path"), False), ("input_example.json", False)]
    for name, serving in candidates:
        if not isinstance(name, str) or not name or ".." in Path(name).parts or Path(name).is_absolute():
            continue
        path = info.path / name
        if not path.is_file():
            continue
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise NotConvertible(f"the input example {name} is not readable JSON ({exc.__class__.__name__})") from exc
        if serving:
            return payload
        if isinstance(payload, dict) and "columns" in payload and "data" in payload:
            return {"dataframe_split": payload}
        if isinstance(payload, list) and payload and all(isinstance(r, dict) for r in payload):
            return {"dataframe_records": payload}
        return payload if isinstance(payload, dict) else {"inputs": payload}
    raise NotConvertible(
        "the model has no input example (serving_input_example.json) to check the conversion on; "
        "log it with input_example="
    )


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4  # a failing check input is the NotConvertible line, not an onnxruntime log
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
        found = [p for p in _parts(model) if type(p) is vec]
        if found and all(_default_words(p) for p in found):
            # skl2onnx splits on a few separators unless told the pattern: single letters ("a", "I")
            # then become words and break bigrams, and accented words split. sklearn's default
            # (?u)\b\w\w+\b in RE2 (Python's Unicode \w is letters, numbers and _):
            options[vec] = {**options[vec], "tokenexp": r"[\p{L}\p{N}_]{2,}"}
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

    example = _example_frame(native, info)
    samples = [_Sample(EXAMPLE, example, [f"example row {i}" for i in range(len(example))])]
    synth, rejected = _synthesized(model, example, _signature_types(info, native), with_proba=bool(proba))
    samples.append(_Sample(SYNTHESIZED, synth, [f"synthesized row {i}" for i in synth.index]))
    if check_data is not None:
        held = pd.read_csv(check_data, nrows=MAX_CHECK_ROWS)
        missing = [c for c in native.columns if c not in held.columns]
        if missing:
            raise NotConvertible(f"check data '{check_data}' lacks column(s) {', '.join(missing)}")
        held = held[native.columns].dropna()
        samples.append(_Sample(CHECK_DATA, held, [f"{Path(check_data).name} line {i + 2}" for i in held.index]))
    df = pd.concat([s.rows for s in samples], ignore_index=True)
    feed = table_feed(inputs, {c: df[c].tolist() for c in native.columns})
    got = dict(zip(outs, _run(sess, feed), strict=True))
    check = _Check(samples, lambda i: _row_values(df, i), tolerance)
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(final, "classes_", [])] if is_classifier else []
    with _quiet():
        try:
            want_labels = model.predict(df)
            want_proba = model.predict_proba(df) if proba else None
        except Exception as exc:  # the synthesized rows were screened: the example or check data fails
            raise NotConvertible(
                f"the native model fails on the example or check rows ({exc.__class__.__name__}: "
                f"{' '.join(str(exc).split())[:120]})"
            ) from exc
    if is_classifier:
        check.labels(want_labels, got[label])
        if proba:
            check.outputs(want_proba, got[proba], [f"probability of class {c!r}" for c in classes])
    else:
        check.outputs(want_labels, got[outs[0]], [f"output '{outs[0]}'"])
    return Conversion(
        kind="table",
        inputs=inputs,
        label=label,
        output="" if is_classifier else outs[0],
        classes=classes,
        checked_rows=len(df),
        check_source=_describe(samples, f"synthesized around it{_left_out(rejected)}", check_data),
        **check.result(),
    )


def _default_words(vectorizer) -> bool:
    """The vectorizer splits words with sklearn's default pattern (no custom tokenizer/analyzer)."""
    return (
        getattr(vectorizer, "analyzer", None) == "word"
        and getattr(vectorizer, "tokenizer", None) is None
        and getattr(vectorizer, "token_pattern", None) == r"(?u)\b\w\w+\b"
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
    example = _example_frame(native, info)
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
    samples = _tensor_samples(example.astype("float32"), check_data, shape)
    x = np.concatenate([s.rows for s in samples])
    want = np.asarray(model.predict(x, verbose=0), dtype="float64")
    return Conversion(
        kind="tensor",
        inputs=[{"name": sess.get_inputs()[0].name, "column": "", "dtype": "float32"}],
        output=sess.get_outputs()[0].name,
        classes=list(native.classes or []),
        checked_rows=len(x),
        check_source=_describe(samples, "seeded noisy copies of it", check_data),
        **_tensor_check(sess, samples, x, want, tolerance),
    )


def _tensor_samples(example, check_data: Path | None, shape) -> list[_Sample]:
    """The check samples of a one-tensor model (float32): the example, seeded noisy copies of it
    (:data:`SYNTHESIZED_ROWS`, fewer for large tensors) and the held-out ``.npy`` rows, if given."""
    import numpy as np

    per_row = int(np.prod(example.shape[1:], dtype="int64")) or 1
    synth = synthesize_tensor(example, max(16, min(SYNTHESIZED_ROWS, _MAX_TENSOR_VALUES // per_row)))
    samples = [
        _Sample(EXAMPLE, example, [f"example row {i}" for i in range(len(example))]),
        _Sample(SYNTHESIZED, synth, [f"synthesized row {i}" for i in range(len(synth))]),
    ]
    if check_data is not None:
        held = np.load(check_data)[:MAX_CHECK_ROWS].astype("float32")
        if held.shape[1:] != example.shape[1:]:
            raise NotConvertible(
                f"check data '{check_data}' has shape {held.shape}, the model takes (n, "
                f"{', '.join(map(str, shape[1:]))})"
            )
        samples.append(_Sample(CHECK_DATA, held, [f"{Path(check_data).name} row {i}" for i in range(len(held))]))
    return samples


# --- PyTorch -------------------------------------------------------------------------------------


def _tensor_signature(info: ModelInfo) -> list:
    """The shape of the model's one float32 input tensor (``[-1, 4]``), or NotConvertible: the ONNX
    path serves one unnamed-or-named float32 tensor in, one tensor out, no params."""
    try:
        spec = json.loads((info.signature or {}).get("inputs") or "null")
    except (TypeError, ValueError):
        spec = None
    if not isinstance(spec, list) or not spec:
        raise NotConvertible("the model has no input signature (log it with input_example= or signature=)")
    if len(spec) != 1 or not isinstance(spec[0], dict) or spec[0].get("type") != "tensor":
        what = "columns" if all(isinstance(s, dict) and s.get("type") != "tensor" for s in spec) else "several tensors"
        raise NotConvertible(f"the ONNX path exports pytorch models with one tensor input; the signature has {what}")
    tensor = spec[0].get("tensor-spec") or {}
    shape = tensor.get("shape")
    if tensor.get("dtype") != "float32":
        raise NotConvertible(f"the input tensor is {tensor.get('dtype')}; the ONNX path serves float32 tensors")
    if not isinstance(shape, list) or len(shape) < 2 or not all(isinstance(d, int) for d in shape):
        raise NotConvertible(f"the input tensor's shape {shape} is not (batch, ...)")
    if (info.signature or {}).get("params"):
        raise NotConvertible("the signature declares params (forward() arguments), which an ONNX graph cannot take")
    return shape


def _convert_pytorch(info: ModelInfo, onnx_path: Path, check_data: Path | None, tolerance: float) -> Conversion:
    """torch.onnx export of a pytorch-flavor model, checked against ``mlflow.pyfunc`` (what the
    generic path would serve) on the same samples as a Keras model."""
    import numpy as np

    shape = _tensor_signature(info)
    try:
        torch = importlib.import_module("torch")  # optional, untyped here: CI's mypy runs without it
    except ImportError as exc:
        raise NotConvertible(
            "torch is not installed where render-dockerfile runs (the export needs it: pip install torch "
            "--index-url https://download.pytorch.org/whl/cpu)"
        ) from exc
    try:
        import mlflow.pyfunc

        with _quiet():
            pyfunc = mlflow.pyfunc.load_model(str(info.path))
        module = pyfunc.get_raw_model()
    except Exception as exc:  # any load failure is a reason to stay on the generic path
        raise NotConvertible(
            f"the pytorch model does not load here for the export ({exc.__class__.__name__}: "
            f"{' '.join(str(exc).split())[:120]})"
        ) from exc
    payload = _example_payload(info)
    data = payload.get("inputs", payload.get("instances")) if isinstance(payload, dict) else None
    if isinstance(data, dict) and len(data) == 1:
        data = next(iter(data.values()))
    try:
        example = np.asarray(data, dtype="float32")
    except (TypeError, ValueError) as exc:
        raise NotConvertible(f"the input example is not a float32 tensor ({exc.__class__.__name__})") from exc
    if example.ndim == len(shape) - 1:
        example = example[None, ...]
    if example.ndim != len(shape) or any(d not in (-1, n) for d, n in zip(shape[1:], example.shape[1:], strict=True)):
        raise NotConvertible(f"the input example has shape {list(example.shape)}, the signature {shape}")
    proto, how = _torch_export(torch, module, example, shape)
    sess = _save(proto, onnx_path)
    if len(sess.get_inputs()) != 1 or len(sess.get_outputs()) != 1:
        raise NotConvertible(
            f"the exported graph has {len(sess.get_inputs())} inputs and {len(sess.get_outputs())} outputs; "
            "the ONNX path serves one tensor in, one out"
        )
    samples = _tensor_samples(example, check_data, shape)
    x = np.concatenate([s.rows for s in samples])
    try:
        with _quiet():
            want = np.asarray(pyfunc.predict(x), dtype="float64")
    except Exception as exc:  # the example or check data the native model refuses
        raise NotConvertible(
            f"mlflow.pyfunc fails on the check rows ({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})"
        ) from exc
    return Conversion(
        kind="tensor",
        inputs=[{"name": sess.get_inputs()[0].name, "column": "", "dtype": "float32"}],
        output=sess.get_outputs()[0].name,
        checked_rows=len(x),
        check_source=_describe(samples, "seeded noisy copies of it", check_data) + f"; {how}",
        **_tensor_check(sess, samples, x, want, tolerance),
    )


def _tensor_check(sess, samples: list, x, want, tolerance: float) -> dict:
    """The ONNX session's answers on the tensor rows ``x`` against the native ``want``: equal top
    classes for a probability output, every output within ``tolerance``; the check's result."""
    import numpy as np

    got = np.asarray(_run(sess, {sess.get_inputs()[0].name: x})[0], dtype="float64")
    if want.shape != got.shape:
        raise NotConvertible(f"ONNX output shape {list(got.shape)} differs from the native {list(want.shape)}")
    check = _Check(samples, lambda i: _tensor_values(x[i]), tolerance)
    if want.ndim == 2 and want.shape[1] > 1:
        check.labels(want.argmax(axis=1), got.argmax(axis=1), what="top class")
    check.outputs(want, got, [])
    return check.result()


def _torch_export(torch, module, example, shape: list):
    """(ONNX ModelProto, which exporter): torch.export's exporter (``dynamo=True``) where onnxscript
    is installed, else the TorchScript one; every dimension the signature leaves at -1 stays dynamic.
    Their console output (graph dumps, deprecation notes) is kept out of the log; a failure is one
    NotConvertible line."""
    import io
    import logging
    import re
    import warnings

    import numpy as np

    # two rows at least: torch.export specializes a dimension of size 1
    tensor = torch.from_numpy(example[np.arange(max(2, len(example))) % len(example)])
    dynamic = [i for i, d in enumerate(shape) if d == -1] or [0]
    names = {"input_names": ["input"], "output_names": ["output"]}
    dynamo = importlib.util.find_spec("onnxscript") is not None
    log = logging.getLogger("torch")
    level, sink = log.level, io.StringIO()
    log.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dynamo:
                dims = dict.fromkeys(dynamic, torch.export.Dim.DYNAMIC)
                program = torch.onnx.export(module, (tensor,), None, dynamic_shapes=(dims,), dynamo=True, **names)
                proto = program.model_proto
            else:
                buf = io.BytesIO()
                axes = {"input": {i: f"d{i}" for i in dynamic}, "output": {0: "d0"}}
                # PRESERVE: mlflow loaded it in eval mode, and a torch.export program (model.pt2) refuses train()
                mode = torch.onnx.TrainingMode.PRESERVE
                torch.onnx.export(
                    module, (tensor,), buf, dynamic_axes=axes, opset_version=17, dynamo=False, training=mode, **names
                )
                import onnx

                proto = onnx.load_from_string(buf.getvalue())
    except Exception as exc:  # torch.export and the tracer raise many kinds (data-dependent control flow, ...)
        root: BaseException = exc
        while root.__cause__ is not None and root.__cause__ is not root:
            root = root.__cause__  # torch.export's own reason (data-dependent control flow, ...)
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(root)).split(" Next steps:")[0]  # no colours, no doc links
        raise NotConvertible(
            f"torch.onnx cannot export it ({root.__class__.__name__}: {' '.join(text.split())[:160]})"
        ) from exc
    finally:
        log.setLevel(level)
    how = "torch.export exporter" if dynamo else "TorchScript exporter (no onnxscript here)"
    return proto, f"{how}, torch {torch.__version__}"


# --- the equivalence check -----------------------------------------------------------------------


@dataclass
class _Sample:
    source: str  # EXAMPLE, SYNTHESIZED or CHECK_DATA
    rows: object  # a DataFrame (table) or an array (tensor)
    names: list[str]  # how a message names each row ("synthesized row 17", "x.csv line 5")


class _Check:
    """Compares native and ONNX answers on the concatenated samples; a disagreement is a
    NotConvertible naming the first row where it happens, its sample and its values."""

    def __init__(self, samples: list[_Sample], values, tolerance: float):
        self.names = [n for s in samples for n in s.names]
        self.sources = [s.source for s in samples for _ in s.names]
        self.counts = {s.source: len(s.names) for s in samples}
        self.values = values  # row index -> "col=value, ..." (brief)
        self.tolerance = tolerance
        self.diff, self.at, self.compared = 0.0, "", False

    def labels(self, want, got, what: str = "labels") -> None:
        import numpy as np

        want_l, got_l = np.asarray(want).ravel().tolist(), np.asarray(got).ravel().tolist()
        if len(want_l) != len(got_l):
            raise NotConvertible(f"the ONNX model gives {len(got_l)} {what} for {len(want_l)} check rows")
        bad = [i for i, (a, b) in enumerate(zip(want_l, got_l, strict=True)) if a != b]
        if bad:
            i = bad[0]
            raise self._failed(
                f"the ONNX model predicts other {what} than the native one on {len(bad)} of {len(want_l)} check "
                f"rows ({self._by_source(bad)}); first at {self.names[i]} ({self.values(i)}): native "
                f"{_short(want_l[i])}, ONNX {_short(got_l[i])}",
                row=i,
                label_mismatches=len(bad),
            )
        self.compared = True

    def outputs(self, want, got, columns: list[str]) -> None:
        import numpy as np

        want_a = np.asarray(want, dtype="float64").reshape(len(self.names), -1)
        got_a = np.asarray(got, dtype="float64")
        if got_a.size != want_a.size:
            raise NotConvertible(f"ONNX output shape {got_a.shape} differs from the native {want_a.shape}")
        got_a = got_a.reshape(want_a.shape)
        if not want_a.size:
            return
        with np.errstate(invalid="ignore", over="ignore"):
            delta = np.abs(want_a - got_a)
        delta = np.where(np.isnan(want_a) & np.isnan(got_a), 0.0, delta)  # NaN on both sides agrees
        delta = np.where(np.isnan(delta), np.inf, delta)
        row, col = (int(k) for k in np.unravel_index(int(np.argmax(delta)), delta.shape))
        diff = float(delta[row, col])
        if len(columns) == delta.shape[1]:
            what = columns[col]
        else:
            what = f"output column {col}" if delta.shape[1] > 1 else "the output"
        if not diff <= self.tolerance:
            over = [int(i) for i in np.nonzero((delta > self.tolerance).any(axis=1))[0]]
            raise self._failed(
                f"ONNX outputs differ from the native model by up to {diff:.1e} (> tolerance {self.tolerance:g}) "
                f"on {len(over)} of {len(self.names)} check rows ({self._by_source(over)}); largest at "
                f"{self.names[row]}, {what} ({self.values(row)}): native {want_a[row, col]:.6g}, ONNX "
                f"{got_a[row, col]:.6g}",
                row=row,
                max_abs_diff=diff,
            )
        if diff >= self.diff:
            self.diff, self.at = diff, f"{self.names[row]}, {what}"

    def _failed(self, message: str, row: int, **details) -> NotConvertible:
        exc = NotConvertible(message)
        exc.details = {"rows_by_source": dict(self.counts), "label_mismatches": 0, "max_abs_diff": self.diff}
        exc.details.update(details, row=self.names[row])
        return exc

    def _by_source(self, rows: list[int]) -> str:
        hits = dict.fromkeys(self.counts, 0)
        for i in rows:
            hits[self.sources[i]] += 1
        return ", ".join(f"{hits[s]} of {n} {s}" for s, n in self.counts.items())

    def result(self) -> dict:
        return {
            "max_abs_diff": self.diff,
            "max_diff_at": self.at,
            "rows_by_source": dict(self.counts),
            "label_mismatches": 0,
            "labels_compared": self.compared,
            "tolerance": self.tolerance,
        }


def _describe(samples: list[_Sample], synthesized: str, check_data: Path | None) -> str:
    words = {EXAMPLE: "example", SYNTHESIZED: synthesized, CHECK_DATA: "held-out"}
    text = ", ".join(f"{len(s.names)} {words[s.source]}" for s in samples)
    return text + (f" from {Path(check_data).name}" if check_data is not None else "")


def _left_out(rejected: int) -> str:
    return f"; {rejected} more the native model rejects left out" if rejected else ""


def _short(value, width: int = 40) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _row_values(df, i: int) -> str:
    text = ", ".join(f"{c}={_short(v)}" for c, v in df.iloc[i].items())
    return text if len(text) <= 200 else text[:199] + "…"


def _tensor_values(row) -> str:
    import numpy as np

    flat = np.asarray(row).ravel()
    shown = ", ".join(f"{v:.4g}" for v in flat[:4].tolist())
    return f"values [{shown}{', …' if flat.size > 4 else ''}]"


@contextlib.contextmanager
def _quiet():
    """The native model on synthesized values may warn (overflow, unknown categories): not the user's business."""
    import warnings

    import numpy as np

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _example_frame(native, info: ModelInfo):
    try:
        return native.frame(_example_payload(info))
    except NotConvertible:
        raise
    except Exception as exc:  # BadRequest: the example does not fit the signature
        raise NotConvertible(
            f"the input example does not fit the model's signature ({' '.join(str(exc).split())[:120]})"
        ) from exc


def _signature_types(info: ModelInfo, native) -> dict:
    """Column name -> MLflow type ("double", "long", "string", "boolean", ...) from the signature."""
    try:
        spec = json.loads((info.signature or {}).get("inputs") or "[]")
    except (TypeError, ValueError):
        spec = []
    types = (
        {c["name"]: c.get("type") for c in spec if isinstance(c, dict) and c.get("name")}
        if isinstance(spec, list)
        else {}
    )
    return types or dict(native.types)


def synthesize_table(example, types: dict, n: int = SYNTHESIZED_ROWS, seed: int = SEED, words=(), categories=None):
    """``n`` rows around the example frame, per column by its MLflow type (see the module docstring);
    each column has its own seeded generator, so the sample only depends on the example, the types,
    ``words`` (extra vocabulary for string columns), ``categories`` (column -> the values an encoder
    of the model knows: most of that column's rows take one of them) and ``seed``."""
    import numpy as np
    import pandas as pd

    data = {}
    for index, col in enumerate(example.columns):
        rng = np.random.default_rng([seed, index])
        kind = str(types.get(col) or "")
        values = example[col].tolist()
        if kind in ("double", "float", "long", "integer"):
            data[col] = _numbers(values, kind, n, rng)
        elif kind == "string":
            data[col] = np.array(_texts(values, n, rng, list(words)), dtype=object)
        elif kind == "boolean":
            data[col] = np.array([True, False, *rng.integers(0, 2, max(n - 2, 0)).astype(bool)][:n], dtype=bool)
        else:  # datetime, binary, ...: the example's own values
            data[col] = [values[i % len(values)] if values else None for i in range(n)]
        known = list((categories or {}).get(col) or [])
        if known and kind in ("double", "float", "long", "integer", "string"):
            column = np.asarray(data[col])
            pick = np.nonzero(rng.random(n) < 0.85)[0]
            pick = pick[pick >= len(values) + 1]  # the example's own values and the first edge stay
            column[pick] = np.array([known[int(j)] for j in rng.integers(0, len(known), len(pick))], dtype=object)
            data[col] = column
    return pd.DataFrame(data, columns=list(example.columns))


def _numbers(values: list, kind: str, n: int, rng):
    import numpy as np

    given: list[float] = []
    for v in values:
        with contextlib.suppress(TypeError, ValueError):
            if np.isfinite(f := float(v)):
                given.append(f)
    known = np.array(given or [0.0])
    lo, hi = float(known.min()), float(known.max())
    width = (hi - lo) or max(abs(lo) * 0.1, 1.0)
    edges = list(dict.fromkeys([0.0, *known.tolist(), lo - width, hi + width, (lo + hi) / 2]))[:n]
    m = n - len(edges)
    near, jitter, same = int(m * 0.45), int(m * 0.3), int(m * 0.1)
    far = m - near - jitter - same
    body = np.concatenate(
        [
            rng.uniform(lo - width / 2, hi + width / 2, near),  # the example's range, widened
            rng.choice(known, jitter) + rng.normal(0.0, width * 0.1, jitter),  # the example's values, jittered
            rng.choice(known, same),  # as they are (the other columns vary around them)
            rng.uniform(lo - 3 * width, hi + 3 * width, far),  # further out
        ]
    )
    out = np.concatenate([np.array(edges), rng.permutation(body)])
    if lo >= 0:
        out = np.abs(out)  # a non-negative column (counts, prices, ages) stays non-negative
    if kind in ("long", "integer"):
        bound = 2**31 - 1 if kind == "integer" else 2**62
        return np.clip(np.rint(out), -bound, bound).astype("int64")
    return out.astype("float32" if kind == "float" else "float64")


# words no example holds: ASCII, digits, accents, an apostrophe, a hyphen
_UNSEEN_WORDS = ("zyzzyva", "qwertyuiop", "b4", "x", "42", "naïve", "ÜBER", "don't", "e-mail")


def _texts(values: list, n: int, rng, words: list[str]) -> list[str]:
    given = [v if isinstance(v, str) else "" if v is None or v != v else str(v) for v in values] or [""]
    tokens = list(dict.fromkeys(w for s in given for w in s.split()))
    known = set(tokens)
    pool = tokens + [w for w in words if w not in known] or list(_UNSEEN_WORDS)
    out = list(dict.fromkeys([*given, "", " ", " ".join(given)]))[:n]

    def pick(k: int) -> list[str]:
        return [pool[int(j)] for j in rng.integers(0, len(pool), k)]

    while len(out) < n:
        base = given[int(rng.integers(0, len(given)))].split()
        kind = int(rng.integers(0, 8))
        if kind >= 6:  # a known word or category, or an example, as it is
            out.append(pool[int(rng.integers(0, len(pool)))] if kind == 6 else " ".join(base))
            continue
        if kind == 0:  # the example's words shuffled
            ws = [base[int(j)] for j in rng.permutation(len(base))]
        elif kind == 1:  # a subset of them
            ws = [w for w in base if rng.random() < 0.5]
        elif kind == 2:  # a bag of known words, repeats included
            ws = pick(int(rng.integers(1, 13)))
        elif kind == 3:  # the example with some of its words repeated
            ws = base + [(base or pool)[int(j)] for j in rng.integers(0, len(base or pool), int(rng.integers(1, 5)))]
        elif kind == 4:  # the example with unseen words in it
            ws = list(base)
            for _ in range(int(rng.integers(1, 3))):
                ws.insert(int(rng.integers(0, len(ws) + 1)), _UNSEEN_WORDS[int(rng.integers(0, len(_UNSEEN_WORDS)))])
        else:  # known words around an unseen one
            ws = pick(int(rng.integers(0, 4))) + [_UNSEEN_WORDS[int(rng.integers(0, len(_UNSEEN_WORDS)))]]
        text = " ".join(ws)
        case = int(rng.integers(0, 8))
        if case == 0:
            text = text.upper()
        elif case == 1:
            text = text.title()
        elif case == 2:
            text = "".join(ch.upper() if rng.random() < 0.5 else ch for ch in text)
        out.append(text)
    return out


def _parts(model) -> list:
    """The model and every estimator nested in it (pipelines, column transformers, feature unions)."""
    found: list = []
    seen: set[int] = set()

    def walk(obj, depth: int) -> None:
        if depth > 8 or id(obj) in seen:
            return
        seen.add(id(obj))
        found.append(obj)
        for attr in ("steps", "transformers_", "transformer_list"):
            items = getattr(obj, attr, None)
            for item in items if isinstance(items, list) else []:
                if isinstance(item, tuple) and len(item) >= 2:
                    walk(item[1], depth + 1)

    walk(model, 0)
    return found


def _vocabulary(model, limit: int = 300) -> list[str]:
    """Words of the fitted vectorizers' vocabularies (CountVectorizer, TfidfVectorizer) and the
    string categories of the encoders (OneHotEncoder, OrdinalEncoder) anywhere in the model: the
    synthesized texts use them as well as the example's words. At most ``limit`` of each, spread
    over the sorted lists."""
    words: set[str] = set()
    categories: set[str] = set()
    for part in _parts(model):
        vocab = getattr(part, "vocabulary_", None)
        if isinstance(vocab, dict):
            words.update(w for term in vocab for w in str(term).split())
        for values in getattr(part, "categories_", None) or []:
            with contextlib.suppress(TypeError):
                categories.update(v for v in values if isinstance(v, str))
    found = []
    for group in (sorted(words), sorted(categories - words)):
        found += group[:: max(1, -(-len(group) // limit))]
    return found


def _categories(model) -> dict:
    """Input column -> (the categories a fitted encoder of the model knows for it, whether it
    rejects others), for encoders (OneHotEncoder, OrdinalEncoder) fitted on named columns."""
    found: dict = {}
    for part in _parts(model):
        cats, names = getattr(part, "categories_", None), getattr(part, "feature_names_in_", None)
        if not isinstance(cats, list) or names is None or len(cats) != len(names):
            continue
        strict = getattr(part, "handle_unknown", "error") == "error"
        for name, values in zip(names, cats, strict=True):
            found.setdefault(str(name), ([v.item() if hasattr(v, "item") else v for v in values], strict))
    return found


def _synthesized(model, example, types: dict, with_proba: bool):
    """:data:`SYNTHESIZED_ROWS` synthesized rows the native model answers, and how many it rejected.
    When it rejects some (unknown categories), more batches (seeds SEED + 1, ...; at most 4 in all)
    fill the sample up; row k of the result is row k % SYNTHESIZED_ROWS of seed SEED + k //
    SYNTHESIZED_ROWS, which is how messages number it."""
    import pandas as pd

    words, categories = _vocabulary(model), _categories(model)
    kept, rejected = [], 0
    for batch in range(4):
        known_values = {col: values for col, (values, _) in categories.items()}
        rows = synthesize_table(example, types, seed=SEED + batch, words=words, categories=known_values)
        rows.index += batch * SYNTHESIZED_ROWS
        known = pd.Series(True, index=rows.index)
        for col, (values, strict) in categories.items():
            if strict and col in rows.columns:  # the encoder raises on an unknown value: not a request it serves
                known &= rows[col].isin(values)
        rows, left_out = _scorable(model, rows[known], with_proba)
        kept.append(rows)
        left_out += int((~known).sum())
        rejected += left_out
        if not left_out or sum(len(k) for k in kept) >= SYNTHESIZED_ROWS:
            break
    return pd.concat(kept).iloc[:SYNTHESIZED_ROWS], rejected


def _scorable(model, df, with_proba: bool):
    """The synthesized rows the native model answers, and how many it rejects (an unknown category
    or a value its own checks refuse): those are not requests it serves, so they are left out."""

    def answers(frame) -> None:
        model.predict(frame)
        if with_proba:
            model.predict_proba(frame)

    with _quiet():
        try:
            answers(df)
            return df, 0
        except Exception:  # noqa: BLE001 - then row by row, below
            pass
        keep = []
        for i in range(len(df)):
            with contextlib.suppress(Exception):
                answers(df.iloc[[i]])
                keep.append(i)
    return df.iloc[keep], len(df) - len(keep)


def synthesize_tensor(example, n: int = SYNTHESIZED_ROWS, seed: int = SEED):
    """``n`` seeded noisy copies of the example's rows (float32), noise at 1%, 5% and 20% of the
    example's largest magnitude."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = np.asarray(example, dtype="float64")[np.arange(n) % len(example)]
    scale = float(np.nan_to_num(np.abs(example)).max(initial=0.0) or 1.0)
    levels = np.array([0.01, 0.05, 0.2])[rng.integers(0, 3, n)] * scale
    noise = rng.normal(0.0, 1.0, base.shape) * levels.reshape((n,) + (1,) * (base.ndim - 1))
    return (base + noise).astype("float32")
