"""The run record ``mlops-run.json``: which MLflow run the artifacts come from, its parameters and
metrics. fetch-artifacts writes it beside the artifacts; open-pr reads it (the commit message, the
pull request body, and the base branch's copy for the metric deltas).

One typed :class:`RunRecord` is the writer's and every reader's: the JSON is the same as before
(sorted keys, two-space indent), and a file whose keys differ from the fields (a renamed, missing or
unknown key) or whose values have the wrong type is refused with one line naming the file, never read
as empty strings."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

RUN_FILE = "mlops-run.json"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    run_name: str = ""
    experiment_id: str = ""
    tracking_uri: str = ""  # only for an http(s) tracking server; never a local store's path
    run_url: str = ""
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # the allow-listed tags only (see fetch-artifacts)
    model_uri: str = ""
    flavor: str = ""
    python_version: str = ""
    started: str = ""  # ISO 8601 UTC, '' when unknown

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def write(self, folder: Path) -> Path:
        path = Path(folder) / RUN_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: object, where: str, input_name: str = "source-dir") -> RunRecord:
        """The record in ``data`` (parsed JSON); anything but exactly the fields, with their types,
        is an InputError naming ``where``."""
        fix = f"pass the folder fetch-artifacts wrote, unedited (its {RUN_FILE} is written by mlops fetch-artifacts)"
        if not isinstance(data, dict):
            raise InputError(input_name, f"{where} is not a JSON object", fix)
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown, missing = sorted(set(data) - set(names)), sorted(set(names) - set(data))
        if unknown or missing:
            parts = ([f"unknown key(s) {', '.join(map(str, unknown))}"] if unknown else []) + (
                [f"missing key(s) {', '.join(missing)}"] if missing else []
            )
            raise InputError(input_name, f"{where} has {' and '.join(parts)}", fix)
        for name in names:
            value = data[name]
            if name in ("params", "tags"):
                ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
            elif name == "metrics":
                ok = isinstance(value, dict) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
                )
            else:
                ok = isinstance(value, str)
            if not ok:
                raise InputError(input_name, f"{where}: '{name}' has the wrong type ({type(value).__name__})", fix)
        return cls(**{name: data[name] for name in names})

    @classmethod
    def loads(cls, text: str, where: str, input_name: str = "source-dir") -> RunRecord:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(
                input_name, f"{where} is not JSON ({exc})", "pass the folder fetch-artifacts wrote, unedited"
            ) from None
        return cls.from_dict(data, where, input_name)

    @classmethod
    def read(cls, folder: Path, input_name: str = "source-dir") -> RunRecord | None:
        """The record in ``folder``; None when the folder has none (artifacts not fetched by
        fetch-artifacts), an InputError when it has one that does not parse as a record."""
        path = Path(folder) / RUN_FILE
        if not path.is_file():
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                input_name,
                f"'{path}' cannot be read ({exc.__class__.__name__})",
                "pass the folder fetch-artifacts wrote",
            ) from None
        return cls.loads(text, f"'{path}'", input_name)
