"""A lean scoring server for the MLflow protocol, with no dependency on the mlflow package.

Endpoints: ``GET /ping`` and ``GET /health`` (200 once the model is loaded), ``GET /version``
(model and build facts), ``GET /metrics`` (Prometheus text: requests by path and status, latency
histogram, predicted classes; summed over all workers), ``POST /invocations`` (JSON
``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``; or CSV with a header row)
answering ``{"predictions": [...]}``.

Runtimes: the model's native flavor (sklearn, Keras/TensorFlow), or ONNX through onnxruntime when
``model-info.json`` says ``"runtime": "onnx"`` (render-dockerfile wrote ``model.onnx`` after an
equivalence check); the ONNX path needs only onnxruntime, numpy and pyyaml (no pandas).

Run: ``python -m serve.server --model /app/model --port 8080``. Worker processes (pre-forked on
one listening socket) default to the CPUs this container may use (affinity and cgroup quota),
at most 4; ``WORKERS`` overrides. The server writes no files (read-only root file system friendly).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import mmap
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = int(os.environ.get("MAX_REQUEST_BYTES", str(64 * 1024 * 1024)))


class BadRequest(Exception):
    pass


def read_mlmodel(model_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((model_dir / "MLmodel").read_text()) or {}


class Model:
    """Loads an MLflow model directory by its native flavor, or its ONNX conversion (``onnx``: the
    ``onnx`` section of model-info.json, with ``path`` of the .onnx file)."""

    def __init__(self, model_dir: Path, onnx: dict | None = None):
        self.dir = Path(model_dir)
        self.meta = read_mlmodel(self.dir)
        flavors = self.meta.get("flavors") or {}
        self.flavor = next((f for f in flavors if f != "python_function"), "python_function")
        self.columns, self.types = self._signature_columns()
        meta_classes = (self.meta.get("metadata") or {}).get("classes")
        self.classes = list(meta_classes) if isinstance(meta_classes, list) else None
        self.onnx = onnx
        if onnx:
            self._load_onnx(onnx)
        elif self.flavor == "sklearn":
            self._model = self._load_sklearn(flavors["sklearn"])
            self._predict = self._model.predict
            if self.classes is None and hasattr(self._model, "classes_"):
                self.classes = [c.item() if hasattr(c, "item") else c for c in self._model.classes_]
        elif self.flavor in ("tensorflow", "keras"):
            self._model = self._load_keras(flavors[self.flavor])
            self._predict = self._predict_keras
        else:
            raise RuntimeError(f"unsupported flavor {self.flavor}")

    def _signature_columns(self):
        sig = self.meta.get("signature") or {}
        try:
            spec = json.loads(sig.get("inputs") or "[]")
        except (TypeError, ValueError):
            spec = []
        cols = [c.get("name") for c in spec if isinstance(c, dict) and c.get("name")]
        types = {c["name"]: c.get("type") for c in spec if isinstance(c, dict) and c.get("name")}
        return cols, types

    def _load_sklearn(self, conf: dict):
        path = self.dir / conf.get("pickled_model", "model.pkl")
        fmt = conf.get("serialization_format", "cloudpickle")
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
        data = self.dir / conf.get("data", "data")
        candidates = sorted(list(data.rglob("*.keras")) + list(data.rglob("*.h5")))
        if candidates:
            return keras.models.load_model(candidates[0], compile=False)
        saved = self.dir / conf["saved_model_dir"] if conf.get("saved_model_dir") else data / "model"
        return keras.layers.TFSMLayer(str(saved), call_endpoint="serving_default")

    def _load_onnx(self, conf: dict):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # one thread per session: the workers already use the CPUs; ONNX_THREADS overrides
        opts.intra_op_num_threads = int(os.environ.get("ONNX_THREADS", "1") or 1)
        self._session = ort.InferenceSession(conf["path"], opts, providers=["CPUExecutionProvider"])
        self._onnx_inputs = conf["inputs"]
        self._onnx_out = conf.get("label") or conf.get("output") or self._session.get_outputs()[0].name
        if conf.get("classes") and self.classes is None:
            self.classes = list(conf["classes"])
        shape = self._session.get_inputs()[0].shape
        self._tensor_rank = len(shape) if isinstance(shape, list) else 0

    def _predict_onnx(self, payload):
        import numpy as np

        if (self.onnx or {}).get("kind") == "tensor":
            arr = self.tensor(payload)
            if self._tensor_rank and arr.ndim == self._tensor_rank - 1:
                arr = arr[None, ...]
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

    def _predict_keras(self, frame):
        import numpy as np

        arr = frame if isinstance(frame, np.ndarray) else np.asarray(frame.values.tolist(), dtype="float32")
        arr = arr.astype("float32")
        shape = getattr(self._model, "input_shape", None)
        if isinstance(shape, tuple) and len(shape) == arr.ndim + 1:
            arr = arr[None, ...]  # one instance sent without the batch dimension
        with self._keras_lock:
            if hasattr(self._model, "predict"):
                return self._model.predict(arr, verbose=0)
            return self._model(arr)  # a SavedModel through TFSMLayer: a layer, no predict()

    def tensor(self, payload):
        import numpy as np

        if not isinstance(payload, dict) or not ("instances" in payload or "inputs" in payload):
            raise BadRequest("this model takes one tensor: send JSON with instances or inputs")
        data = payload.get("instances", payload.get("inputs"))
        if isinstance(data, dict) and len(data) == 1:
            data = next(iter(data.values()))  # {"inputs": {"<input name>": [...]}}, one input
        if isinstance(data, dict):
            raise BadRequest("this model takes one tensor: send instances/inputs as a (nested) list")
        try:
            return np.asarray(data, dtype="float32")
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"instances/inputs is not a numeric (nested) list: {exc}") from exc

    def columns_of(self, payload) -> dict:
        """Column name → list of values, without pandas (the ONNX path): the same payload shapes
        as :meth:`frame`, plus ``("csv", bytes)`` for a CSV body with a header row."""
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

    def frame(self, payload):
        import pandas as pd

        if isinstance(payload, pd.DataFrame):
            df = payload
        elif isinstance(payload, dict) and "dataframe_split" in payload:
            spec = payload["dataframe_split"]
            if not isinstance(spec, dict) or "data" not in spec:
                raise BadRequest("dataframe_split needs 'data' (and usually 'columns')")
            df = pd.DataFrame(spec["data"], columns=spec.get("columns"), index=spec.get("index"))
        elif isinstance(payload, dict) and "dataframe_records" in payload:
            df = pd.DataFrame.from_records(payload["dataframe_records"])
        elif isinstance(payload, dict) and ("instances" in payload or "inputs" in payload):
            data = payload.get("instances", payload.get("inputs"))
            if self.flavor in ("tensorflow", "keras"):
                import numpy as np

                if isinstance(data, dict) and len(data) == 1:
                    data = next(iter(data.values()))  # {"inputs": {"<input name>": [...]}}, one input
                if isinstance(data, dict):
                    raise BadRequest("this model takes one tensor: send instances/inputs as a (nested) list")
                return np.asarray(data, dtype="float32")
            if isinstance(data, dict):
                df = pd.DataFrame(data)
            elif data and isinstance(data[0], dict):
                df = pd.DataFrame.from_records(data)
            else:
                df = pd.DataFrame(data, columns=self.columns or None)
        else:
            raise BadRequest("JSON body must hold one of dataframe_split, dataframe_records, instances, inputs")
        if self.columns:
            missing = [c for c in self.columns if c not in df.columns]
            if missing:
                raise BadRequest(f"missing input column(s): {', '.join(map(str, missing))}")
            df = df[self.columns]
        return df

    def predict(self, payload):
        import numpy as np

        if self.onnx:
            return np.asarray(self._predict_onnx(payload)).tolist()
        if isinstance(payload, tuple) and payload[0] == "csv":
            import pandas as pd

            payload = pd.read_csv(io.BytesIO(payload[1]))
        result = self._predict(self.frame(payload))
        if hasattr(result, "numpy"):
            result = result.numpy()
        if isinstance(result, dict):
            result = next(iter(result.values()))
        return np.asarray(result).tolist()


class Metrics:
    """Prometheus counters shared by the pre-forked workers without locks between processes.

    One anonymous shared mapping (``mmap(-1, n)``: MAP_SHARED, created before ``fork`` so every
    worker maps the same pages) holds one fixed-layout block of float64 slots per worker. A worker
    only writes its own block (under a thread lock: its handler threads share it); ``/metrics``,
    whichever worker answers it, sums all blocks. Labels are fixed sets (known paths, the statuses
    the server answers, class slots by index), so every process agrees on the layout. A scrape may
    see one request counted but not yet in the histogram (no cross-process snapshot), never a lost
    or double-counted one. Counters start at zero when the container starts, as Prometheus expects.
    """

    PATHS = ("/invocations", "/ping", "/health", "/version", "/metrics", "other")
    STATUSES = ("200", "400", "404", "405", "413", "415", "500", "503", "other")
    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    MAX_CLASSES = 64  # class slots; predictions beyond them count as "other"

    def __init__(self, workers: int, classes: list | None = None):
        self.workers = max(1, workers)
        self.classes = list(classes or [])
        np_, ns, nb = len(self.PATHS), len(self.STATUSES), len(self.BUCKETS) + 1
        self._req = 0
        self._hist = np_ * ns
        self._sum = self._hist + np_ * nb
        self._cls = self._sum + np_
        self.block = self._cls + self.MAX_CLASSES + 1
        self._buf = mmap.mmap(-1, 8 * self.block * self.workers)
        self._slots = memoryview(self._buf).cast("d")
        self.worker = 0
        self._lock = threading.Lock()

    def _path(self, path: str) -> int:
        return self.PATHS.index(path) if path in self.PATHS else len(self.PATHS) - 1

    def observe(self, path: str, status: int, seconds: float) -> None:
        p = self._path(path)
        code = str(status)
        st = self.STATUSES.index(code) if code in self.STATUSES else len(self.STATUSES) - 1
        b = next((i for i, edge in enumerate(self.BUCKETS) if seconds <= edge), len(self.BUCKETS))
        base = self.worker * self.block
        with self._lock:
            self._slots[base + self._req + p * len(self.STATUSES) + st] += 1
            self._slots[base + self._hist + p * (len(self.BUCKETS) + 1) + b] += 1
            self._slots[base + self._sum + p] += seconds

    def count_predictions(self, predictions: list) -> None:
        """Class counts: argmax of probability rows, else the label (its index among the classes,
        or the integer itself when no class list is known)."""
        counts: dict[int, int] = {}
        other = self.MAX_CLASSES
        for row in predictions:
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

    def render(self) -> str:
        esc = lambda v: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")  # noqa: E731
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
            total = sum(counts)
            if not total:
                continue
            running = 0.0
            for b, edge in enumerate(self.BUCKETS):
                running += counts[b]
                out.append(f'mlserve_request_duration_seconds_bucket{{path="{path}",le="{edge:g}"}} {running:.0f}')
            out.append(f'mlserve_request_duration_seconds_bucket{{path="{path}",le="+Inf"}} {total:.0f}')
            out.append(f'mlserve_request_duration_seconds_sum{{path="{path}"}} {self._total(self._sum + p):.6f}')
            out.append(f'mlserve_request_duration_seconds_count{{path="{path}"}} {total:.0f}')
        out += [
            "# HELP mlserve_predictions_total Predictions returned by /invocations, by predicted class.",
            "# TYPE mlserve_predictions_total counter",
        ]
        for idx in range(self.MAX_CLASSES + 1):
            n = self._total(self._cls + idx)
            if n:
                out.append(f'mlserve_predictions_total{{class="{esc(self._class_name(idx))}"}} {n:.0f}')
        out += [
            "# HELP mlserve_workers Pre-forked worker processes.",
            "# TYPE mlserve_workers gauge",
            f"mlserve_workers {self.workers}",
        ]
        return "\n".join(out) + "\n"


def make_handler(model_holder: dict, info: dict, metrics_or_none: Metrics | None = None):
    metrics = metrics_or_none or Metrics(1)

    class Handler(BaseHTTPRequestHandler):
        server_version = "mlops-serve/1"
        protocol_version = "HTTP/1.1"
        # keep-alive with small responses: without TCP_NODELAY, Nagle + the client's delayed ACK
        # stall every response by up to 40 ms
        disable_nagle_algorithm = True
        _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's, filled by send_header

        def log_message(self, fmt, *args):  # one line per request on stderr, no bodies
            if os.environ.get("ACCESS_LOG", "1") == "1":
                sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

        def _send(self, status: int, body: bytes, ctype: str = "application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self._headers_buffer.append(b"\r\n")  # end_headers() without its flush: one write with the body
            self._headers_buffer.append(body)
            # counted before the answer leaves: a client that reads /metrics after its answer sees it
            metrics.observe(self.path.split("?", 1)[0], status, time.perf_counter() - self._started)
            self.wfile.write(b"".join(self._headers_buffer))
            self._headers_buffer = []

        def _json(self, status: int, obj):
            self._send(status, json.dumps(obj).encode())

        def parse_request(self):
            self._started = time.perf_counter()
            return super().parse_request()

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            loaded = model_holder.get("model") is not None
            if path == "/ping":
                self._send(200 if loaded else 503, b"\n", "text/plain")
            elif path == "/health":
                self._json(
                    200 if loaded else 503,
                    {
                        "status": "ok" if loaded else "loading",
                        "flavor": info.get("flavor", ""),
                        "runtime": info.get("runtime", "native"),
                    },
                )
            elif path == "/version":
                self._json(200, info)
            elif path == "/metrics":
                self._send(200, metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no route {path}"})

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            if path != "/invocations":
                self._json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no route {path}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self.close_connection = True  # the body is not read: the connection cannot be reused
                self._json(
                    413 if length > MAX_BODY else 400,
                    {"error_code": "BAD_REQUEST", "message": f"Content-Length must be 0..{MAX_BODY} bytes"},
                )
                return
            raw = self.rfile.read(length)
            model = model_holder.get("model")
            if model is None:
                self._json(503, {"error_code": "NOT_READY", "message": "the model is still loading"})
                return
            ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
            try:
                if ctype == "text/csv":
                    payload = ("csv", raw)
                elif ctype == "application/json":
                    payload = json.loads(raw or b"null")
                else:
                    self._json(
                        415,
                        {
                            "error_code": "BAD_REQUEST",
                            "message": f"unsupported content type {ctype}; use application/json or text/csv",
                        },
                    )
                    return
                predictions = model.predict(payload)
            except (BadRequest, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
                self._json(400, {"error_code": "BAD_REQUEST", "message": str(exc)[:500]})
                return
            except Exception as exc:  # noqa: BLE001 - a scoring failure must answer, not kill the worker
                self._json(
                    500, {"error_code": "INTERNAL_ERROR", "message": f"{exc.__class__.__name__}: {str(exc)[:300]}"}
                )
                return
            # counted before the answer leaves, like observe(): a client reading /metrics after its answer sees it
            metrics.count_predictions(predictions)
            self._json(200, {"predictions": predictions})

    return Handler


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


def serve(model_dir: Path, port: int, workers: int, info: dict) -> None:
    """Bind once, then pre-fork ``workers`` processes that accept on the shared socket."""
    holder: dict = {}
    onnx = None
    if info.get("runtime") == "onnx":
        onnx = dict(info.get("onnx") or {})
        onnx["path"] = os.environ.get("ONNX_MODEL") or onnx.get("path") or "/app/model.onnx"
        onnx.setdefault("classes", info.get("classes"))
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.request_queue_size = 128
    # preload (load once, share pages copy-on-write) where loading is fork-safe: sklearn; ONNX
    # Runtime and TensorFlow start thread pools, so each worker loads its own after the fork
    preload = onnx is None and info.get("flavor") == "sklearn"
    if preload:
        holder["model"] = Model(model_dir)
    classes = info.get("classes") or (holder["model"].classes if preload else None)
    if not classes:
        meta = (read_mlmodel(Path(model_dir)).get("metadata") or {}).get("classes")
        classes = meta if isinstance(meta, list) else None
    metrics = Metrics(workers, classes)
    httpd = ThreadingHTTPServer(("0.0.0.0", port), make_handler(holder, info, metrics))
    httpd.daemon_threads = True
    children: list[int] = []
    for index in range(1, max(1, workers)):
        pid = os.fork()
        if pid == 0:
            children = []
            metrics.worker = index
            break
        children.append(pid)

    def stop(*_, code: int = 0):
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        os._exit(code)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not preload:
        # Load before accepting: a worker that accepted while loading would answer 503 to requests
        # that another, ready worker (which already said 200 to /ping) could serve. Connections wait
        # in the listen backlog meanwhile.
        try:
            holder["model"] = Model(model_dir, onnx)
        except BaseException as exc:  # noqa: BLE001 - a model that cannot load must not leave a server up
            sys.stderr.write(f"model load failed: {exc.__class__.__name__}: {exc}\n")
            sys.stderr.flush()
            stop(code=3)
    sys.stderr.write(
        f"serving {model_dir} ({info.get('flavor')}, {'onnx' if onnx else 'native'}) on :{port}, "
        f"worker {metrics.worker + 1}/{metrics.workers}, pid {os.getpid()}\n"
    )
    httpd.serve_forever()


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
    workers = args.workers or min(cpu_count(), 4)
    serve(Path(args.model), args.port, workers, info)


if __name__ == "__main__":
    main()
