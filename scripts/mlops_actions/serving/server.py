"""A lean scoring server for the MLflow protocol: any MLflow model, mlflow itself only where needed.

Endpoints: ``GET /ping`` and ``GET /health`` (200 once the model is loaded; /health names the flavor
and runtime, and says ``degraded`` while a worker holding a prediction stuck past PREDICT_TIMEOUT is
replaced), ``GET /version`` (model and build facts), ``GET /metrics`` (Prometheus text: requests by
path and status, latency histogram, predicted classes; summed over all workers), ``POST
/invocations`` (JSON with exactly one of ``dataframe_split``, ``dataframe_records``, ``instances``,
``inputs``, plus optional ``params``; or CSV with a header row) answering ``{"predictions": ...}``
serialized as MLflow's scoring server does: a DataFrame (or Series) as a list of records, arrays as
(nested) lists, a dict of arrays as a dict of lists.

Runtimes (``model-info.json``, written by render-dockerfile: ``runtime`` and ``flavor``, the model's
first flavor other than python_function):

- ``native``: the flavor's own library, without mlflow, answering as ``mlflow.pyfunc`` would:
  sklearn, Keras/TensorFlow, xgboost (a Booster or a scikit-learn wrapper, as ``model_class`` says),
  LightGBM (a Booster text file or a pickled scikit-learn model) and ONNX (the model's own .onnx file
  through onnxruntime). The request is parsed as MLflow does and checked against the MLmodel
  signature: columns get their declared types (string, long, integer, double, float, boolean,
  binary, datetime; ``required: false`` columns may be left out), tensors become numpy arrays of
  the declared dtype and shape, and a value that does not fit answers 400 naming the column. Params
  are checked against the signature's params schema (defaults filled in) and passed on where the
  flavor's pyfunc wrapper passes them (xgboost's predict); a model without a params schema ignores
  them, with one line on stderr, as MLflow does.
- ``pyfunc``: any MLflow model through ``mlflow.pyfunc.load_model`` (the image installs mlflow-skinny
  at the model's mlflow version and the model's requirements; ``code_paths`` are honoured by mlflow).
  Requests are parsed, predicted and serialized by MLflow's own scoring-server functions, so the
  answers, schema enforcement and params validation are MLflow's (an invalid param answers 400).
- ``onnx``: the ONNX conversion render-dockerfile wrote (``model.onnx``, checked equivalent to the
  native model) through onnxruntime, needing only onnxruntime, numpy and pyyaml (no pandas).

Run: ``python -m serve.server --model /app/model --port 8080``. gunicorn supervises the worker
processes (supervisor.py: replaced when they die, drained on SIGTERM, bounded threads, connections
and concurrency, with 503 and ``Retry-After`` past ``MAX_CONCURRENCY``; a prediction running past
``PREDICT_TIMEOUT`` is answered 504 at once and its worker replaced, watchdog.py); they default to the CPUs
this container may use (affinity and cgroup quota), at most 4; ``WORKERS`` overrides. A native
sklearn model is loaded once before the fork; every other
model is loaded by each worker after it (their libraries start thread pools). xgboost, LightGBM and
onnxruntime use one thread per worker, as the workers already use the CPUs; ``MODEL_THREADS`` (or
``ONNX_THREADS``) overrides. The server writes no files (read-only root file system friendly).
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime
import errno
import importlib
import inspect
import io
import json
import mmap
import os
import queue
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import profile, settings, watchdog

MAX_BODY = int(os.environ.get("MAX_REQUEST_BYTES", str(64 * 1024 * 1024)))
ACCESS_LOG = os.environ.get("ACCESS_LOG", "1") == "1"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# MLflow column types → numpy dtypes (DataType.to_numpy); datetime is parsed, not cast
NUMERIC_TYPES = {"long": "int64", "integer": "int32", "double": "float64", "float": "float32"}
# onnxruntime input types → numpy dtypes, where the names differ
ONNX_TYPES = {"float": "float32", "double": "float64", "string": "object"}


class BadRequest(Exception):
    pass


def read_mlmodel(model_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((model_dir / "MLmodel").read_text()) or {}


def threads() -> int:
    """Threads per worker for xgboost, LightGBM and onnxruntime: 1 unless MODEL_THREADS or ONNX_THREADS says."""
    return max(1, int(os.environ.get("MODEL_THREADS") or os.environ.get("ONNX_THREADS") or 1))


def one_line(text: object, limit: int = 500) -> str:
    return " ".join(str(text).split())[:limit]


def jsonable(obj):
    """Predictions as MLflow's scoring server writes them (``_get_jsonable_obj`` then ``NumpyEncoder``):
    a DataFrame as a list of records, a Series as records of its one column, numpy arrays as (nested)
    lists, numpy scalars as Python ones, bytes as base64, timestamps in ISO format. pandas is only
    looked at when something imported it: the ONNX image has none."""
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(obj, pd.Series):
        obj = pd.DataFrame(obj)
    if pd is not None and isinstance(obj, pd.DataFrame):
        return [{k: _json_value(v) for k, v in row.items()} for row in obj.to_dict(orient="records")]
    return _json_value(obj)


def _json_value(value):
    np = sys.modules.get("numpy")
    if isinstance(value, dict):
        return {(k.item() if hasattr(k, "item") else k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if np is not None and isinstance(value, np.ndarray):
        if value.dtype == object:
            return [_json_value(v) for v in value.tolist()]
        if value.dtype.kind == "S":
            return [_json_value(v) for v in value.tolist()]
        return value.tolist()
    if np is not None and isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return base64.encodebytes(value).decode("ascii")
    if isinstance(value, (datetime.date, datetime.time)):  # pandas.Timestamp is a datetime
        return value.isoformat()
    return value


class Signature:
    """The MLmodel signature: named columns with MLflow types (``required`` false may be missing),
    or tensors (``tensor-spec`` dtype and shape), and the params schema."""

    def __init__(self, meta: dict):
        sig = meta.get("signature") or {}
        self.inputs = self._specs(sig.get("inputs"))
        self.params = self._specs(sig.get("params"))
        self.is_tensor = bool(self.inputs) and all(s.get("type") == "tensor" for s in self.inputs)
        named = [s for s in self.inputs if s.get("name")]
        self.columns: list[str] = [s["name"] for s in named]
        self.types: dict[str, Any] = {s["name"]: s.get("type") for s in named}
        self.required = [s["name"] for s in named if s.get("required", True)]

    @staticmethod
    def _specs(text) -> list[dict]:
        try:
            specs = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            return []
        return [s for s in specs if isinstance(s, dict)] if isinstance(specs, list) else []

    # --- columns ---------------------------------------------------------------------------------

    def enforce(self, df):
        """The declared columns in signature order, each cast to its type (MLflow's
        ``cast_df_types_according_to_schema`` and ``_enforce_named_col_schema``); extra columns go."""
        import pandas as pd

        missing = [c for c in self.required if c not in df.columns]
        if missing:
            raise BadRequest(f"missing input column(s): {', '.join(map(str, missing))}")
        present = [c for c in self.columns if c in df.columns]
        return pd.DataFrame({c: self.cast(c, df[c], self.types[c]) for c in present}, index=df.index)

    def cast(self, name: str, values, kind):
        import pandas as pd

        if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
            if kind == "string":
                return values
            if kind == "binary":
                return values.map(lambda v: self._unbase64(name, v))
        if kind in NUMERIC_TYPES:
            return self._numeric(name, values, kind)
        if kind == "boolean":
            return values if values.dtype == bool else values.map(lambda v: self._boolean(name, v)).astype(bool)
        if kind == "datetime":
            return self._datetime(name, values)
        if kind == "string":
            return values.astype(object)
        return values  # binary as bytes already, arrays, objects, maps, any: as sent

    @staticmethod
    def _numeric(name: str, values, kind: str):
        import numpy as np
        import pandas as pd

        if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
            try:
                values = pd.to_numeric(values)
            except (ValueError, TypeError) as exc:
                raise BadRequest(f"column '{name}' ({kind}): {one_line(exc, 200)}") from exc
        target = np.dtype(NUMERIC_TYPES[kind])
        if target.kind == "i":
            if values.isna().any():
                raise BadRequest(f"column '{name}' ({kind}): missing value(s); an integer column cannot hold them")
            if values.dtype.kind == "f" and not (values == values.round()).all():
                bad = values[values != values.round()].iloc[0]
                raise BadRequest(f"column '{name}' ({kind}): {bad} is not a whole number")
        try:
            return values.astype(target)
        except (ValueError, TypeError, OverflowError) as exc:
            raise BadRequest(f"column '{name}' ({kind}): {one_line(exc, 200)}") from exc

    @staticmethod
    def _boolean(name: str, value) -> bool:
        key = str(value).strip().lower()
        if key in ("true", "1", "1.0"):
            return True
        if key in ("false", "0", "0.0"):
            return False
        raise BadRequest(f"column '{name}' (boolean): {value!r} is not true or false")

    @staticmethod
    def _datetime(name: str, values):
        import pandas as pd

        try:
            parsed = pd.to_datetime(values)
        except (ValueError, TypeError):
            try:
                parsed = pd.to_datetime(values, format="ISO8601")
            except (ValueError, TypeError) as exc:
                raise BadRequest(f"column '{name}' (datetime): {one_line(str(exc).splitlines()[0], 200)}") from exc
        if not pd.api.types.is_datetime64_any_dtype(parsed) or getattr(parsed.dt, "tz", None) is not None:
            raise BadRequest(f"column '{name}' (datetime): send timezone-naive date-times (no offset)")
        # MLflow's DataType.datetime is nanoseconds; pandas 3 parses to microseconds
        return parsed.dt.as_unit("ns") if getattr(parsed.dt, "unit", "ns") != "ns" else parsed

    @staticmethod
    def _unbase64(name: str, value):
        if not isinstance(value, str):
            return value
        try:
            return base64.decodebytes(value.encode("utf-8"))
        except ValueError as exc:
            raise BadRequest(f"column '{name}' (binary): not base64 ({exc})") from exc

    # --- tensors ---------------------------------------------------------------------------------

    def tensor(self, spec: dict, data, what: str = "input"):
        """``data`` as a numpy array of the spec's dtype, its shape checked (-1: any size)."""
        import numpy as np

        tensor_spec = spec.get("tensor-spec") or {}
        dtype, shape = tensor_spec.get("dtype", "float64"), tensor_spec.get("shape")
        name = spec.get("name") or what
        try:
            arr = np.asarray(data, dtype=dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            raise BadRequest(f"{name}: not a {dtype} tensor ({one_line(exc, 200)})") from exc
        if not isinstance(shape, list) or (shape == [-1] and arr.dtype == object):  # no shape, or ragged
            return arr
        if arr.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, arr.shape, strict=True)):
            raise BadRequest(f"{name}: shape {list(arr.shape)} does not match the signature's {shape}")
        return arr

    # --- params ----------------------------------------------------------------------------------

    def check_params(self, given: dict) -> dict:
        """MLflow's ``_enforce_params_schema``: declared params type-checked, defaults for the rest,
        undeclared ones dropped (the caller warns)."""
        out = {}
        for spec in self.params:
            name = str(spec.get("name"))
            if name not in given:
                out[name] = spec.get("default")
                continue
            value = given[name]
            if spec.get("shape") is not None:
                if not isinstance(value, list):
                    raise BadRequest(f"param '{name}': expected a list of {spec.get('type')}, got {value!r}")
                out[name] = [self._param(name, spec.get("type"), v) for v in value]
            else:
                out[name] = self._param(name, spec.get("type"), value)
        return out

    @staticmethod
    def _param(name: str, kind: Any, value):
        ok = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "long": isinstance(value, int) and not isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "double": isinstance(value, (int, float)) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "datetime": isinstance(value, str),
        }.get(kind, True)
        if not ok:
            raise BadRequest(f"param '{name}': expected {kind}, got {value!r}")
        return float(value) if kind in ("double", "float") else value


def split_payload(payload) -> tuple[str, Any, Any]:
    """(format, data, params) of a JSON request; ``("csv", text, None)`` for a CSV body."""
    if isinstance(payload, tuple) and payload[0] == "csv":
        return "csv", payload[1].decode("utf-8"), None
    if not isinstance(payload, dict):
        raise BadRequest(f"the JSON body must be an object with one of {', '.join(FORMATS)}")
    keys = [k for k in FORMATS if k in payload]
    if len(keys) != 1:
        found = f"got {', '.join(keys)}" if keys else f"got keys {', '.join(map(str, payload)) or 'none'}"
        raise BadRequest(f"the JSON body must hold exactly one of {', '.join(FORMATS)} ({found})")
    return keys[0], payload[keys[0]], payload.get("params")


class Model:
    """An MLflow model directory served by ``runtime``: ``native`` (the flavor's own library),
    ``pyfunc`` (mlflow.pyfunc) or the ONNX conversion (``onnx``: the ``onnx`` section of
    model-info.json, with ``path`` of the .onnx file). ``engine`` says what actually serves it."""

    NATIVE = ("sklearn", "tensorflow", "keras", "xgboost", "lightgbm", "onnx")

    def __init__(self, model_dir: Path, onnx: dict | None = None, runtime: str = "native"):
        self.dir = Path(model_dir)
        self.meta = read_mlmodel(self.dir)
        flavors = self.meta.get("flavors") or {}
        self.flavor = next((f for f in flavors if f != "python_function"), "python_function")
        self.signature = Signature(self.meta)
        self.columns, self.types = self.signature.columns, self.signature.types
        meta_classes = (self.meta.get("metadata") or {}).get("classes")
        self.classes = list(meta_classes) if isinstance(meta_classes, list) else None
        self.onnx = onnx
        self.runtime = "onnx" if onnx else runtime
        self._noted: set[str] = set()
        if onnx:
            self._load_onnx(onnx)
        elif self.runtime == "pyfunc":
            self._load_pyfunc()
        elif self.runtime != "native":
            raise RuntimeError(f"unknown runtime '{runtime}' (native, onnx or pyfunc)")
        elif self.flavor in self.NATIVE:
            loader = "keras" if self.flavor == "tensorflow" else "onnx_flavor" if self.flavor == "onnx" else self.flavor
            getattr(self, f"_load_{loader}")(flavors[self.flavor])
        else:
            raise RuntimeError(f"flavor '{self.flavor}' has no native runtime; serve it with runtime 'pyfunc'")

    def note(self, message: str) -> None:
        """One line on stderr, once per worker: a request-driven warning must not flood the log."""
        if message not in self._noted and len(self._noted) < 100:
            self._noted.add(message)
            sys.stderr.write(message + "\n")

    # --- sklearn and Keras -----------------------------------------------------------------------

    def _load_sklearn(self, conf: dict):
        self._model = self._unpickle(conf.get("pickled_model", "model.pkl"), conf.get("serialization_format"))
        self._predict = lambda data, params: self._model.predict(data)
        if self.classes is None and hasattr(self._model, "classes_"):
            self.classes = [c.item() if hasattr(c, "item") else c for c in self._model.classes_]
        self.engine = f"scikit-learn {getattr(sys.modules.get('sklearn'), '__version__', '')}".strip()

    def _unpickle(self, name: str, fmt: str | None):
        path = self.dir / name
        fmt = fmt or "cloudpickle"
        if fmt == "skops":
            import skops.io

            return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
        with open(path, "rb") as fh:
            if fmt == "cloudpickle":
                import cloudpickle

                return cloudpickle.load(fh)
            import pickle

            return pickle.load(fh)

    def _load_keras(self, conf: dict):
        import keras

        self._keras_lock = threading.Lock()  # Keras' predict() keeps per-model state: one call at a time
        self._predict = self._predict_keras
        self.engine = f"keras {keras.__version__}"
        data = self.dir / conf.get("data", "data")
        candidates = sorted(list(data.rglob("*.keras")) + list(data.rglob("*.h5")))
        if candidates:
            self._model = keras.models.load_model(candidates[0], compile=False)
            return
        saved = self.dir / conf["saved_model_dir"] if conf.get("saved_model_dir") else data / "model"
        self._model = keras.layers.TFSMLayer(str(saved), call_endpoint="serving_default")

    def _predict_keras(self, frame, params=None):
        import numpy as np

        arr = frame if isinstance(frame, np.ndarray) else np.asarray(frame.values.tolist(), dtype="float32")
        arr = arr.astype("float32")
        shape = getattr(self._model, "input_shape", None)
        if isinstance(shape, tuple) and len(shape) == arr.ndim + 1:
            arr = arr[None, ...]  # one instance sent without the batch dimension
        if isinstance(shape, tuple):  # a shape the model cannot take is the client's fault (400), not a 500
            want = [d if isinstance(d, int) else -1 for d in shape]
            if arr.ndim != len(want) or any(w not in (-1, g) for w, g in zip(want, arr.shape, strict=True)):
                raise BadRequest(f"input: shape {list(arr.shape)} does not match the model's {want}")
        with self._keras_lock:
            # a SavedModel comes through TFSMLayer: a layer, no predict()
            result = self._model.predict(arr, verbose=0) if hasattr(self._model, "predict") else self._model(arr)
        if hasattr(result, "numpy"):
            result = result.numpy()
        if isinstance(result, dict):
            result = next(iter(result.values()))
        return np.asarray(result)

    # --- xgboost (mlflow.xgboost._load_model and _XGBModelWrapper, without mlflow) ---------------

    def _load_xgboost(self, conf: dict):
        import xgboost as xgb

        class_path = conf.get("model_class", "xgboost.core.Booster")
        module, _, name = class_path.rpartition(".")
        self._model = getattr(importlib.import_module(module), name)()
        self._model.load_model(str(self.dir / conf.get("data", "model.xgb")))
        if isinstance(self._model, xgb.Booster):
            self._model.set_param({"nthread": threads()})
        else:
            self._model.set_params(n_jobs=threads())
            if self.classes is None and hasattr(self._model, "classes_"):
                self.classes = [c.item() if hasattr(c, "item") else c for c in self._model.classes_]
        self._predict = self._predict_xgboost
        self.engine = f"xgboost {xgb.__version__} ({name}, {threads()} thread(s))"

    def _predict_xgboost(self, data, params):
        import xgboost as xgb

        kwargs = self._accepted(self._model.predict, params or {})
        if isinstance(self._model, xgb.Booster):
            return self._model.predict(xgb.DMatrix(data, nthread=threads()), validate_features=True, **kwargs)
        return self._model.predict(data, validate_features=True, **kwargs)

    def _accepted(self, fn, params: dict) -> dict:
        """The params ``fn`` takes (MLflow's ``_exclude_unrecognized_kwargs``); the others are noted."""
        accepted = inspect.signature(fn).parameters
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in accepted.values()):
            return params
        if dropped := sorted(set(params) - set(accepted)):
            self.note(f"params {dropped} are not accepted by the model's predict(); ignored")
        return {k: v for k, v in params.items() if k in accepted}

    # --- LightGBM (mlflow.lightgbm._load_model and _LGBModelWrapper) -----------------------------

    def _load_lightgbm(self, conf: dict):
        import lightgbm as lgb

        class_path = conf.get("model_class", "lightgbm.basic.Booster")
        if class_path == "lightgbm.basic.Booster":
            self._model = lgb.Booster(model_file=str(self.dir / conf.get("data", "model.lgb")))
        else:
            self._model = self._unpickle(conf.get("data", "model.pkl"), conf.get("serialization_format"))
            if self.classes is None and hasattr(self._model, "classes_"):
                self.classes = [c.item() if hasattr(c, "item") else c for c in self._model.classes_]
        self._predict = lambda data, params: self._model.predict(data, num_threads=threads())  # params: ignored
        self.engine = f"lightgbm {lgb.__version__} ({class_path.rpartition('.')[2]}, {threads()} thread(s))"

    # --- ONNX flavor (mlflow.onnx._OnnxModelWrapper): the model's own .onnx file -----------------

    def _load_onnx_flavor(self, conf: dict):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads()
        options = conf.get("onnx_session_options") or {}
        if str(options.get("execution_mode", "")).upper() == "PARALLEL":
            opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        if options.get("graph_optimization_level"):
            opts.graph_optimization_level = ort.GraphOptimizationLevel(options["graph_optimization_level"])
        for key, value in (options.get("extra_session_config") or {}).items():
            opts.add_session_config_entry(key, value)
        path = self.dir / conf.get("data", "model.onnx")
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._feeds = [(i.name, i.type, i.shape) for i in self._session.get_inputs()]
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._predict = self._predict_onnx_flavor
        self.engine = f"onnxruntime {ort.__version__} ({path.name}, {threads()} thread(s))"

    def _onnx_array(self, name: str, onnx_type: str, shape, values):
        import numpy as np

        kind = onnx_type[len("tensor(") : -1] if onnx_type.startswith("tensor(") else "float"
        arr = np.asarray(values)
        try:
            arr = arr.astype(ONNX_TYPES.get(kind, kind), copy=False)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"input '{name}': not {kind} ({one_line(exc, 200)})") from exc
        if isinstance(shape, list) and len(shape) == 2 and arr.ndim == 1:
            arr = arr.reshape(-1, 1)  # a column for a [N, 1] input
        return arr

    def _predict_onnx_flavor(self, data, params):
        """A DataFrame feeds its values to a single input, or its columns by name to several, and
        answers a DataFrame of the outputs; an array or a dict of arrays answers a dict."""
        import numpy as np

        pandas = sys.modules.get("pandas")
        is_frame = pandas is not None and isinstance(data, pandas.DataFrame)
        if is_frame and len(self._feeds) > 1:
            missing = [name for name, _, _ in self._feeds if name not in data.columns]
            if missing:
                raise BadRequest(f"missing input column(s): {', '.join(missing)}")
            feed = {name: self._onnx_array(name, t, s, data[name].values) for name, t, s in self._feeds}
        elif is_frame or isinstance(data, np.ndarray):
            if len(self._feeds) != 1:
                raise BadRequest(f"this model has {len(self._feeds)} inputs: send them by name")
            name, t, s = self._feeds[0]
            feed = {name: self._onnx_array(name, t, s, data.values if is_frame else data)}
        else:
            feed = {name: self._onnx_array(name, t, s, data[name]) for name, t, s in self._feeds if name in data}
        out = self._session.run(self._outputs, feed)
        if is_frame:
            import pandas as pd

            return pd.DataFrame({name: np.asarray(o).reshape(-1) for name, o in zip(self._outputs, out, strict=True)})
        return dict(zip(self._outputs, out, strict=True))

    # --- pyfunc: mlflow itself -------------------------------------------------------------------

    def _load_pyfunc(self):
        import mlflow
        import mlflow.pyfunc
        from mlflow.pyfunc import scoring_server

        loader = getattr(scoring_server, "load_model_with_mlflow_config", mlflow.pyfunc.load_model)
        self._model = loader(str(self.dir))
        self._scoring = scoring_server
        self._input_schema = self._model.metadata.get_input_schema()
        self._takes_params = "params" in inspect.signature(self._model.predict).parameters
        os.environ["_MLFLOW_IS_IN_SERVING_ENVIRONMENT"] = "true"  # as MLflow's scoring server sets it
        loader_module = (self.meta.get("flavors") or {}).get("python_function", {}).get("loader_module")
        self.engine = f"mlflow {mlflow.__version__} pyfunc ({loader_module})"

    def _answer_pyfunc(self, payload) -> tuple[Any, Any]:
        """(answer, predictions) as MLflow's scoring server computes them (``invocations``): its
        parsers, the pyfunc's ``predict(data, params=params)``, its serializer. A MlflowException
        with a 4xx code (bad input, bad params, schema enforcement) is the client's fault."""
        from mlflow.exceptions import MlflowException

        ss, unwrapped = self._scoring, False
        if not isinstance(payload, (dict, tuple)):
            raise BadRequest(f"the JSON body must be an object with one of {', '.join(FORMATS)}")
        try:
            if isinstance(payload, tuple) and payload[0] == "csv":
                data, params = ss.parse_csv_input(io.StringIO(payload[1].decode("utf-8")), self._input_schema), None
            elif hasattr(ss, "_parse_json_data"):
                data, params, unwrapped = ss._parse_json_data(payload, self._model.metadata, self._input_schema)
            else:  # mlflow before _parse_json_data: its _split_data_and_params, inlined
                fmt, data, params = split_payload(payload)
                data = ss.infer_and_parse_data({fmt: data}, self._input_schema)
            if self._takes_params:
                raw = self._model.predict(data, params=params)
            else:
                if params:
                    self.note(f"params {sorted(params)} ignored: this model's predict() takes none")
                raw = self._model.predict(data)
        except MlflowException as exc:
            if exc.get_http_status_code() < 500:
                raise BadRequest(self._mlflow_message(exc.message)) from exc
            raise
        buf = io.StringIO()
        if unwrapped:  # the unified LLM format (messages / prompt / input): no "predictions" wrapper
            ss.unwrapped_predictions_to_json(raw, buf)
            return json.loads(buf.getvalue()), None
        ss.predictions_to_json(raw, buf)
        answer = json.loads(buf.getvalue())
        return answer, answer.get("predictions")

    @staticmethod
    def _mlflow_message(message: str) -> str:
        """MLflow's schema enforcement message quotes the whole request; keep its reason."""
        if message.startswith("Failed to enforce schema of data") and "'. Error: " in message:
            return "Failed to enforce the model's input schema: " + message.split("'. Error: ", 1)[1]
        return message

    # --- ONNX conversion (runtime "onnx") --------------------------------------------------------

    def _load_onnx(self, conf: dict):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads()  # one thread per session: the workers already use the CPUs
        self._session = ort.InferenceSession(conf["path"], opts, providers=["CPUExecutionProvider"])
        self._onnx_inputs = conf["inputs"]
        self._onnx_out = conf.get("label") or conf.get("output") or self._session.get_outputs()[0].name
        if conf.get("classes") and self.classes is None:
            self.classes = list(conf["classes"])
        shape = self._session.get_inputs()[0].shape
        self._tensor_rank = len(shape) if isinstance(shape, list) else 0
        self.engine = f"onnxruntime {ort.__version__} (converted {Path(conf['path']).name}, {threads()} thread(s))"

    def _predict_onnx(self, payload):
        import numpy as np

        if (self.onnx or {}).get("kind") == "tensor":
            arr = self.tensor(payload)
            if self._tensor_rank and arr.ndim == self._tensor_rank - 1:
                arr = arr[None, ...]
            # a shape the graph cannot take is the client's fault (400, as the native runtimes say), not a 500
            want = [d if isinstance(d, int) else -1 for d in self._session.get_inputs()[0].shape or []]
            if want and (arr.ndim != len(want) or any(w not in (-1, g) for w, g in zip(want, arr.shape, strict=True))):
                raise BadRequest(f"input: shape {list(arr.shape)} does not match the model's {want}")
            return self._session.run([self._onnx_out], {self._onnx_inputs[0]["name"]: arr})[0]
        cols = self.columns_of(payload)
        feed = {}
        for spec in self._onnx_inputs:
            values = cols[spec["column"]]
            if spec["dtype"] == "string":
                arr = np.array(["" if v is None else str(v) for v in values], dtype=object)
            else:
                try:
                    arr = np.asarray(values, dtype=spec["dtype"])
                except (TypeError, ValueError) as exc:
                    raise BadRequest(f"column '{spec['column']}': {exc}") from exc
            feed[spec["name"]] = arr.reshape(-1, 1)
        out = self._session.run([self._onnx_out], feed)[0]
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out  # one target: 1-D like sklearn

    def tensor(self, payload):
        """The one tensor of a tensor model's request, in any of MLflow's formats, as
        ``mlflow.pyfunc`` reads an unnamed tensor signature: instances/inputs as the (nested) list
        they are; dataframe_split, dataframe_records and CSV as the frame's rows, or, for one column
        whose cells are lists (a flattened tensor per row), those cells reshaped to the signature."""
        fmt, data, _ = split_payload(payload)
        if fmt in ("instances", "inputs"):
            return self._one_tensor(data)
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(data)))[1:]
        elif fmt == "dataframe_split":
            if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                raise BadRequest("dataframe_split needs 'data' (and usually 'columns')")
            rows = data["data"]
        else:
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise BadRequest("records must be a list of objects")
            rows = [list(r.values()) for r in data]
        rows = [r for r in rows if r != []]
        if not rows:
            raise BadRequest(f"{fmt}: no rows")
        if all(isinstance(r, list) and len(r) == 1 and isinstance(r[0], list) for r in rows):
            shape = (self.signature.inputs[0].get("tensor-spec") or {}).get("shape") if self.signature.inputs else None
            arr = self._one_tensor([r[0] for r in rows], f"{fmt}'s list cells")
            if isinstance(shape, list) and len(shape) > 1 and all(isinstance(d, int) and d > 0 for d in shape[1:]):
                try:
                    arr = arr.reshape([-1, *shape[1:]])
                except ValueError as exc:
                    raise BadRequest(f"{fmt}: the cells cannot take the model's shape {shape}: {exc}") from exc
            return arr
        return self._one_tensor(rows, f"{fmt}'s rows")  # CSV's strings too: numpy parses them as float32

    def columns_of(self, payload) -> dict:
        """Column name → list of values, without pandas (the ONNX conversion): the same payload
        shapes as :meth:`frame`, plus ``("csv", bytes)`` for a CSV body with a header row."""
        if isinstance(payload, tuple) and payload[0] == "csv":
            rows = list(csv.reader(io.StringIO(payload[1].decode("utf-8"))))
            if not rows:
                raise BadRequest("empty CSV body")
            header, body = rows[0], [r for r in rows[1:] if r]
            cols = {name: [r[i] if i < len(r) else None for r in body] for i, name in enumerate(header)}
        elif isinstance(payload, dict) and "dataframe_split" in payload:
            spec = payload["dataframe_split"]
            if not isinstance(spec, dict) or "data" not in spec:
                raise BadRequest("dataframe_split needs 'data' (and usually 'columns')")
            names = spec.get("columns") or self.columns
            cols = {name: [row[i] for row in spec["data"]] for i, name in enumerate(names)}
        elif isinstance(payload, dict) and "dataframe_records" in payload:
            cols = self._records(payload["dataframe_records"])
        elif isinstance(payload, dict) and ("instances" in payload or "inputs" in payload):
            data = payload.get("instances", payload.get("inputs"))
            if isinstance(data, dict):
                cols = {k: (v if isinstance(v, list) else [v]) for k, v in data.items()}
            elif isinstance(data, list) and data and isinstance(data[0], dict):
                cols = self._records(data)
            elif isinstance(data, list) and data and isinstance(data[0], list):
                cols = {name: [row[i] for row in data] for i, name in enumerate(self.columns)}
            elif isinstance(data, list) and len(self.columns) == 1:
                cols = {self.columns[0]: data}  # a list of scalars for a one-column model
            else:
                raise BadRequest("instances/inputs must be records, a dict of columns or a list of rows")
        else:
            raise BadRequest("JSON body must hold one of dataframe_split, dataframe_records, instances, inputs")
        missing = [c for c in self.columns if c not in cols]
        if missing:
            raise BadRequest(f"missing input column(s): {', '.join(map(str, missing))}")
        return cols

    @staticmethod
    def _records(records) -> dict:
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BadRequest("records must be a list of objects")
        names = list(dict.fromkeys(k for r in records for k in r))
        return {k: [r.get(k) for r in records] for k in names}

    # --- native requests: MLflow's parsing and schema enforcement, without mlflow ----------------

    def frame(self, payload):
        """The request as a DataFrame (MLflow's ``infer_and_parse_data`` then ``_enforce_schema``
        for a column signature); a Keras model's instances/inputs as a float32 array."""
        import pandas as pd

        if isinstance(payload, pd.DataFrame):
            df = payload
        else:
            fmt, data, _ = split_payload(payload)
            if self.flavor in ("tensorflow", "keras") and (fmt in ("instances", "inputs") or self.signature.is_tensor):
                return self.tensor(payload)
            df = self._request_frame(fmt, data)
        return self.signature.enforce(df) if self.signature.columns else df

    @staticmethod
    def _one_tensor(data, what: str = "instances/inputs"):
        """The rows of a one-tensor model's request (Keras, ONNX conversions) as float32; ``what``
        names them in a refusal (the request's format)."""
        import numpy as np

        if isinstance(data, dict) and len(data) == 1:
            data = next(iter(data.values()))  # {"inputs": {"<input name>": [...]}}, one input
        if isinstance(data, dict):
            raise BadRequest("this model takes one tensor: send instances/inputs as a (nested) list")
        try:
            return np.asarray(data, dtype="float32")
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"{what} must be numbers (the model takes one float32 tensor): {exc}") from exc

    def _request_frame(self, fmt: str, data):
        import pandas as pd

        cols = self.columns
        if fmt == "csv":
            # string columns stay strings ("007"); numbers, booleans and date-times are cast after
            text = {c: object for c in cols if self.types.get(c) in ("string", "binary")}
            try:
                return pd.read_csv(io.StringIO(data), dtype=text)
            except (ValueError, pd.errors.ParserError) as exc:
                raise BadRequest(f"CSV body: {one_line(exc, 200)}") from exc
        try:
            if fmt == "dataframe_split":
                if not isinstance(data, dict) or "data" not in data or set(data) - {"columns", "data", "index"}:
                    raise BadRequest("dataframe_split needs 'data' and optionally 'columns' and 'index'")
                rows, names = data["data"], data.get("columns")
                if names is None and cols and rows and isinstance(rows[0], list) and len(rows[0]) == len(cols):
                    names = cols  # rows without column names: the signature's order
                return pd.DataFrame(rows, columns=names, index=data.get("index"))
            if fmt == "dataframe_records":
                if not isinstance(data, list):
                    raise BadRequest("dataframe_records must be a list of records")
                return pd.DataFrame(data)
            if isinstance(data, dict):  # columns by name; all scalars: one row
                if all(not isinstance(v, (list, dict)) for v in data.values()):
                    return pd.DataFrame([data])
                return pd.DataFrame(data)
            if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
                return pd.DataFrame(data)
            if isinstance(data, list) and data and all(isinstance(r, list) for r in data) and cols:
                return pd.DataFrame(data, columns=cols)  # rows in the signature's column order
            if isinstance(data, list) and len(cols) == 1:
                return pd.DataFrame({cols[0]: data})  # a list of scalars for a one-column model
            if isinstance(data, list) and not cols:
                return pd.DataFrame(data)
        except (ValueError, TypeError, AssertionError) as exc:
            raise BadRequest(f"{fmt} is not a valid table: {one_line(exc, 200)}") from exc
        raise BadRequest(f"{fmt} must be records, a dict of columns or a list of rows")

    def tensors(self, payload):
        """A tensor signature's input: one numpy array, or a dict of them for named tensors."""
        import pandas as pd

        specs = self.signature.inputs
        fmt, data, _ = split_payload(payload)
        if fmt in ("instances", "inputs"):
            if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
                data = self._records(data)
            if isinstance(data, dict) and len(specs) == 1 and not specs[0].get("name") and len(data) == 1:
                data = next(iter(data.values()))
        else:
            df = self._request_frame(fmt, data)
            if len(specs) == 1 and not specs[0].get("name"):
                one = len(df.columns) == 1 and len(df) and isinstance(df.iloc[0, 0], list)
                data = df.iloc[:, 0].tolist() if one else df.to_numpy()
            else:
                data = {c: df[c].tolist() for c in df.columns}
        if isinstance(data, pd.DataFrame):
            data = data.to_numpy()
        if len(specs) == 1 and not specs[0].get("name"):
            if isinstance(data, dict):
                raise BadRequest("this model takes one unnamed tensor: send instances/inputs as a (nested) list")
            return self.signature.tensor(specs[0], data)
        if not isinstance(data, dict):
            raise BadRequest(f"this model takes named tensors ({', '.join(s['name'] for s in specs)}): send a dict")
        missing = [s["name"] for s in specs if s.get("name") not in data]
        if missing:
            raise BadRequest(f"missing input tensor(s): {', '.join(missing)}")
        return {s["name"]: self.signature.tensor(s, data[s["name"]]) for s in specs}

    def inputs(self, payload):
        """What the flavor's pyfunc wrapper gets from mlflow.pyfunc for this request: a DataFrame
        for a column signature, numpy for a tensor one, and as MLflow parses it without signature
        (tables as DataFrames, instances/inputs lists as arrays)."""
        import numpy as np

        if self.flavor in ("tensorflow", "keras"):  # as before: a DataFrame, or instances/inputs as float32
            if isinstance(payload, tuple) and payload[0] == "csv":
                import pandas as pd

                return pd.read_csv(io.BytesIO(payload[1]))
            return self.frame(payload)
        if self.signature.is_tensor:
            return self.tensors(payload)
        if isinstance(payload, dict) and not self.signature.columns:
            fmt, data, _ = split_payload(payload)
            if fmt in ("instances", "inputs") and isinstance(data, list) and not any(isinstance(r, dict) for r in data):
                try:
                    return np.asarray(data)
                except ValueError as exc:
                    raise BadRequest(f"{fmt} is not a (nested) list of one shape: {one_line(exc, 200)}") from exc
        return self.frame(payload)

    def params(self, payload) -> dict | None:
        """The request's params for a native runtime: checked against the signature's params schema
        (MLflow's ``_enforce_params_schema``), or ignored with a note when the model declares none."""
        given = payload.get("params") if isinstance(payload, dict) else None
        if not self.signature.params:
            if given:
                names = sorted(map(str, given)) if isinstance(given, dict) else type(given).__name__
                self.note(f"params {names} ignored: the model's signature declares no params")
            return None
        if given is None:
            return self.signature.check_params({})
        if not isinstance(given, dict):
            raise BadRequest(f"params must be a JSON object, got {type(given).__name__}")
        declared = {str(s.get("name")) for s in self.signature.params}
        if unknown := sorted(set(given) - declared):
            self.note(f"params {unknown} ignored: not in the model's params schema ({', '.join(sorted(declared))})")
        return self.signature.check_params(given)

    # --- answering -------------------------------------------------------------------------------

    def answer(self, payload) -> tuple[Any, Any]:
        """(JSON answer, predictions for the class counts)."""
        if self.runtime == "pyfunc":
            return self._answer_pyfunc(payload)
        predictions = self.predict(payload)
        return {"predictions": predictions}, predictions

    def predict(self, payload):
        if self.runtime == "pyfunc":
            return self._answer_pyfunc(payload)[1]
        params = self.params(payload)
        if self.onnx:
            import numpy as np

            return np.asarray(self._predict_onnx(payload)).tolist()
        return jsonable(self._predict(self.inputs(payload), params))


class Metrics:
    """Prometheus counters shared by the pre-forked workers without locks between processes.

    One anonymous shared mapping (``mmap(-1, n)``: MAP_SHARED, created in the master before any
    fork, so every worker maps the same pages) holds one fixed-layout block of float64 slots per
    worker slot, then one global block. A worker only writes its own block (under a thread lock:
    its threads share it); the master writes the global block (worker restarts) and a dead
    worker's pid slot; ``/metrics``, whichever worker answers it, sums all blocks. A replacement
    worker takes the dead one's slot and adds to its counters, so counters never go back. Labels
    are fixed sets (known paths, the statuses the server answers, class slots by index), so every
    process agrees on the layout. A scrape may see one request counted but not yet in the
    histogram (no cross-process snapshot), never a lost or double-counted one. Counters start at
    zero when the container starts, as Prometheus expects.
    """

    PATHS = ("/invocations", "/ping", "/health", "/version", "/metrics", "other")
    STATUSES = ("200", "400", "404", "405", "408", "413", "415", "500", "503", "504", "other")
    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    MAX_CLASSES = 64  # class slots; predictions beyond them count as "other"
    MODELS = ("champion", "challenger")
    SHADOW = ("scored", "dropped", "error", "rows", "agreeing")

    def __init__(self, workers: int, classes: list | None = None):
        self.workers = max(1, workers)
        self.classes = list(classes or [])
        np_, ns, nb = len(self.PATHS), len(self.STATUSES), len(self.BUCKETS) + 1
        self._req = 0
        self._hist = np_ * ns
        self._sum = self._hist + np_ * nb
        self._cls = self._sum + np_
        self._pid = self._cls + self.MAX_CLASSES + 1  # the live worker's pid, 0 when none
        self._busy = self._pid + 1  # /invocations being processed now
        # per model (champion, challenger): latency histogram and sum, answers given, shadow scorings
        self._mhist = self._busy + 1
        self._msum = self._mhist + len(self.MODELS) * nb
        self._manswers = self._msum + len(self.MODELS)
        self._shadow = self._manswers + len(self.MODELS)  # SHADOW counters
        self._timeouts = self._shadow + len(self.SHADOW)  # predictions answered 504 past PREDICT_TIMEOUT
        self._stuck = self._timeouts + 1  # of those, the ones still holding a thread (0 once the worker is gone)
        self.block = self._stuck + 1
        self._restarts = self.block * self.workers  # global block: workers spawned into a used slot
        self._buf = mmap.mmap(-1, 8 * (self._restarts + 1))
        self._slots = memoryview(self._buf).cast("d")
        self.worker = 0
        self._used: set[int] = set()  # master only: slots that have had a worker
        self._lock = threading.Lock()

    # master side (gunicorn hooks): slots for workers, restarts, the live-worker gauge
    def claim(self, taken: set[int]) -> int:
        """A free slot for a worker about to be forked; a slot used before counts a restart."""
        slot = min(set(range(self.workers)) - taken, default=0)
        if slot in self._used:
            self._slots[self._restarts] += 1
        self._used.add(slot)
        return slot

    def release(self, slot: int) -> None:
        self._slots[slot * self.block + self._pid] = 0
        self._slots[slot * self.block + self._busy] = 0
        self._slots[slot * self.block + self._stuck] = 0

    def started(self, slot: int, pid: int) -> None:
        """A worker has loaded its model and accepts: it counts in mlserve_workers from now on."""
        self.worker = slot
        self._slots[slot * self.block + self._pid] = pid

    def live(self) -> int:
        return sum(1 for w in range(self.workers) if self._slots[w * self.block + self._pid])

    def busy(self, delta: int) -> None:
        with self._lock:
            self._slots[self.worker * self.block + self._busy] += delta

    def timed_out(self) -> None:
        """A prediction ran past PREDICT_TIMEOUT: answered 504, its thread stuck until the worker exits."""
        base = self.worker * self.block
        with self._lock:
            self._slots[base + self._timeouts] += 1
            self._slots[base + self._stuck] += 1

    def stuck(self) -> int:
        """Predictions past PREDICT_TIMEOUT whose worker has not exited yet (all workers)."""
        return int(self._total(self._stuck))

    def _bucket(self, seconds: float) -> int:
        return next((i for i, edge in enumerate(self.BUCKETS) if seconds <= edge), len(self.BUCKETS))

    def scored(self, model: str, seconds: float, answered: bool) -> None:
        """One scoring by ``model`` (champion or challenger): its latency, and whether it answered."""
        m = self.MODELS.index(model)
        base = self.worker * self.block
        with self._lock:
            self._slots[base + self._mhist + m * (len(self.BUCKETS) + 1) + self._bucket(seconds)] += 1
            self._slots[base + self._msum + m] += seconds
            if answered:
                self._slots[base + self._manswers + m] += 1

    def shadow(self, outcome: str, rows: int = 0, agreeing: int = 0) -> None:
        base = self.worker * self.block + self._shadow
        with self._lock:
            self._slots[base + self.SHADOW.index(outcome)] += 1
            self._slots[base + self.SHADOW.index("rows")] += rows
            self._slots[base + self.SHADOW.index("agreeing")] += agreeing

    def model_summary(self, model: str) -> dict:
        """Answers, scorings and latency (mean, p50, p99 from the histogram, in ms) of ``model``."""
        m, nb = self.MODELS.index(model), len(self.BUCKETS) + 1
        counts = [self._total(self._mhist + m * nb + b) for b in range(nb)]
        total = sum(counts)
        out: dict[str, Any] = {"answers": int(self._total(self._manswers + m)), "scorings": int(total)}
        if total:
            out["latency_ms"] = {
                "mean": round(1000 * self._total(self._msum + m) / total, 3),
                "p50": _quantile(counts, self.BUCKETS, 0.5),
                "p99": _quantile(counts, self.BUCKETS, 0.99),
            }
        return out

    def shadow_summary(self) -> dict:
        got = {name: int(self._total(self._shadow + i)) for i, name in enumerate(self.SHADOW)}
        rows = got.pop("rows")
        agreeing = got.pop("agreeing")
        return {
            "requests": got,
            "rows": rows,
            "agreeing_rows": agreeing,
            "agreement": round(agreeing / rows, 6) if rows else None,
        }

    def _path(self, path: str) -> int:
        return self.PATHS.index(path) if path in self.PATHS else len(self.PATHS) - 1

    def observe(self, path: str, status: int, seconds: float) -> None:
        p = self._path(path)
        code = str(status)
        st = self.STATUSES.index(code) if code in self.STATUSES else len(self.STATUSES) - 1
        b = self._bucket(seconds)
        base = self.worker * self.block
        with self._lock:
            self._slots[base + self._req + p * len(self.STATUSES) + st] += 1
            self._slots[base + self._hist + p * (len(self.BUCKETS) + 1) + b] += 1
            self._slots[base + self._sum + p] += seconds

    def count_predictions(self, predictions) -> None:
        """Class counts: argmax of probability rows, else the label (its index among the classes,
        or the integer itself when no class list is known); records and dicts of outputs by their
        first output; anything else (an LLM's text) is not counted."""
        counts: dict[int, int] = {}
        other = self.MAX_CLASSES
        if isinstance(predictions, dict):  # a dict of outputs: count the first one that is a list
            predictions = next((v for v in predictions.values() if isinstance(v, list)), None)
        if not isinstance(predictions, list):
            return
        for row in predictions:
            if isinstance(row, dict):  # a record: its first scalar value (the label, for a classifier)
                row = next((v for v in row.values() if not isinstance(v, (dict, list))), None)
                if row is None:
                    continue
            if isinstance(row, list):
                if not row or not all(isinstance(v, (int, float)) for v in row):
                    continue
                idx = max(range(len(row)), key=row.__getitem__) if len(row) > 1 else int(row[0] >= 0.5)
            elif self.classes and row in self.classes:
                idx = self.classes.index(row)
            elif (
                not self.classes and isinstance(row, int) and not isinstance(row, bool) and 0 <= row < self.MAX_CLASSES
            ):
                idx = row
            else:
                idx = other
            idx = idx if idx < self.MAX_CLASSES else other
            counts[idx] = counts.get(idx, 0) + 1
        base = self.worker * self.block + self._cls
        with self._lock:
            for idx, n in counts.items():
                self._slots[base + idx] += n

    def _total(self, offset: int) -> float:
        return sum(self._slots[w * self.block + offset] for w in range(self.workers))

    def _class_name(self, idx: int) -> str:
        if idx == self.MAX_CLASSES:
            return "other"
        return str(self.classes[idx]) if idx < len(self.classes) else str(idx)

    def _histogram(self, name: str, labels: str, counts: list[float], seconds: float) -> list[str]:
        """Prometheus histogram lines (cumulative buckets, sum, count); none for an empty one."""
        total = sum(counts)
        if not total:
            return []
        out, running = [], 0.0
        for b, edge in enumerate(self.BUCKETS):
            running += counts[b]
            out.append(f'{name}_bucket{{{labels},le="{edge:g}"}} {running:.0f}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {total:.0f}')
        out.append(f"{name}_sum{{{labels}}} {seconds:.6f}")
        out.append(f"{name}_count{{{labels}}} {total:.0f}")
        return out

    def render(self) -> str:
        out = [
            "# HELP mlserve_requests_total HTTP requests answered, by path and status.",
            "# TYPE mlserve_requests_total counter",
        ]
        ns, nb = len(self.STATUSES), len(self.BUCKETS) + 1
        for p, path in enumerate(self.PATHS):
            for st, code in enumerate(self.STATUSES):
                n = self._total(self._req + p * ns + st)
                if n:
                    out.append(f'mlserve_requests_total{{path="{path}",status="{code}"}} {n:.0f}')
        out += [
            "# HELP mlserve_request_duration_seconds Time from request line to response written, by path.",
            "# TYPE mlserve_request_duration_seconds histogram",
        ]
        for p, path in enumerate(self.PATHS):
            counts = [self._total(self._hist + p * nb + b) for b in range(nb)]
            out += self._histogram(
                "mlserve_request_duration_seconds", f'path="{path}"', counts, self._total(self._sum + p)
            )
        out += [
            "# HELP mlserve_predictions_total Predictions returned by /invocations, by predicted class.",
            "# TYPE mlserve_predictions_total counter",
        ]
        for idx in range(self.MAX_CLASSES + 1):
            n = self._total(self._cls + idx)
            if n:
                out.append(f'mlserve_predictions_total{{class="{label_value(self._class_name(idx))}"}} {n:.0f}')
        out += [
            "# HELP mlserve_model_latency_seconds Scoring time per model (champion, challenger), shadow scorings too.",
            "# TYPE mlserve_model_latency_seconds histogram",
        ]
        for m, model in enumerate(self.MODELS):
            counts = [self._total(self._mhist + m * nb + b) for b in range(nb)]
            out += self._histogram(
                "mlserve_model_latency_seconds", f'model="{model}"', counts, self._total(self._msum + m)
            )
        out += [
            "# HELP mlserve_model_answers_total /invocations answered by each model (the challenger: canary share).",
            "# TYPE mlserve_model_answers_total counter",
        ]
        for m, model in enumerate(self.MODELS):
            out.append(f'mlserve_model_answers_total{{model="{model}"}} {self._total(self._manswers + m):.0f}')
        shadow = self.shadow_summary()
        out += [
            "# HELP mlserve_shadow_requests_total Requests also scored by the challenger, by outcome.",
            "# TYPE mlserve_shadow_requests_total counter",
            *(f'mlserve_shadow_requests_total{{outcome="{k}"}} {v}' for k, v in shadow["requests"].items()),
            "# HELP mlserve_shadow_rows_total Rows compared between champion and challenger (shadow scorings).",
            "# TYPE mlserve_shadow_rows_total counter",
            f"mlserve_shadow_rows_total {shadow['rows']}",
            "# HELP mlserve_shadow_agreeing_rows_total Compared rows on which both models agree.",
            "# TYPE mlserve_shadow_agreeing_rows_total counter",
            f"mlserve_shadow_agreeing_rows_total {shadow['agreeing_rows']}",
        ]
        out += [
            "# HELP mlserve_workers Worker processes alive now (the master replaces one that dies).",
            "# TYPE mlserve_workers gauge",
            f"mlserve_workers {self.live()}",
            "# HELP mlserve_worker_restarts_total Workers started in place of one that died.",
            "# TYPE mlserve_worker_restarts_total counter",
            f"mlserve_worker_restarts_total {self._slots[self._restarts]:.0f}",
            "# HELP mlserve_inflight_requests /invocations requests being processed now.",
            "# TYPE mlserve_inflight_requests gauge",
            f"mlserve_inflight_requests {self._total(self._busy):.0f}",
            "# HELP mlserve_prediction_timeouts_total Predictions answered 504 past PREDICT_TIMEOUT (worker recycled).",
            "# TYPE mlserve_prediction_timeouts_total counter",
            f"mlserve_prediction_timeouts_total {self._total(self._timeouts):.0f}",
            "# HELP mlserve_stuck_predictions Predictions past PREDICT_TIMEOUT still holding a thread in a worker.",
            "# TYPE mlserve_stuck_predictions gauge",
            f"mlserve_stuck_predictions {self.stuck()}",
        ]
        return "\n".join(out) + "\n"


def label_value(value) -> str:
    """A Prometheus label value, escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _quantile(counts: list[float], edges: tuple, q: float) -> float | None:
    """The ``q`` quantile in ms of a histogram (``counts`` per bucket, the last one +Inf), linear
    within its bucket, as Prometheus' histogram_quantile; the last finite edge for the +Inf bucket."""
    total = sum(counts)
    if not total:
        return None
    rank, running, low = q * total, 0.0, 0.0
    for count, edge in zip(counts, (*edges, edges[-1]), strict=True):
        if count and running + count >= rank:
            return round(1000 * (low + (edge - low) * (rank - running) / count), 3)
        running += count
        low = edge
    return round(1000 * edges[-1], 3)


def agreement(champion, challenger) -> tuple[int, int]:
    """(rows compared, rows on which both agree): labels equal, numbers within 1 % (regression)."""
    if isinstance(champion, dict) and isinstance(challenger, dict):
        champion = next((v for v in champion.values() if isinstance(v, list)), None)
        challenger = next((v for v in challenger.values() if isinstance(v, list)), None)
    if not isinstance(champion, list):
        champion = [champion]
    if not isinstance(challenger, list) or len(challenger) != len(champion):
        return len(champion), 0
    agree = 0
    for a, b in zip(map(profile.label, champion), map(profile.label, challenger), strict=True):
        if isinstance(a, float) or isinstance(b, float):
            numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
            agree += bool(numbers and abs(a - b) <= 0.01 * max(abs(a), abs(b)))
        else:
            agree += a == b
    return len(champion), agree


class Traffic:
    """How /invocations is split between the champion and a challenger baked into the image:
    ``CANARY_RATIO`` of requests are answered by the challenger; ``SHADOW_RATIO`` of the others are
    scored by the challenger too, in the background, after the champion's answer has gone (its
    agreement and latency go to /metrics and /monitoring; at most ``SHADOW_QUEUE`` wait, the rest
    are dropped and counted)."""

    def __init__(self, env=None, has_challenger: bool = False):
        env = os.environ if env is None else env
        self.canary = self._ratio(env, "CANARY_RATIO", has_challenger)
        self.shadow = self._ratio(env, "SHADOW_RATIO", has_challenger)
        self.queue_size = settings.whole("SHADOW_QUEUE", env, default=64)

    @staticmethod
    def _ratio(env, name: str, has_challenger: bool) -> float:
        value = settings.share(name, env)
        if value and not has_challenger:
            raise settings.SettingError(
                f"{name}={env.get(name)} but this image has no challenger model; "
                f"fix: render it with challenger-dir, or unset {name}"
            )
        return value


class Background:
    """Work done after the answer has gone, in one thread per worker (started in the worker: a
    thread does not survive the fork), from a bounded queue: when it is full, the work is dropped
    (``dropped()``), never the request delayed."""

    def __init__(self, name: str, size: int):
        self.name = name
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = None

    def submit(self, payload, predictions) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((payload, predictions))
        except queue.Full:
            self.dropped()

    def _run(self) -> None:
        while True:
            self.work(*self._queue.get())

    def work(self, payload, predictions) -> None:
        raise NotImplementedError

    def dropped(self) -> None:
        pass


class Shadow(Background):
    """Scores shadow requests with the challenger and counts its agreement with the champion."""

    def __init__(self, challenger: Model, metrics: Metrics, size: int):
        super().__init__("shadow", size)
        self.challenger, self.metrics = challenger, metrics

    def dropped(self) -> None:
        self.metrics.shadow("dropped")

    def work(self, payload, champion) -> None:
        started = time.perf_counter()
        try:
            _, predictions = self.challenger.answer(payload)
        except Exception as exc:  # noqa: BLE001 - a failing challenger must never touch the answers
            self.challenger.note(f"shadow: the challenger failed: {exc.__class__.__name__}: {one_line(exc, 300)}")
            self.metrics.shadow("error")
            return
        self.metrics.scored("challenger", time.perf_counter() - started, answered=False)
        rows, agreeing = agreement(jsonable(champion), jsonable(predictions))
        self.metrics.shadow("scored", rows, agreeing)


class Drift(Background):
    """Bins a share (``DRIFT_SAMPLE``) of the champion's requests and predictions into the
    sliding window of ``profile.DriftMonitor`` (no row is kept)."""

    def __init__(self, model: Model, monitor, sample: float, threshold: float):
        super().__init__("drift", 256)
        self.model, self.monitor, self.sample, self.threshold = model, monitor, sample, threshold
        self.tensor = any("stat" in f for f in monitor.features)

    def work(self, payload, predictions) -> None:
        try:
            if self.tensor:
                self.monitor.add(None, self.model.tensor(payload), jsonable(predictions))
            else:
                self.monitor.add(self.model.columns_of(payload), None, jsonable(predictions))
        except Exception as exc:  # noqa: BLE001 - monitoring must never touch the answers
            self.model.note(f"drift: request not binned: {exc.__class__.__name__}: {one_line(exc, 300)}")

    def gauges(self) -> str:
        report = self.monitor.report(self.threshold)
        out = [
            "# HELP mlserve_drift_psi Population stability index of each input feature, window vs reference.",
            "# TYPE mlserve_drift_psi gauge",
        ]
        out += [
            f'mlserve_drift_psi{{feature="{label_value(f["name"])}"}} {f["psi"]}'
            for f in report["features"]
            if f["psi"] is not None
        ]
        pred = (report.get("predictions") or {}).get("psi")
        if pred is not None:
            out += [
                "# HELP mlserve_drift_prediction_psi Population stability index of the predicted classes.",
                "# TYPE mlserve_drift_prediction_psi gauge",
                f"mlserve_drift_prediction_psi {pred}",
            ]
        out += [
            "# HELP mlserve_drift_window_rows Rows in the drift window.",
            "# TYPE mlserve_drift_window_rows gauge",
            f"mlserve_drift_window_rows {report['window']['rows']}",
        ]
        return "\n".join(out) + "\n"


REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
Answer = tuple[int, bytes, str, list]  # status, body, content type, extra headers


class App:
    """The MLflow scoring protocol as a WSGI application (served by gunicorn, see supervisor.py).

    ``max_concurrency`` bounds the /invocations requests a worker processes at once; one more is
    refused at once with 503 and ``Retry-After`` (a load balancer or client retries elsewhere or
    later), never queued into a hang. Probes (/ping, /health) and /metrics are never refused.
    A prediction running past ``predict_timeout`` seconds (0: no limit) is answered 504 by the
    watchdog (watchdog.py), and its worker replaced."""

    def __init__(
        self,
        holder: dict,
        info: dict,
        metrics: Metrics,
        max_concurrency: int = 16,
        traffic: Traffic | None = None,
        drift: Drift | None = None,
        predict_timeout: int = 0,
    ):
        self.holder, self.info, self.metrics = holder, info, metrics
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self.traffic = traffic or Traffic({}, False)
        challenger = holder.get("challenger")
        self.shadow = Shadow(challenger, metrics, self.traffic.queue_size) if challenger is not None else None
        self._random = random.Random()
        self.drift = drift
        self.watchdog = watchdog.Watchdog(predict_timeout, self._late)

    def __call__(self, environ, start_response):
        started = environ["mlserve.started"] = time.perf_counter()
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if method in ("GET", "HEAD"):
            status, body, ctype, headers = self.get(path)
        elif method == "POST" and path == "/invocations":
            status, body, ctype, headers = self.invocations(environ)
        elif method == "POST":
            status, body, ctype, headers = self._error(404, "ENDPOINT_NOT_FOUND", f"no route {path}")
        else:
            status, body, ctype, headers = self._error(
                405, "BAD_REQUEST", f"method {method} not allowed; use GET or POST"
            )
            headers.append(("Allow", "GET, HEAD, POST"))
        if environ.get(watchdog.ABANDONED):  # the watchdog answered 504, counted it and closed the connection
            raise BrokenPipeError(errno.EPIPE, "answered by the predict watchdog")
        # counted before the answer leaves: a client that reads /metrics after its answer sees it
        seconds = time.perf_counter() - started
        self.metrics.observe(path, status, seconds)
        if ACCESS_LOG:  # one line per request on stderr, no bodies
            sys.stderr.write(
                f'{environ.get("REMOTE_ADDR", "-")} "{method} {path}" {status} {len(body)} {seconds * 1000:.1f}ms\n'
            )
        start_response(
            f"{status} {REASONS.get(status, '')}".strip(),
            [("Content-Type", ctype), ("Content-Length", str(len(body))), *headers],
        )
        return [body]

    @staticmethod
    def _json(status: int, obj) -> Answer:
        return status, json.dumps(obj).encode(), "application/json", []

    @classmethod
    def _error(cls, status: int, code: str, message: str) -> Answer:
        return cls._json(status, {"error_code": code, "message": message})

    def _late(self, environ: dict, thread: int) -> None:
        """The watchdog's answer to a prediction past PREDICT_TIMEOUT, from its thread (watchdog.py):
        504 DEADLINE_EXCEEDED, counted, one line naming where the prediction is stuck."""
        limit = self.watchdog.seconds
        status, body, ctype, _ = self._error(
            504,
            "DEADLINE_EXCEEDED",
            f"the prediction did not finish within PREDICT_TIMEOUT={limit} s; the worker holding it is being "
            "replaced. Fix: a faster model or a smaller request, or a larger PREDICT_TIMEOUT",
        )
        seconds = time.perf_counter() - environ.get("mlserve.started", time.perf_counter())
        self.metrics.timed_out()
        self.metrics.observe("/invocations", status, seconds)
        sent = str(environ.get("SERVER_PROTOCOL", "")).startswith("HTTP/1") and watchdog.respond(
            environ.get("gunicorn.socket"), f"{status} {REASONS[status]}", body, ctype
        )
        sys.stderr.write(
            f"prediction past PREDICT_TIMEOUT={limit}s in worker {self.metrics.worker + 1}, pid {os.getpid()}, stuck "
            f"at {watchdog.where(thread)}: answered {status}{'' if sent else ' (the client had gone)'}; "
            "recycling the worker\n"
        )
        if ACCESS_LOG:
            sys.stderr.write(
                f'{environ.get("REMOTE_ADDR", "-")} "POST /invocations" {status} {len(body)} {seconds * 1000:.1f}ms\n'
            )
        sys.stderr.flush()

    def get(self, path: str) -> Answer:
        loaded = self.holder.get("model") is not None
        if path == "/ping":
            return 200 if loaded else 503, b"\n", "text/plain", []
        if path == "/health":
            health: dict[str, Any] = {
                "status": "ok" if loaded else "loading",
                "flavor": self.info.get("flavor", ""),
                "runtime": self.info.get("runtime", "native"),
            }
            stuck = self.metrics.stuck() if loaded else 0
            if stuck:  # still serving (other workers, a fresh one soon): 200, so no probe restarts the container
                health["status"] = "degraded"
                health["stuck_predictions"] = stuck
                health["message"] = (
                    f"{stuck} prediction(s) ran past PREDICT_TIMEOUT; the worker(s) holding them are being replaced"
                )
            return self._json(200 if loaded else 503, health)
        if path == "/version":
            return self._json(200, self.info)
        if path == "/metrics":
            text = self.metrics.render() + (self.drift.gauges() if self.drift else "")
            return 200, text.encode(), "text/plain; version=0.0.4; charset=utf-8", []
        if path == "/monitoring":
            return self._json(200, self.monitoring())
        if path == "/monitoring/drift":
            if self.drift is None:
                return self._error(
                    404, "ENDPOINT_NOT_FOUND", "this image has no drift profile; fix: render it with reference-data"
                )
            return self._json(200, self.drift.monitor.report(self.drift.threshold))
        return self._error(404, "ENDPOINT_NOT_FOUND", f"no route {path}")

    def monitoring(self) -> dict:
        """Champion and challenger side by side: answers, latency, shadow agreement."""
        out: dict[str, Any] = {
            "champion": {"run_id": self.info.get("run_id", ""), **self.metrics.model_summary("champion")},
            "canary_ratio": self.traffic.canary,
            "shadow_ratio": self.traffic.shadow,
        }
        if self.shadow is not None:
            out["challenger"] = {
                "run_id": (self.info.get("challenger") or {}).get("run_id", ""),
                **self.metrics.model_summary("challenger"),
            }
            out["shadow"] = self.metrics.shadow_summary()
        return out

    def _body(self, environ) -> bytes | Answer:
        """The request body (at most MAX_BODY bytes; chunked bodies too), or the answer refusing it."""
        stream = environ["wsgi.input"]
        text = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()
        try:
            length = int(text) if text else (-2 if chunked else 0)
        except ValueError:
            length = -1
        if length == -1 or length > MAX_BODY:
            return self._error(
                413 if length > MAX_BODY else 400, "BAD_REQUEST", f"Content-Length must be 0..{MAX_BODY} bytes"
            )
        try:
            raw = stream.read(MAX_BODY + 1) if length == -2 else stream.read(length)
        except OSError as exc:  # the client stalled past REQUEST_TIMEOUT or went away
            return self._error(408, "BAD_REQUEST", one_line(exc))
        if len(raw) > MAX_BODY:
            return self._error(413, "BAD_REQUEST", f"the body must be at most {MAX_BODY} bytes")
        return raw

    @staticmethod
    def _discard(environ) -> None:
        """Read and drop the body of a refused request (up to MAX_BODY): a server that answers and
        closes with body bytes unread makes the client's send fail (a broken pipe), so it would
        never read the 503 and its Retry-After."""
        stream = environ["wsgi.input"]
        chunked = "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()
        try:
            left = int(environ.get("CONTENT_LENGTH") or (MAX_BODY if chunked else 0))
        except ValueError:
            return
        try:
            while 0 < left <= MAX_BODY:
                chunk = stream.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def invocations(self, environ) -> Answer:
        if not self._slots.acquire(blocking=False):
            status, body, ctype, headers = self._error(
                503,
                "TEMPORARILY_UNAVAILABLE",
                f"this worker is already scoring {self.max_concurrency} requests (MAX_CONCURRENCY); retry",
            )
            self._discard(environ)
            return status, body, ctype, [("Retry-After", "1")]
        self.metrics.busy(+1)
        try:
            return self._score(environ)
        finally:
            self.metrics.busy(-1)
            self._slots.release()

    def _score(self, environ) -> Answer:
        raw = self._body(environ)
        if isinstance(raw, tuple):
            return raw
        model = self.holder.get("model")
        if model is None:
            return self._error(503, "NOT_READY", "the model is still loading")
        ctype = (environ.get("CONTENT_TYPE") or "application/json").split(";")[0].strip().lower()
        try:
            if ctype == "text/csv":
                payload = ("csv", raw)
            elif ctype == "application/json":
                payload = json.loads(raw or b"null")
            else:
                return self._error(
                    415, "BAD_REQUEST", f"unsupported content type {ctype}; use application/json or text/csv"
                )
            role = "champion"
            if self.shadow is not None and self._random.random() < self.traffic.canary:
                model, role = self.shadow.challenger, "challenger"
            started = time.perf_counter()
            token = self.watchdog.start(environ)
            try:
                answer, predictions = model.answer(payload)
            finally:
                late = not self.watchdog.finish(token)
            if late:  # the watchdog has answered it (504); __call__ sends nothing more
                return self._error(504, "DEADLINE_EXCEEDED", "answered by the watchdog")
            self.metrics.scored(role, time.perf_counter() - started, answered=True)
        except (BadRequest, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
            return self._error(400, "BAD_REQUEST", one_line(exc))
        except Exception as exc:  # noqa: BLE001 - a scoring failure must answer, not kill the worker
            return self._error(500, "INTERNAL_ERROR", f"{exc.__class__.__name__}: {one_line(exc, 300)}")
        # counted before the answer leaves, like observe(): a client reading /metrics after its answer sees it
        self.metrics.count_predictions(predictions)
        status, body, ctype, headers = self._json(200, answer)
        if self.shadow is not None:
            headers.append(("X-Model-Role", role))
            if role == "champion" and self._random.random() < self.traffic.shadow:
                self.shadow.submit(payload, predictions)
        if self.drift is not None and role == "champion" and self._random.random() < self.drift.sample:
            self.drift.submit(payload, predictions)
        return status, body, ctype, headers


def cpu_count() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup v2/v1 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = None
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            quota = int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        try:
            q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            per = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            quota = q / per if q > 0 else None
        except (OSError, ValueError):
            pass
    if quota:
        n = min(n, max(1, int(quota + 0.999)))
    return max(1, n)


def _spec(info: dict, model_dir: Path, onnx_env: str, onnx_default: str) -> tuple[Path, dict | None, str]:
    """(model folder, ONNX settings or None, runtime) of the champion (``info``) or the challenger
    (``info["challenger"]``, its folder relative to the champion's parent unless absolute)."""
    runtime = info.setdefault("runtime", "native")
    onnx = None
    if runtime == "onnx":
        onnx = dict(info.get("onnx") or {})
        onnx["path"] = os.environ.get(onnx_env) or onnx.get("path") or onnx_default
        onnx.setdefault("classes", info.get("classes"))
    return model_dir, onnx, runtime


def _load(holder: dict, key: str, spec: tuple[Path, dict | None, str]) -> Model:
    """Load ``spec`` into ``holder[key]``, or stop the process with one line (exit 3: gunicorn halts)."""
    if key not in holder:
        model_dir, onnx, runtime = spec
        try:
            holder[key] = Model(model_dir, onnx, runtime=runtime)
        except BaseException as exc:  # noqa: BLE001 - a model that cannot load must not leave a server up
            sys.stderr.write(
                f"{key} load failed ({runtime} runtime): {exc.__class__.__name__}: {one_line(exc, 2000)}\n"
            )
            sys.stderr.flush()
            os._exit(3)  # gunicorn: a worker that cannot boot halts the server with code 3
    return holder[key]


def _drift_monitor(info: dict, model_dir: Path, workers: int):
    """(DriftMonitor, (sample, threshold)) when the image has a drift profile (DRIFT_PROFILE, else
    drift-profile.json beside the model folder), else (None, ()). Bad settings: one line, exit 2."""
    path = Path(os.environ.get("DRIFT_PROFILE") or Path(model_dir).parent / "drift-profile.json")
    if not path.is_file():
        return None, ()
    try:
        window = settings.whole("DRIFT_WINDOW", default=10000, low=profile.SUBWINDOWS)
        sample = settings.share("DRIFT_SAMPLE", default=1.0)
        threshold = settings.positive("DRIFT_THRESHOLD", default=0.2)
    except settings.SettingError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(2)
    return profile.DriftMonitor(json.loads(path.read_text()), workers, window), (sample, threshold)


def serve(model_dir: Path, port: int, workers: int, info: dict) -> None:
    """Serve under gunicorn (supervisor.py): the master binds once and supervises ``workers``
    processes; each loads the model (and the challenger, if the image has one) before it accepts
    (native sklearn models: once, in the master, before the fork)."""
    from . import supervisor

    ch_info = info.get("challenger") if isinstance(info.get("challenger"), dict) else None
    try:
        settings = supervisor.options(port, workers)
        concurrency = supervisor.setting("MAX_CONCURRENCY")
        predict_timeout = supervisor.setting("PREDICT_TIMEOUT")
        traffic = Traffic(has_challenger=ch_info is not None)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(2)
    holder: dict = {}
    specs = {"model": _spec(info, model_dir, "ONNX_MODEL", "/app/model.onnx")}
    if ch_info is not None:
        where = Path(os.environ.get("CHALLENGER_DIR") or ch_info.get("path") or "challenger")
        where = where if where.is_absolute() else Path(model_dir).parent / where
        specs["challenger"] = _spec(ch_info, where, "CHALLENGER_ONNX_MODEL", "/app/challenger.onnx")
    # preload (load once, share pages copy-on-write) where loading is fork-safe: native sklearn;
    # onnxruntime, xgboost, LightGBM and TensorFlow start thread pools, and a pyfunc model may do
    # anything, so each worker loads its own after the fork
    flavors = [info.get("flavor")] + ([ch_info.get("flavor")] if ch_info else [])
    preload = all(spec[2] == "native" for spec in specs.values()) and set(flavors) == {"sklearn"}
    classes = info.get("classes")
    if not classes:
        meta = (read_mlmodel(Path(model_dir)).get("metadata") or {}).get("classes")
        classes = meta if isinstance(meta, list) else None
    metrics = Metrics(workers, classes)
    monitor, drift_settings = _drift_monitor(info, model_dir, workers)

    def load():
        """The WSGI app, with the models loaded (gunicorn calls it in a worker before it accepts,
        or in the master before the fork when preloading)."""
        fresh = "model" not in holder
        for key, spec in specs.items():
            _load(holder, key, spec)
        if fresh:
            # every worker loads the same model, so all agree on the class slots learnt from it
            if not metrics.classes and holder["model"].classes:
                metrics.classes = list(holder["model"].classes)
            info["engine"] = holder["model"].engine  # /version: what actually serves the model
            if ch_info is not None:
                ch_info["engine"] = holder["challenger"].engine
        drift = Drift(holder["model"], monitor, *drift_settings) if monitor is not None else None
        return App(holder, info, metrics, concurrency, traffic, drift, predict_timeout)

    def pre_fork(server, worker):  # master
        worker.slot = metrics.claim({getattr(w, "slot", 0) for w in server.WORKERS.values()})

    def post_fork(server, worker):  # worker
        metrics.worker = worker.slot
        if monitor is not None:
            monitor.worker = worker.slot

    def post_worker_init(worker):  # worker, model loaded, about to accept
        metrics.started(worker.slot, os.getpid())
        worker.wsgi.watchdog.abandon = worker.abandon  # a prediction past PREDICT_TIMEOUT recycles this worker
        model, challenger = holder["model"], holder.get("challenger")
        beside = ""
        if challenger is not None:
            beside = (
                f"; challenger {challenger.dir} (flavor {challenger.flavor}, runtime {challenger.runtime}: "
                f"{challenger.engine}), canary {traffic.canary:g}, shadow {traffic.shadow:g}"
            )
        sys.stderr.write(
            f"serving {model_dir} (flavor {model.flavor}, runtime {model.runtime}: {model.engine}) on :{port}, "
            f"worker {metrics.worker + 1}/{metrics.workers}, pid {os.getpid()}{beside}\n"
        )
        sys.stderr.flush()

    def child_exit(server, worker):  # master, a worker is gone
        metrics.release(getattr(worker, "slot", 0))

    settings["preload_app"] = preload
    supervisor.run(
        settings,
        load,
        {"pre_fork": pre_fork, "post_fork": post_fork, "post_worker_init": post_worker_init, "child_exit": child_exit},
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("MODEL_DIR", "/app/model"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    ap.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "0") or 0))
    ap.add_argument("--info", default=os.environ.get("MODEL_INFO", "/app/model-info.json"))
    args = ap.parse_args(argv)
    info = {}
    if Path(args.info).is_file():
        info = json.loads(Path(args.info).read_text())
    if "flavor" not in info:
        flavors = read_mlmodel(Path(args.model)).get("flavors") or {}
        info["flavor"] = next((f for f in flavors if f != "python_function"), "python_function")
    info.setdefault("runtime", "native")
    workers = args.workers or min(cpu_count(), 4)
    serve(Path(args.model), args.port, workers, info)


if __name__ == "__main__":
    main()
