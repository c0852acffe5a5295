"""Drift at serve time: a compact reference profile of the training data, and the population
stability index (PSI) of live traffic against it.

The profile (``drift-profile.json``, written by render-dockerfile from a sample of the training
data, baked into the image) holds no rows: per feature, bin edges and the share of reference rows
in each bin; per predicted class, its share. Features, by what the model takes:

- a numeric column: deciles of the reference as bin edges;
- a string column with few distinct values (at most ``MAX_CATEGORIES``): its categories (others
  are one bin);
- a free-text string column: the number of words, binned by its deciles;
- a tensor (images): each sample's mean and standard deviation, binned by deciles.

The server (``DriftMonitor``) bins every scored row the same way into a sliding window (a ring of
``SUBWINDOWS`` parts per worker in shared memory; the oldest part is dropped as a new one starts,
so the window holds the last ``DRIFT_WINDOW`` rows or so), never the rows themselves, and reports
per-feature PSI and the predicted-class PSI at ``/monitoring/drift`` and as ``/metrics`` gauges.
PSI below 0.1 is usually read as stable, above 0.25 as a shift (``DRIFT_THRESHOLD``, default 0.2).
"""

from __future__ import annotations

import bisect
import math
import mmap
import threading
from typing import Any

BINS = 10
MAX_CATEGORIES = 20
MAX_FEATURES = 32
MAX_CLASSES = 32
FLOOR = 1e-4  # share given to an empty bin, so that PSI stays finite
SUBWINDOWS = 8


def _edges(values: list[float]) -> list[float]:
    """Inner bin edges: the reference's deciles to 4 significant digits (not a value of any row),
    without repeats."""
    ordered = sorted(v for v in values if v is not None and math.isfinite(v))
    if not ordered:
        return []
    cuts = [ordered[min(len(ordered) - 1, int(len(ordered) * k / BINS))] for k in range(1, BINS)]
    return sorted({float(f"{c:.4g}") for c in cuts})


def _number(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _words(value) -> float | None:
    return None if value is None else float(len(str(value).split()))


def bin_of(feature: dict, value) -> int:
    """The bin of one value for ``feature``; the last bin holds missing or unknown values."""
    kind = feature["kind"]
    if kind == "category":
        values = feature["values"]
        key = str(value)
        return values.index(key) if key in values else len(values)
    number = _words(value) if kind == "text" else _number(value)
    if number is None:
        return len(feature["edges"]) + 1
    return bisect.bisect_left(feature["edges"], number)


def width(feature: dict) -> int:
    """Bins of ``feature``, the missing/other bin included."""
    if feature["kind"] == "category":
        return len(feature["values"]) + 1
    return len(feature["edges"]) + 2


def _shares(feature: dict, values) -> list[float]:
    counts = [0] * width(feature)
    for value in values:
        counts[bin_of(feature, value)] += 1
    total = sum(counts) or 1
    return [round(c / total, 6) for c in counts]


def column_feature(name: str, values: list) -> dict:
    """The profile entry for one column of the reference sample."""
    numbers = [_number(v) for v in values]
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        numbers = [None] * len(values)
    if present and sum(n is not None for n in numbers) >= 0.9 * len(present):
        feature: dict[str, Any] = {
            "name": name,
            "kind": "numeric",
            "edges": _edges([n for n in numbers if n is not None]),
        }
    else:
        distinct: dict[str, int] = {}
        for v in present:
            distinct[str(v)] = distinct.get(str(v), 0) + 1
        if len(distinct) <= MAX_CATEGORIES:
            feature = {"name": name, "kind": "category", "values": sorted(distinct, key=lambda k: (-distinct[k], k))}
        else:
            words = [_words(v) for v in present]
            feature = {"name": name, "kind": "text", "edges": _edges([w for w in words if w is not None])}
    feature["ref"] = _shares(feature, values)
    return feature


def tensor_stats(array) -> dict[str, list[float]]:
    """Per sample (first axis): mean and standard deviation of all its values."""
    import numpy as np

    arr = np.asarray(array, dtype="float64")
    if arr.ndim == 0:
        return {"mean": [], "std": []}
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
    return {"mean": flat.mean(axis=1).tolist(), "std": flat.std(axis=1).tolist()}


def build(columns: dict[str, list] | None, tensor=None, predictions=None, source: str = "") -> dict:
    """A profile from a reference sample: ``columns`` (name → values) for a table model or
    ``tensor`` (samples first) for a tensor model, and the model's ``predictions`` on it."""
    features: list[dict] = []
    if columns:
        rows = len(next(iter(columns.values()), []))
        for name, values in list(columns.items())[:MAX_FEATURES]:
            features.append(column_feature(str(name), list(values)))
    else:
        stats = tensor_stats(tensor)
        rows = len(stats["mean"])
        for stat, values in stats.items():
            feature: dict[str, Any] = {
                "name": f"input {stat}",
                "kind": "numeric",
                "stat": stat,
                "edges": _edges(values),
            }
            feature["ref"] = _shares(feature, values)
            features.append(feature)
    profile: dict[str, Any] = {"version": 1, "source": source, "rows": rows, "features": features}
    if predictions is not None:
        labels = [str(label(p)) for p in predictions]
        counts: dict[str, int] = {}
        for lab in labels:
            counts[lab] = counts.get(lab, 0) + 1
        classes = sorted(counts, key=lambda k: (-counts[k], k))[:MAX_CLASSES]
        pred: dict[str, Any] = {"name": "prediction", "kind": "category", "values": classes}
        pred["ref"] = _shares(pred, labels)
        profile["predictions"] = pred
    return profile


def label(row):
    """A prediction row as one label: the argmax of a probability row, the first scalar of a record,
    the value itself otherwise (a regression's number is binned as it is)."""
    if isinstance(row, dict):
        row = next((v for v in row.values() if not isinstance(v, (dict, list))), None)
    if isinstance(row, list) and row and all(isinstance(v, (int, float)) for v in row):
        return max(range(len(row)), key=row.__getitem__) if len(row) > 1 else row[0]
    if isinstance(row, float) and row.is_integer():
        return int(row)
    return row


def psi(ref: list[float], counts: list[float]) -> float | None:
    total = sum(counts)
    if not total:
        return None
    out = 0.0
    for r, c in zip(ref, counts, strict=True):
        p, q = max(c / total, FLOOR), max(r, FLOOR)
        out += (p - q) * math.log(p / q)
    return round(out, 6)


class DriftMonitor:
    """The sliding window of binned traffic, shared by the workers (one anonymous shared mapping
    created before the fork, a block per worker slot; a worker writes only its own block).

    A worker's block is a ring of ``SUBWINDOWS`` parts of at most ``window / SUBWINDOWS`` rows,
    and the count of rows it has binned. Each part is stamped with the rows binned by all workers
    when it was last written; the window is the parts stamped within the last ``window`` rows, so
    a worker that gets no traffic for a while does not keep old rows in it."""

    def __init__(self, profile: dict, workers: int, window: int = 10000):
        self.profile = profile
        self.features = profile.get("features") or []
        self.pred = profile.get("predictions")
        self.workers = max(1, workers)
        self.window = max(SUBWINDOWS, window)
        self.offsets, n = [], 0
        for f in [*self.features, *([self.pred] if self.pred else [])]:
            self.offsets.append(n)
            n += width(f)
        self.slots = n + 2  # + rows, + stamp
        self.block = self.slots * SUBWINDOWS + 2  # + the index of the current part, + rows binned
        self._buf = mmap.mmap(-1, 8 * self.block * self.workers)
        self._v = memoryview(self._buf).cast("d")
        self.worker = 0
        self._lock = threading.Lock()

    def _part(self, base: int) -> int:
        return base + int(self._v[base + self.slots * SUBWINDOWS]) * self.slots

    def _binned(self) -> float:
        """Rows binned by all workers so far."""
        return sum(self._v[w * self.block + self.slots * SUBWINDOWS + 1] for w in range(self.workers))

    def add(self, columns: dict | None, tensor, predictions) -> None:
        """Bin one request's rows (``columns`` by name, or a ``tensor``) and its ``predictions``."""
        bins: list[int] = []
        rows = 0
        if columns is not None:
            for i, f in enumerate(self.features):
                values = columns.get(f["name"])
                if values is None:
                    continue
                rows = max(rows, len(values))
                bins += [self.offsets[i] + bin_of(f, v) for v in values]
        elif tensor is not None:
            stats = tensor_stats(tensor)
            for i, f in enumerate(self.features):
                values = stats.get(f.get("stat", ""), [])
                rows = max(rows, len(values))
                bins += [self.offsets[i] + bin_of(f, v) for v in values]
        if self.pred is not None and isinstance(predictions, list):
            off = self.offsets[-1]
            bins += [off + bin_of(self.pred, str(label(p))) for p in predictions]
            rows = rows or len(predictions)
        if not rows:
            return
        base = self.worker * self.block
        with self._lock:
            part = self._part(base)
            if self._v[part + self.slots - 2] + rows > self.window / SUBWINDOWS:
                index = (int(self._v[base + self.slots * SUBWINDOWS]) + 1) % SUBWINDOWS
                self._v[base + self.slots * SUBWINDOWS] = index  # the oldest part becomes the new one
                part = base + index * self.slots
                for k in range(self.slots):
                    self._v[part + k] = 0
            for b in bins:
                self._v[part + b] += 1
            self._v[part + self.slots - 2] += rows
            self._v[base + self.slots * SUBWINDOWS + 1] += rows
            self._v[part + self.slots - 1] = self._binned()

    def _counts(self) -> list[float]:
        """Bin counts and rows (the last item) of the parts in the window."""
        total = [0.0] * (self.slots - 1)
        since = self._binned() - self.window
        for w in range(self.workers):
            for s in range(SUBWINDOWS):
                start = w * self.block + s * self.slots
                if self._v[start + self.slots - 1] <= since:
                    continue  # stamped before the last `window` rows: slid out
                for k in range(self.slots - 1):
                    total[k] += self._v[start + k]
        return total

    def report(self, threshold: float) -> dict:
        counts = self._counts()
        out_features = []
        for i, f in enumerate(self.features):
            part = counts[self.offsets[i] : self.offsets[i] + width(f)]
            out_features.append(
                {"name": f["name"], "kind": f["kind"], "psi": psi(f["ref"], part), "rows": int(sum(part))}
            )
        report: dict[str, Any] = {
            "reference": {"rows": self.profile.get("rows"), "source": self.profile.get("source", "")},
            "window": {"rows": int(counts[-1]), "max_rows": self.window},
            "threshold": threshold,
            "features": out_features,
        }
        if self.pred is not None:
            part = counts[self.offsets[-1] : self.offsets[-1] + width(self.pred)]
            total = sum(part) or 1
            names = [*self.pred["values"], "other"]
            report["predictions"] = {
                "psi": psi(self.pred["ref"], part),
                "reference": dict(zip(names, self.pred["ref"], strict=True)),
                "current": {n: round(c / total, 6) for n, c in zip(names, part, strict=True)},
            }
        scored = [*out_features, *([{"name": "prediction", **report["predictions"]}] if self.pred else [])]
        report["drifted"] = [f["name"] for f in scored if f.get("psi") is not None and f["psi"] > threshold]
        return report
