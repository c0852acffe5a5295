"""Stage scan: look inside every model file for code that runs when the model is loaded, before the
model is proposed in a pull request or baked into an image.

The rules are modelscan's (ProtectAI, Apache-2.0): its list of unsafe pickle globals by severity
(``os``/``subprocess``/``builtins.eval``/... critical, ``webbrowser``/``requests.api`` high) and of
unsafe Keras and TensorFlow operators (``Lambda`` medium, ``ReadFile``/``WriteFile`` high). Which
files get which check is decided here, by content as well as by name, because modelscan goes by
extension only and skips what a bare runner cannot scan:

- a pickle under any name (statsmodels' ``model.statsmodels``, a ``.bin``) is found by its first
  bytes and its globals are listed without loading it;
- a zip (PyTorch's ``.pt``, ``.npz``, any archive) has each member checked the same way;
- a NumPy ``.npy`` with an object dtype carries a pickle after its header (read with NumPy's public
  header functions: modelscan's own reader breaks on NumPy 2);
- a skops file (scikit-learn through MLflow 3) names every type it builds in ``schema.json``; those
  go through the same global rules;
- Keras (``.keras``, HDF5 ``.h5`` and SavedModel ``keras_metadata.pb``): the model config is read
  without TensorFlow and every layer, nested models included, is checked for ``Lambda`` (modelscan
  requires TensorFlow for this and reads the top level only);
- a TensorFlow SavedModel's graph (``.pb``) is searched for the ``op`` fields of ReadFile and
  WriteFile nodes, without TensorFlow.

Everything else (JSON, YAML, text, ONNX, XGBoost/LightGBM/CatBoost native files, images) cannot
carry Python code and is counted as data. A file that looks like a model format but cannot be read
(a corrupt pickle) is listed as not scanned, and counts as a finding of severity ``high``: what
cannot be checked is not passed. Links are never followed: a link in the folder is refused."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..core import gha, paths
from ..core.errors import InputError

SEVERITIES = ("low", "medium", "high", "critical")
FAIL_ON = (*SEVERITIES, "none")
KERAS_SCANNER = "modelscan.scanners.SavedModelLambdaDetectScan"
TF_SCANNER = "modelscan.scanners.SavedModelTensorflowOpScan"
PICKLE_NAMES = {".pkl", ".pickle", ".joblib", ".dill"}  # named as pickles: must read as one
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class Finding:
    file: str
    severity: str  # one of SEVERITIES
    module: str
    operator: str
    check: str

    def line(self) -> str:
        what = f"'{self.module}.{self.operator}'" if self.module else f"'{self.operator}'"
        return f"{self.file}: {what} ({self.severity}, {self.check})"


@dataclass
class ScanResult:
    path: Path
    fail_on: str
    scanned: dict[str, str] = field(default_factory=dict)  # file → check
    findings: list[Finding] = field(default_factory=list)
    data_files: int = 0
    report: Path | None = None
    markdown: Path | None = None

    @property
    def highest(self) -> str:
        return max((f.severity for f in self.findings), key=SEVERITIES.index, default="")

    @property
    def blocking(self) -> list[Finding]:
        if self.fail_on == "none":
            return []
        floor = SEVERITIES.index(self.fail_on)
        return [f for f in self.findings if SEVERITIES.index(f.severity) >= floor]

    @property
    def passed(self) -> bool:
        return not self.blocking

    def outputs(self) -> dict[str, object]:
        return {
            "result": "passed" if self.passed else "failed",
            "findings": len(self.findings),
            "highest": self.highest,
            "scanned": len(self.scanned),
            "report": str(self.report or ""),
            "report-markdown": str(self.markdown or ""),
        }

    def as_json(self) -> dict:
        from modelscan._version import __version__ as modelscan_version

        return {
            "path": str(self.path),
            "fail_on": self.fail_on,
            "result": "passed" if self.passed else "failed",
            "rules": f"modelscan {modelscan_version}",
            "scanned": [{"file": name, "check": check} for name, check in sorted(self.scanned.items())],
            "data_files": self.data_files,
            "findings": [f.__dict__ for f in self.findings],
        }

    def summary(self) -> str:
        """Markdown for the job summary and the pull request body: the verdict first, then the
        findings table, then what was scanned and how."""
        from modelscan._version import __version__ as modelscan_version

        if self.blocking:
            verdict = f"❌ **failed**: {len(self.blocking)} finding(s) at or above `{self.fail_on}`"
        elif self.findings:
            verdict = f"⚠️ **passed** with {len(self.findings)} finding(s) below `fail-on: {self.fail_on}`"
        else:
            verdict = "✅ **passed**: no unsafe operator"
        text = (
            f"### 🔎 Model scan\n{verdict} in {len(self.scanned)} model file(s) "
            f"({self.data_files} data file(s) cannot hold code); rules of modelscan {modelscan_version}.\n"
        )
        if self.findings:
            order = sorted(self.findings, key=lambda f: (-SEVERITIES.index(f.severity), f.file))
            rows = [
                [f.severity, f"`{f.file}`", f"`{f.module}.{f.operator}`" if f.module else f"`{f.operator}`", f.check]
                for f in order
            ]
            text += "\n" + gha.md_table(["severity", "file", "operator", "check"], rows) + "\n"
        if self.scanned:
            rows = [[f"`{name}`", check] for name, check in sorted(self.scanned.items())]
            text += "\n<details><summary>Scanned files</summary>\n\n" + gha.md_table(["file", "check"], rows)
            text += "\n</details>\n"
        return text


def _settings() -> dict:
    import modelscan.scanners  # noqa: F401 - first: modelscan.tools.picklescanner imports it back
    from modelscan.settings import DEFAULT_SETTINGS

    return copy.deepcopy(DEFAULT_SETTINGS)


def _severity_of_globals(pairs: set[tuple[str, str]], source: str, settings: dict, check: str) -> list[Finding]:
    """modelscan's own decision for (module, name) globals: its unsafe list, by severity."""
    from modelscan.model import Model
    from modelscan.tools.picklescanner import _build_scan_result_from_raw_globals

    result = _build_scan_result_from_raw_globals(pairs, Model(source, io.BytesIO()), settings)
    return [
        Finding(source, issue.severity.name.lower(), issue.details.module, issue.details.operator, check)
        for issue in result.issues
    ]


def _pickle_findings(data: bytes, source: str, settings: dict, check: str = "pickle globals") -> list[Finding] | None:
    """Globals a pickle stream imports (every pickle in it), read by disassembly, never loaded;
    None when the bytes do not disassemble as a pickle at all."""
    from modelscan.tools.picklescanner import GenOpsError, _list_globals

    try:
        pairs = _list_globals(io.BytesIO(data), multiple_pickles=True)
    except GenOpsError as exc:
        if exc.globals is None:
            return None
        pairs = exc.globals
    return _severity_of_globals(pairs, source, settings, check)


class _Stub:
    """What a global becomes while a joblib stream is read for its globals: anything, doing nothing."""

    def __init__(self, *args, **kwargs):
        self.args, self.state = args, None

    def __call__(self, *args, **kwargs):
        return _Stub(*args)

    def __setstate__(self, state):
        self.state = state

    def __getattr__(self, name):  # e.g. the unpickler's own lookups; never real behaviour
        return _Stub()


def _joblib_globals(data: bytes) -> set[tuple[str, str]] | None:
    """Globals of a joblib file whose pickle has raw array bytes between its opcodes. A disassembler
    stops at the first array; this reads the stream with pickle's Python unpickler, where every
    global is recorded and replaced by a stub (nothing of the file is ever called), and skips each
    array's bytes the way joblib's NumpyArrayWrapper reads them (alignment padding, then
    count × itemsize bytes; an object array is a nested pickle, read the same way)."""
    import pickle

    import numpy as np

    found: set[tuple[str, str]] = set()
    handle = io.BytesIO(data)

    class Reader(pickle._Unpickler):  # pure-Python unpickler: its dispatch table can be extended
        dispatch = dict(pickle._Unpickler.dispatch)
        stack: list

        def find_class(self, module, name):
            found.add((module, name))
            return _Wrapper if name in ("NumpyArrayWrapper", "NDArrayWrapper") else _Stub

        def persistent_load(self, pid):
            return _Stub()

        def load_build(self):
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
            top = self.stack[-1]
            if isinstance(top, _Wrapper):
                top.skip(self.stack, handle)

        dispatch[pickle.BUILD[0]] = load_build  # type: ignore[assignment]

    class _Wrapper(_Stub):
        def skip(self, stack, stream):
            state = self.state if isinstance(self.state, dict) else {}
            dtype = state.get("dtype")
            try:
                dtype = np.dtype(dtype.args[0]) if isinstance(dtype, _Stub) else np.dtype(dtype)
                count = int(np.prod([int(x) for x in state.get("shape", ())], dtype=np.int64))
            except (TypeError, ValueError, IndexError, AttributeError):
                raise pickle.UnpicklingError("unreadable array header") from None
            if dtype.hasobject:
                Reader(stream).load()
            else:
                if state.get("numpy_array_alignment_bytes") is not None:
                    stream.seek(int.from_bytes(stream.read(1), "little"), 1)
                stream.seek(count * dtype.itemsize, 1)
            stack[-1] = _Stub()

    try:
        while handle.tell() < len(data):
            Reader(handle).load()
    except Exception:  # noqa: BLE001 - any failure: the stream was not fully read
        return None
    return found


def _unreadable(source: str, what: str, check: str) -> list[Finding]:
    """A file that claims a code-carrying format but cannot be read was not checked: not passed."""
    return [Finding(source, "high", "", f"unreadable {what} (not checked)", check)]


def _is_pickle(head: bytes) -> bool:
    # protocol 2-5 streams start with PROTO; joblib/pytorch legacy files too
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _npy_findings(data: bytes, source: str, settings: dict) -> list[Finding] | None:
    """An .npy holds a pickle only when its dtype has objects; None: plain numbers (data)."""
    import numpy as np

    stream = io.BytesIO(data)
    try:
        major, _minor = np.lib.format.read_magic(stream)
        reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _shape, _order, dtype = reader(stream)
    except (ValueError, OSError) as exc:
        return _unreadable(source, f".npy header ({str(exc)[:80]})", "numpy header")
    if not dtype.hasobject:  # numbers only
        return None
    check = "numpy object array (pickle)"
    found = _pickle_findings(data[stream.tell() :], source, settings, check)
    return _unreadable(source, "object array", check) if found is None else found


def _keras_layers(config: object):
    """Every layer config in a Keras model config, nested models and wrappers included."""
    if isinstance(config, dict):
        if "class_name" in config:
            yield config
        for value in config.values():
            yield from _keras_layers(value)
    elif isinstance(config, list):
        for value in config:
            yield from _keras_layers(value)


def _keras_findings(config_text: str | bytes, source: str, settings: dict) -> list[Finding]:
    unsafe = settings["scanners"][KERAS_SCANNER]["unsafe_keras_operators"]
    try:
        config = json.loads(config_text)
    except (ValueError, UnicodeDecodeError):
        return [Finding(source, "high", "", "unreadable Keras config", "keras layers")]
    found = []
    for layer in _keras_layers(config):
        name = layer.get("class_name")
        if isinstance(name, str) and name in unsafe:
            found.append(Finding(source, unsafe[name].lower(), "Keras", name, "keras layers"))
    return found


def _keras_in_bytes(data: bytes, source: str, settings: dict) -> list[Finding]:
    """HDF5 and SavedModel metadata hold the Keras config as JSON text; without h5py or TensorFlow
    the layer class names are found in it as JSON fields."""
    unsafe = settings["scanners"][KERAS_SCANNER]["unsafe_keras_operators"]
    found = []
    for name, severity in unsafe.items():
        hits = len(re.findall(rb'"class_name":\s*"' + re.escape(name.encode()) + rb'"', data))
        found += [Finding(source, severity.lower(), "Keras", name, "keras layers (config text)")] * hits
    return found


def _tf_op_findings(data: bytes, source: str, settings: dict) -> list[Finding]:
    """NodeDef.op is field 2 (a length-delimited string): ``\\x12 <len> <op name>`` in the graph."""
    unsafe = settings["scanners"][TF_SCANNER]["unsafe_tf_operators"]
    found = []
    for op, severity in unsafe.items():
        needle = b"\x12" + bytes([len(op)]) + op.encode()
        found += [Finding(source, severity.lower(), "Tensorflow", op, "tensorflow graph ops")] * data.count(needle)
    return found


def _skops_findings(archive: zipfile.ZipFile, source: str, settings: dict) -> list[Finding]:
    """skops builds only the types named in schema.json: check each (module, type or function)."""
    try:
        schema = json.loads(archive.read("schema.json"))
    except (KeyError, ValueError):
        return [Finding(source, "high", "", "skops file without a readable schema.json", "skops schema")]
    pairs: set[tuple[str, str]] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(name, str):
                pairs.add((module, name))
            content = node.get("content")
            if isinstance(content, dict) and isinstance(content.get("module_path"), str):
                pairs.add((content["module_path"], str(content.get("function", ""))))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return _severity_of_globals(pairs, source, settings, "skops types")


COMPRESSED = (b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x5d\x00\x00")


def _decompress(data: bytes, name: str) -> bytes:
    """The pickle inside a compressed joblib file, at most MAX_FILE bytes (a bomb stops there)."""
    import bz2
    import lzma
    import zlib

    try:
        if data.startswith(b"BZh"):
            return bz2.BZ2Decompressor().decompress(data, MAX_FILE)
        if data.startswith((b"\xfd7zXZ", b"\x5d\x00\x00")):
            return lzma.LZMADecompressor().decompress(data, MAX_FILE)
        return zlib.decompressobj(47).decompress(data, MAX_FILE)  # 47: zlib or gzip header
    except (OSError, ValueError, EOFError, zlib.error, lzma.LZMAError):
        return data


def _needs_bytes(name: str, head: bytes) -> bool:
    """Whether a file can carry code, from its first bytes and its name (data is not read)."""
    suffix = Path(name).suffix.lower()
    return (
        head.startswith((*ZIP_MAGIC, NPY_MAGIC, HDF5_MAGIC))
        or _is_pickle(head)
        or suffix in PICKLE_NAMES
        or suffix == ".pb"
    )


def _scan_bytes(name: str, data: bytes, settings: dict, depth: int = 0) -> tuple[str, list[Finding]] | None:
    """(check, findings) for one file's bytes; None when the bytes cannot carry code. A file named
    as a pickle must disassemble as one; bytes that merely start like a pickle (raw tensor storage
    in a PyTorch zip) and do not are data."""
    head = data[:8]
    suffix = Path(name.rsplit(":", 1)[-1]).suffix.lower()
    if head.startswith(ZIP_MAGIC):
        if depth:
            return "zip members", [Finding(name, "high", "", "nested zip (not checked)", "zip members")]
        return _scan_zip(name, data, settings)
    if head.startswith(NPY_MAGIC):
        found = _npy_findings(data, name, settings)
        return None if found is None else ("numpy object array (pickle)", found)
    if suffix in PICKLE_NAMES and head.startswith(COMPRESSED):
        data = _decompress(data, name)  # joblib's compress= (zlib, gzip, bz2, lzma/xz)
        head = data[:8]
    if _is_pickle(head) or suffix in PICKLE_NAMES:
        found = _pickle_findings(data, name, settings)
        if found is None or b"joblib.numpy_pickle" in data[:4096]:
            pairs = _joblib_globals(data)
            if pairs is not None:
                return "pickle globals (joblib arrays skipped)", _severity_of_globals(
                    pairs, name, settings, "pickle globals"
                )
        if found is not None:
            return "pickle globals", found
        return ("pickle globals", _unreadable(name, "pickle", "pickle globals")) if suffix in PICKLE_NAMES else None
    if head.startswith(HDF5_MAGIC):
        return "keras layers (config text)", _keras_in_bytes(data, name, settings)
    if suffix == ".pb":
        found = _tf_op_findings(data, name, settings) + _keras_in_bytes(data, name, settings)
        return "tensorflow graph ops, keras layers", found
    return None


def _scan_zip(name: str, data: bytes, settings: dict) -> tuple[str, list[Finding]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        if name.endswith(".skops"):
            return "skops types", _skops_findings(archive, name, settings)
        found: list[Finding] = []
        check = "zip members"
        if name.endswith(".keras"):
            check = "keras layers"
            if "config.json" in archive.namelist():
                found += _keras_findings(archive.read("config.json"), f"{name}:config.json", settings)
            else:
                found += _unreadable(name, ".keras file without config.json", check)
        for member in archive.infolist():
            if member.is_dir():
                continue
            result = _scan_bytes(f"{name}:{member.filename}", archive.read(member), settings, depth=1)
            if result:
                found += result[1]
        return check, found
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
        return "zip members", _unreadable(name, f"zip ({str(exc)[:80]})", "zip members")


MAX_FILE = 8 * 1024**3


def parse_fail_on(text: str, input_name: str = "fail-on") -> str:
    value = (text or "low").strip().lower()
    if value not in FAIL_ON:
        raise InputError(input_name, f"'{text}' is not a severity", f"write one of {', '.join(FAIL_ON)}")
    return value


def scan(path: Path, fail_on: str = "low", report_dir: Path | None = None) -> ScanResult:
    """Scan every file below ``path`` (a folder or one file); write the JSON and Markdown reports
    outside it (``report_dir``, default $RUNNER_TEMP); never change anything under ``path``."""
    fail_on = parse_fail_on(fail_on)
    path = Path(path)
    if not str(path).strip() or not path.exists() and not path.is_symlink():
        raise InputError("path", f"'{path}' does not exist", "give the folder fetch-artifacts wrote (its path output)")
    if path.is_symlink():
        raise InputError("path", f"'{path}' is a symbolic link; links are never followed", "give the folder itself")
    if path.is_dir():
        names = paths.tree_files(path, "path")
        files = [(name, path / name) for name in names]
    else:
        files = [(path.name, path)]
    settings = _settings()
    result = ScanResult(path=path, fail_on=fail_on)
    with gha.group(f"scan {len(files)} file(s) in {path}"):
        for name, file in files:
            size = file.stat().st_size
            if size > MAX_FILE:
                result.scanned[name] = "too large"
                result.findings.append(Finding(name, "high", "", f"{size} bytes: too large to scan", "size"))
                continue
            with file.open("rb") as handle:
                head = handle.read(8)
            if not _needs_bytes(name, head):
                result.data_files += 1
                continue
            outcome = _scan_bytes(name, file.read_bytes(), settings)
            if outcome is None:
                result.data_files += 1
                continue
            result.scanned[name], found = outcome
            result.findings += found
            gha.log(f"{name}: {outcome[0]}: {len(found)} finding(s)")
    folder = Path(report_dir or os.environ.get("RUNNER_TEMP") or tempfile.gettempdir())
    resolved = folder.resolve()
    if resolved == path.resolve() or path.resolve() in resolved.parents:
        raise InputError("report-dir", f"'{folder}' is inside the scanned folder", "write the report elsewhere")
    folder.mkdir(parents=True, exist_ok=True)
    where = str(path.resolve())  # one report per scanned folder: a rerun replaces its own report
    name = re.sub(r"[^A-Za-z0-9]+", "-", path.resolve().name)[:40]
    stem = f"mlops-scan-{name}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"
    result.report = folder / f"{stem}.json"
    result.markdown = folder / f"{stem}.md"
    result.report.write_text(json.dumps(result.as_json(), indent=2) + "\n")
    result.markdown.write_text(result.summary())
    return result


def fail_line(result: ScanResult) -> str:
    """The one line that stops the pipeline: the worst blocking finding, and how many more."""
    worst = sorted(result.blocking, key=lambda f: -SEVERITIES.index(f.severity))
    more = f" and {len(worst) - 1} more" if len(worst) > 1 else ""
    return f"unsafe model file: {worst[0].line()}{more}"
