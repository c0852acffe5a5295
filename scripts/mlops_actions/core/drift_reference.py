"""The drift reference profile baked into a serving image (render-dockerfile ``reference-data``):
per-feature bins and shares of a sample of the training data and the predicted-class shares of
the model on it, built by ``serving/profile.py`` (the same binning the server applies to live
traffic). No row of the sample is kept."""

from __future__ import annotations

import json
from pathlib import Path

from ..serving import profile as serving_profile
from . import modelinfo
from .errors import InputError

MAX_ROWS = 5000  # reference rows used (the first ones): bins and shares, not the rows, are kept
INPUT = "reference-data"


def _columns(info: modelinfo.ModelInfo) -> list[str]:
    inputs = (info.signature or {}).get("inputs")
    specs = json.loads(inputs) if isinstance(inputs, str) else inputs or []
    return [s["name"] for s in specs if isinstance(s, dict) and s.get("name") and s.get("type") != "tensor"]


def build(info: modelinfo.ModelInfo, sample: Path) -> tuple[dict, str]:
    """(profile, note): the profile of ``sample`` (a CSV with the model's columns, or a .npy array
    for a tensor model); the note says whether the model's predictions on it are in the profile."""
    if sample.suffix.lower() == ".npy":
        import numpy as np

        data = np.load(sample, allow_pickle=False)[:MAX_ROWS]
        columns, tensor, frame = None, data, data
    else:
        import pandas as pd

        frame = pd.read_csv(sample, nrows=MAX_ROWS)
        wanted = _columns(info) or list(frame.columns)
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise InputError(
                INPUT,
                f"'{sample}' lacks the model's column(s) {', '.join(missing[:5])}",
                "give a CSV sample of the training data with the model's input columns",
            )
        frame = frame[wanted]
        columns = {c: [None if v != v else v for v in frame[c].tolist()] for c in wanted}  # NaN → missing
        tensor = None
    if not len(frame):
        raise InputError(INPUT, f"'{sample}' has no rows", "give a sample of the training data (a few hundred rows)")
    predictions, note = None, ""
    try:
        import mlflow.pyfunc

        out = mlflow.pyfunc.load_model(str(info.path)).predict(frame)
        predictions = out.to_dict("records") if hasattr(out, "to_dict") and hasattr(out, "columns") else out
        predictions = predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
        note = f"predicted-class shares of the model on {len(frame)} rows"
    except Exception as exc:  # noqa: BLE001 - e.g. the flavor's library is not on this runner
        note = f"no predicted-class reference: the model did not load here ({exc.__class__.__name__})"
    built = serving_profile.build(columns, tensor, predictions, source=f"{sample.name}, {len(frame)} rows")
    return built, note
