"""A lean scoring server for the MLflow protocol, with no dependency on the mlflow package.

Endpoints: ``GET /ping`` and ``GET /health`` (200 once the model is loaded), ``GET /version``
(model and build facts), ``POST /invocations`` (JSON ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs``; or CSV with a header row) answering ``{"predictions": [...]}``.

Run: ``python -m serve.server --model /app/model --port 8080``. Worker processes (pre-forked on
one listening socket) default to the CPU count, ``WORKERS`` overrides.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = int(os.environ.get("MAX_REQUEST_BYTES", str(64 * 1024 * 1024)))


class BadRequest(Exception):
    pass


def read_mlmodel(model_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((model_dir / "MLmodel").read_text()) or {}


class Model:
    """Loads an MLflow model directory by its native flavor."""

    def __init__(self, model_dir: Path):
        self.dir = Path(model_dir)
        self.meta = read_mlmodel(self.dir)
        flavors = self.meta.get("flavors") or {}
        self.flavor = next((f for f in flavors if f != "python_function"), "python_function")
        self.columns, self.types = self._signature_columns()
        if self.flavor == "sklearn":
            self._model = self._load_sklearn(flavors["sklearn"])
            self._predict = self._model.predict
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

        result = self._predict(self.frame(payload))
        if hasattr(result, "numpy"):
            result = result.numpy()
        if isinstance(result, dict):
            result = next(iter(result.values()))
        return np.asarray(result).tolist()


def make_handler(model_holder: dict, info: dict):
    class Handler(BaseHTTPRequestHandler):
        server_version = "mlops-serve/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # one line per request on stderr, no bodies
            if os.environ.get("ACCESS_LOG", "1") == "1":
                sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

        def _send(self, status: int, body: bytes, ctype: str = "application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj):
            self._send(status, json.dumps(obj).encode())

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            loaded = model_holder.get("model") is not None
            if path == "/ping":
                self._send(200 if loaded else 503, b"\n", "text/plain")
            elif path == "/health":
                self._json(200 if loaded else 503, {"status": "ok" if loaded else "loading", "flavor": info.get("flavor", "")})
            elif path == "/version":
                self._json(200, info)
            else:
                self._json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no route {path}"})

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            if path != "/invocations":
                self._json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no route {path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error_code": "BAD_REQUEST", "message": f"body over {MAX_BODY} bytes"})
                return
            raw = self.rfile.read(length)
            ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
            try:
                if ctype == "text/csv":
                    import pandas as pd

                    payload = pd.read_csv(io.BytesIO(raw))
                elif ctype == "application/json":
                    payload = json.loads(raw or b"null")
                else:
                    self._json(415, {"error_code": "BAD_REQUEST", "message": f"unsupported content type {ctype}; use application/json or text/csv"})
                    return
                predictions = model_holder["model"].predict(payload)
            except (BadRequest, ValueError, KeyError, TypeError) as exc:
                self._json(400, {"error_code": "BAD_REQUEST", "message": str(exc)[:500]})
                return
            except Exception as exc:  # noqa: BLE001 - a scoring failure must answer, not kill the worker
                self._json(500, {"error_code": "INTERNAL_ERROR", "message": f"{exc.__class__.__name__}: {str(exc)[:300]}"})
                return
            self._json(200, {"predictions": predictions})

    return Handler


def serve(model_dir: Path, port: int, workers: int, info: dict) -> None:
    """Bind once, then pre-fork ``workers`` processes that accept on the shared socket."""
    holder: dict = {}
    ThreadingHTTPServer.allow_reuse_address = True
    httpd = ThreadingHTTPServer(("0.0.0.0", port), make_handler(holder, info))
    httpd.daemon_threads = True
    preload = info.get("flavor") == "sklearn"  # fork-safe: load once, share pages copy-on-write
    if preload:
        holder["model"] = Model(model_dir)
    children: list[int] = []
    for _ in range(max(1, workers) - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)

    def stop(*_):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not preload:
        threading.Thread(target=lambda: holder.__setitem__("model", Model(model_dir)), daemon=True).start()
    sys.stderr.write(f"serving {model_dir} ({info.get('flavor')}) on :{port}, pid {os.getpid()}\n")
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
    workers = args.workers or min(os.cpu_count() or 1, 4)
    serve(Path(args.model), args.port, workers, info)


if __name__ == "__main__":
    main()
