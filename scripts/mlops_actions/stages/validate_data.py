"""Gate, validate-data: check a dataset against a small declarative YAML spec.

Two kinds of data:

- ``format: csv``, a table: not empty / ``min_rows``, well-formed rows, per-column checks
  (present, no nulls, type, ``min``/``max``, ``allowed`` values, text length), the class balance of
  a label (a plain label column, or one derived from a column by a threshold) and the share of
  duplicate rows;
- ``format: images``, the Kaggle layout ``DIR/<split>/<class>/*.jpg``: every expected class in
  every split with at least ``min_per_class`` images, and no unreadable files (full decode with
  Pillow when it is installed, else JPEG/PNG/GIF/BMP/WebP signature and a non-empty file).

The spec is checked strictly before any data is read: an unknown key or a wrong type is an
:class:`InputError` naming the spec file and the key. The data's verdict is a list of
:class:`Check` rows, written as a JSON and a Markdown report; a failing check is a finding about the
data, never an exception.
"""

from __future__ import annotations

import json
import math
import os
import typing
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..core import gha, paths
from ..core.errors import InputError
from ..core.paths import read_text_input
from ..core.tables import Table, is_null, norm, read_table, to_number

SPEC_INPUT = "spec"
STAGE = "validate-data"  # the output folder's marker
DATA_INPUT = "data"
EXAMPLES = 5  # offending rows / files listed per check

COLUMN_TYPES = ("number", "integer", "string")
DEFAULT_SPLITS = ["train", "val", "test"]
DEFAULT_EXTENSIONS = [".jpg", ".jpeg", ".png"]
POSITIVE, NEGATIVE = "positive", "negative"


# ------------------------------------------------------------------------------------------- spec
# The spec is a pydantic model per mapping that rejects unknown keys. Every value goes through a
# "before" validator that refuses it with the one-line problem and fix (a PydanticCustomError of
# type "spec", whose ``sub`` names a key below the field); _spec_error turns the first error into
# an InputError naming the spec file and the dotted key.


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    kinds = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: f"the string '{value}'",
        list: "a list",
        dict: "a mapping",
    }
    return kinds.get(type(value), type(value).__name__)


def _problem(problem: str, fix: str, sub: str = "") -> PydanticCustomError:
    return PydanticCustomError("spec", "{problem}", {"problem": problem, "fix": fix, "sub": sub})


def _number(
    value: Any, lo: float | None = None, hi: float | None = None, integer: bool = False, sub: str = ""
) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and math.isnan(value))
    ):
        raise _problem(f"must be a number, not {_kind(value)}", "write a plain number, e.g. 0.5", sub)
    if integer and not float(value).is_integer():
        raise _problem(f"must be a whole number, not {value}", "write an integer, e.g. 100", sub)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = (
            f"between {lo:g} and {hi:g}"
            if lo is not None and hi is not None
            else f">= {lo:g}"
            if lo is not None
            else f"<= {hi:g}"
        )
        raise _problem(f"is {value}, must be {span}", f"give a value {span}", sub)
    return int(value) if integer else float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _problem(f"must be true or false, not {_kind(value)}", "write true or false")
    return value


def _string(value: Any, sub: str = "") -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem(f"must be a non-empty string, not {_kind(value)}", "write a name", sub)
    return value.strip()


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _problem(f"must be a non-empty list, not {_kind(value)}", "write a list, e.g. [a, b]")
    out = [_string(v, f"[{i}]") for i, v in enumerate(value)]
    if len(set(out)) != len(out):
        raise _problem("lists a name twice", "list each name once")
    return out


def _scalars(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _problem(f"must be a non-empty list, not {_kind(value)}", "write a list, e.g. [1, 2, 3]")
    for i, v in enumerate(value):
        if isinstance(v, (dict, list)) or v is None:
            raise _problem(f"must be a plain value, not {_kind(v)}", "list numbers or strings", f"[{i}]")
    return [norm(v) for v in value]


def _bounds(value: Any, sub: str) -> tuple[float | None, float | None]:
    """A share range: [min, max] or {min: x, max: y} (either end optional), within 0..1."""
    lo: float | None
    hi: float | None
    if isinstance(value, list):
        if len(value) != 2:
            raise _problem(f"has {len(value)} items", "write [min, max], e.g. [0.3, 0.9]", sub)
        lo, hi = (None if v is None else _number(v, 0, 1, sub=f"{sub}[{i}]") for i, v in enumerate(value))
    elif isinstance(value, dict):
        for name in value:
            if name not in ("min", "max"):
                raise _problem("is unknown", "use one of max, min", f"{sub}.{name}")
        lo = _number(value["min"], 0, 1, sub=f"{sub}.min") if value.get("min") is not None else None
        hi = _number(value["max"], 0, 1, sub=f"{sub}.max") if value.get("max") is not None else None
    else:
        raise _problem(f"must be [min, max] or a min/max mapping, not {_kind(value)}", "write e.g. [0.3, 0.9]", sub)
    if lo is None and hi is None:
        raise _problem("gives neither min nor max", "give at least one bound", sub)
    if lo is not None and hi is not None and lo > hi:
        raise _problem(f"min {lo:g} is above max {hi:g}", "swap the bounds", sub)
    return lo, hi


# each validator runs before pydantic's own (also on an explicit null), so every refusal is ours
Count = Annotated[int, BeforeValidator(lambda v: _number(v, 1, integer=True))]
Share = Annotated[float, BeforeValidator(lambda v: _number(v, 0, 1))]
OptionalShare = Annotated[float | None, BeforeValidator(lambda v: _number(v, 0, 1))]
OptionalNumber = Annotated[float | None, BeforeValidator(_number)]
OptionalLength = Annotated[int | None, BeforeValidator(lambda v: _number(v, 0, integer=True))]
Flag = Annotated[bool, BeforeValidator(_boolean)]
Names = Annotated[list[str], BeforeValidator(_strings)]
OptionalNames = Annotated[list[str] | None, BeforeValidator(_strings)]
OptionalValues = Annotated[list[str] | None, BeforeValidator(_scalars)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Model):
    required: Flag = True
    nullable: Flag = True
    type: str | None = None
    min: OptionalNumber = None
    max: OptionalNumber = None
    allowed: OptionalValues = None
    min_length: OptionalLength = None
    max_length: OptionalLength = None

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> str:
        if value not in COLUMN_TYPES:
            raise _problem(f"is {_kind(value)}", f"use one of {', '.join(COLUMN_TYPES)}")
        return str(value)

    @model_validator(mode="after")
    def _range(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _problem(f"has min {self.min:g} above max {self.max:g}", "swap min and max")
        return self

    def checks(self) -> dict[str, Any]:
        return {"required": self.required, "nullable": self.nullable} | self.model_dump(
            exclude_none=True, exclude={"required", "nullable"}
        )


class LabelSpec(_Model):
    column: Annotated[str, BeforeValidator(_string)]
    threshold: OptionalNumber = None
    classes: OptionalValues = None
    share: dict[str, tuple[float | None, float | None]] = {}
    min_share: OptionalShare = None
    max_share: OptionalShare = None

    @field_validator("share", mode="before")
    @classmethod
    def _shares(cls, value: Any, info: ValidationInfo) -> dict[str, tuple[float | None, float | None]]:
        if not isinstance(value, dict) or not value:
            raise _problem(
                f"must be a mapping of class to [min, max], not {_kind(value)}",
                "write e.g. 'share: {positive: [0.3, 0.9]}'",
            )
        threshold = info.data.get("threshold") is not None
        out = {}
        for name, bounds in value.items():
            if threshold and norm(name) not in (POSITIVE, NEGATIVE):
                raise _problem(
                    "is not a class of a threshold label",
                    "use positive or negative (positive: value >= threshold)",
                    str(name),
                )
            out[norm(name)] = _bounds(bounds, str(name))
        return out

    @model_validator(mode="after")
    def _threshold_classes(self) -> LabelSpec:
        if self.threshold is not None and self.classes and set(self.classes) - {POSITIVE, NEGATIVE}:
            raise _problem(
                "names classes other than positive/negative, but a threshold derives exactly those two",
                "drop 'classes' or use [positive, negative]",
                "classes",
            )
        return self


class DuplicateSpec(_Model):
    max_share: Share
    columns: OptionalNames = None


class TableSpec(_Model):
    """``format: csv``: a table."""

    format: Literal["csv"] = "csv"
    description: Any = ""
    min_rows: Count = 1
    columns: dict[str, ColumnSpec] = {}
    label: LabelSpec | None = None
    duplicates: DuplicateSpec | None = None

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, list):  # shorthand: names of required columns
            return {name: {"required": True, "nullable": True} for name in _strings(value)}
        if not isinstance(value, dict):
            raise _problem(
                f"must be a mapping of column name to checks (or a list of names), not {_kind(value)}",
                "write 'columns: {rating: {min: 1, max: 5}}'",
            )
        for name in value:
            if not isinstance(name, str) or not name.strip():
                raise _problem(
                    "is not a column name", "write the column name as it appears in the CSV header", str(name)
                )
        return {name.strip(): {} if checks is None else checks for name, checks in value.items()}

    @field_validator("label", "duplicates", mode="before")
    @classmethod
    def _present(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("model_type", "empty")  # reported as "must be a mapping, not empty"
        return value

    def normalised(self) -> dict[str, Any]:
        return {
            "format": "csv",
            "description": self.description,
            "min_rows": self.min_rows,
            "columns": {name: col.checks() for name, col in self.columns.items()},
            "label": None
            if self.label is None
            else {
                "column": self.label.column,
                "threshold": self.label.threshold,
                "classes": self.label.classes,
                "share": dict(self.label.share),
                "min_share": self.label.min_share,
                "max_share": self.label.max_share,
            },
            "duplicates": None if self.duplicates is None else self.duplicates.model_dump(),
        }


class ImageSpec(_Model):
    """``format: images``: the Kaggle layout DIR/<split>/<class>/*.jpg."""

    format: Literal["images"] = "images"
    description: Any = ""
    splits: Names = DEFAULT_SPLITS
    classes: OptionalNames = None
    min_per_class: Any = 1
    extensions: Names = DEFAULT_EXTENSIONS
    max_corrupt: Annotated[int, BeforeValidator(lambda v: _number(v, 0, integer=True))] = 0

    @model_validator(mode="after")
    def _per_class(self) -> ImageSpec:
        value = self.min_per_class
        if isinstance(value, dict):
            for split in value:
                if split not in self.splits:
                    raise _problem(
                        "is not one of the splits", f"use one of {', '.join(self.splits)}", f"min_per_class.{split}"
                    )
            counts = {
                s: int(_number(value[s], 1, integer=True, sub=f"min_per_class.{s}")) if s in value else 1
                for s in self.splits
            }
        else:
            count = int(_number(value, 1, integer=True, sub="min_per_class"))
            counts = dict.fromkeys(self.splits, count)
        object.__setattr__(self, "min_per_class", counts)
        return self

    def normalised(self) -> dict[str, Any]:
        return {
            "format": "images",
            "description": self.description,
            "splits": list(self.splits),
            "classes": self.classes,
            "min_per_class": self.min_per_class,
            "max_corrupt": self.max_corrupt,
            "extensions": [e.lower() if e.startswith(".") else "." + e.lower() for e in self.extensions],
        }


_MISSING_FIX = {
    "label.column": "name the label column, e.g. 'column: rating'",
    "duplicates.max_share": "give the largest acceptable share of duplicate rows, e.g. 0.05",
}


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The model that validates the mapping at ``loc`` (through nested models and dicts of them)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            continue  # a dict key: the model is the dict's value type, found on the previous step
        for candidate in (field.annotation, *typing.get_args(field.annotation)):
            inner = [candidate, *typing.get_args(candidate)]
            found = next((c for c in inner if isinstance(c, type) and issubclass(c, BaseModel)), None)
            if found is not None:
                model = found
                break
    return model


def _spec_error(path: Path, model: type[BaseModel], exc: ValidationError) -> InputError:
    errors = exc.errors(include_url=False)
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(error["loc"])
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "spec":
        sub = ctx.get("sub", "")
        key = key + sub if sub.startswith("[") or not key else f"{key}.{sub}" if sub else key
        problem, fix = ctx["problem"], ctx["fix"]
    elif kind == "extra_forbidden":
        problem, fix = "is unknown", f"use one of {', '.join(sorted(_model_at(model, loc[:-1]).model_fields))}"
    elif kind == "missing":
        problem, fix = "is missing", _MISSING_FIX.get(key, "add it")
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        keys = ", ".join(sorted(_model_at(model, loc).model_fields))
        problem, fix = (
            f"must be a mapping, not {_kind(error['input'])}",
            f"write it as 'name: value' lines; keys: {keys}",
        )
    else:  # not expected: every field has a before validator
        problem, fix = error["msg"], "see the validate-data README for the spec's keys"
    where = f"key '{key}'" if key else "the top level"
    return InputError(SPEC_INPUT, f"{path}: {where} {problem}", fix)


def load_spec(path: str | os.PathLike[str], data: Path | None = None) -> dict:
    """Read and check the spec; returns it normalised (bounds as tuples, values as strings)."""
    if not str(path).strip():
        raise InputError(
            SPEC_INPUT, "is empty", "give the path of a YAML data spec (see actions/validate-data/examples)"
        )
    path = Path(path)
    text = read_text_input(path, SPEC_INPUT, "a YAML data spec relative to the workspace", max_bytes=256_000)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise InputError(SPEC_INPUT, f"{path}: not valid YAML{at}", "fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise InputError(
            SPEC_INPUT,
            f"{path}: the top level must be a mapping, not {_kind(raw)}",
            "start with 'format: csv' or 'format: images'",
        )
    fmt = raw.get("format")
    if fmt is None:
        fmt = "images" if data is not None and data.is_dir() else "csv"
    if fmt not in ("csv", "images"):
        raise InputError(SPEC_INPUT, f"{path}: key 'format' is {_kind(fmt)}", "write 'format: csv' or 'format: images'")
    model: type[TableSpec] | type[ImageSpec] = TableSpec if fmt == "csv" else ImageSpec
    try:
        return model.model_validate({**raw, "format": fmt}).normalised()
    except ValidationError as exc:
        raise _spec_error(path, model, exc) from None


# ---------------------------------------------------------------------------------------- checks


@dataclass
class Check:
    check: str  # kind of check, e.g. min-rows, no-nulls, class-share, images-per-class
    target: str  # what it looked at: a column, a class, split/class; '' for the whole dataset
    passed: bool
    observed: str
    expected: str
    examples: list[str] = field(default_factory=list)  # offending rows or files (the first few)


def _rows(indices: Iterable[int]) -> list[str]:
    return [f"row {i + 1}" for i in list(indices)[:EXAMPLES]]


def _share(count: int, total: int) -> str:
    return f"{count}/{total} ({count / total:.1%})" if total else f"{count}/0"


def _range(lo: float | None, hi: float | None, percent: bool = False) -> str:
    def f(x: float) -> str:
        return f"{x:.0%}" if percent and (x * 100).is_integer() else f"{x:.1%}" if percent else f"{x:g}"

    if lo is not None and hi is not None:
        return f"{f(lo)} to {f(hi)}"
    if lo is not None:
        return f">= {f(lo)}"
    return f"<= {f(hi)}" if hi is not None else ""


def check_table(table: Table, spec: dict) -> list[Check]:
    checks = [Check("min-rows", "", table.rows >= spec["min_rows"], str(table.rows), f">= {spec['min_rows']}")]
    if table.malformed:
        checks.append(
            Check(
                "well-formed-rows",
                "",
                False,
                f"{len(table.malformed)} rows with != {len(table.header)} fields",
                "every row has one field per header column",
                _rows(i - 1 for i in table.malformed),
            )
        )
    for name, col in spec["columns"].items():
        checks += _check_column(table, name, col)
    if spec["label"]:
        checks += _check_label(table, spec["label"])
    if spec["duplicates"]:
        checks.append(_check_duplicates(table, spec["duplicates"]))
    return checks


def _check_column(table: Table, name: str, col: dict) -> list[Check]:
    if name not in table.columns:
        if col["required"]:
            return [
                Check(
                    "required-column",
                    name,
                    False,
                    "missing",
                    "present",
                    [f"header: {', '.join(table.header) or '(none)'}"],
                )
            ]
        return []
    out = [Check("required-column", name, True, "present", "present")] if col["required"] else []
    values = table.values(name)
    nulls = [i for i, v in enumerate(values) if is_null(v)]
    if not col["nullable"]:
        out.append(
            Check("no-nulls", name, not nulls, f"{_share(len(nulls), len(values))} null", "0 null", _rows(nulls))
        )
    present = [(i, v) for i, v in enumerate(values) if v is not None and not is_null(v)]
    numeric_needed = col.get("type") in ("number", "integer") or "min" in col or "max" in col
    numbers = {i: to_number(v) for i, v in present} if numeric_needed else {}
    if "type" in col:
        if col["type"] == "string":
            bad = []
        elif col["type"] == "number":
            bad = [i for i, _ in present if numbers[i] is None]
        else:
            bad = [i for i, _ in present if (n := numbers[i]) is None or not float(n).is_integer()]
        out.append(
            Check(
                "type",
                name,
                not bad,
                f"{len(bad)} values not {col['type']}" if bad else col["type"],
                col["type"],
                [f"row {i + 1}: '{values[i]}'" for i in bad[:EXAMPLES]],
            )
        )
    if "min" in col or "max" in col:
        lo, hi = col.get("min"), col.get("max")
        bad = [
            i
            for i, _ in present
            if numbers[i] is None or (lo is not None and numbers[i] < lo) or (hi is not None and numbers[i] > hi)
        ]
        seen = [n for n in numbers.values() if n is not None]
        observed = f"{min(seen):g} to {max(seen):g}" if seen else "no numbers"
        if bad:
            observed += f"; {len(bad)} outside"
        out.append(
            Check(
                "range",
                name,
                not bad,
                observed,
                _range(lo, hi),
                [f"row {i + 1}: '{values[i]}'" for i in bad[:EXAMPLES]],
            )
        )
    if "allowed" in col:
        allowed = set(col["allowed"])
        bad = [i for i, v in present if norm(v) not in allowed]
        others = sorted({norm(values[i]) for i in bad})
        out.append(
            Check(
                "allowed-values",
                name,
                not bad,
                f"{len(bad)} rows with {', '.join(others[:EXAMPLES])}" if bad else "all allowed",
                ", ".join(col["allowed"]),
                _rows(bad),
            )
        )
    if "min_length" in col or "max_length" in col:
        lo, hi = col.get("min_length"), col.get("max_length")
        lengths = {i: len(v.strip()) for i, v in present}
        bad = [i for i, n in lengths.items() if (lo is not None and n < lo) or (hi is not None and n > hi)]
        observed = f"{min(lengths.values())} to {max(lengths.values())} characters" if lengths else "no values"
        out.append(
            Check(
                "length",
                name,
                not bad,
                observed + (f"; {len(bad)} outside" if bad else ""),
                _range(lo, hi) + " characters",
                _rows(bad),
            )
        )
    return out


def label_values(table: Table, label: dict) -> tuple[list[str | None], int]:
    """The label of each row (None: no label) and how many non-null values could not be labelled."""
    unlabelled = 0
    labels: list[str | None] = []
    for v in table.values(label["column"]):
        if is_null(v):
            labels.append(None)
        elif label["threshold"] is None:
            labels.append(norm(v))
        else:
            number = to_number(v)
            if number is None:
                unlabelled += 1
                labels.append(None)
            else:
                labels.append(POSITIVE if number >= label["threshold"] else NEGATIVE)
    return labels, unlabelled


def class_counts(labels: list[str | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in labels:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _check_label(table: Table, label: dict) -> list[Check]:
    column = label["column"]
    target = column if label["threshold"] is None else f"{column} >= {label['threshold']:g}"
    if column not in table.columns:
        return [Check("label-column", column, False, "missing", "present")]
    labels, unlabelled = label_values(table, label)
    out = []
    if unlabelled:
        bad = [i for i, v in enumerate(table.values(column)) if not is_null(v) and to_number(v) is None]
        out.append(
            Check(
                "label-numeric",
                target,
                False,
                f"{unlabelled} values are not numbers",
                "numbers (a threshold label)",
                [f"row {i + 1}: '{table.values(column)[i]}'" for i in bad[:EXAMPLES]],
            )
        )
    counts = class_counts(labels)
    total = sum(counts.values())
    expected = list(label["classes"] or ([POSITIVE, NEGATIVE] if label["threshold"] is not None else []))
    for cls in expected:
        out.append(
            Check("class-present", f"{target}: {cls}", counts.get(cls, 0) > 0, str(counts.get(cls, 0)), ">= 1 row")
        )
    for cls, (lo, hi) in label["share"].items():
        n = counts.get(cls, 0)
        share = n / total if total else 0.0
        ok = total > 0 and (lo is None or share >= lo) and (hi is None or share <= hi)
        out.append(Check("class-share", f"{target}: {cls}", ok, _share(n, total), _range(lo, hi, percent=True)))
    lo, hi = label["min_share"], label["max_share"]
    if lo is not None or hi is not None:
        classes = sorted(set(counts) | set(expected))
        off = [
            c
            for c in classes
            if (lo is not None and counts.get(c, 0) / max(total, 1) < lo)
            or (hi is not None and counts.get(c, 0) / max(total, 1) > hi)
        ]
        observed = ", ".join(f"{c}: {counts.get(c, 0) / max(total, 1):.1%}" for c in classes) or "no labelled rows"
        out.append(
            Check(
                "class-balance",
                target,
                bool(total) and not off,
                observed,
                f"every class {_range(lo, hi, percent=True)}",
                [f"{c}: {_share(counts.get(c, 0), total)}" for c in off[:EXAMPLES]],
            )
        )
    return out


def _check_duplicates(table: Table, dup: dict) -> Check:
    cols = dup["columns"] or table.header
    missing = [c for c in cols if c not in table.columns]
    target = ", ".join(cols) if dup["columns"] else "all columns"
    if missing:
        return Check(
            "duplicates",
            target,
            False,
            f"column {', '.join(missing)} missing",
            f"<= {dup['max_share']:.1%} duplicate rows",
        )
    seen: dict[tuple, int] = {}
    repeats = []
    for i, key in enumerate(zip(*(table.values(c) for c in cols), strict=True)):
        key = tuple((v or "").strip() for v in key)
        if key in seen:
            repeats.append((i, seen[key]))
        else:
            seen[key] = i
    share = len(repeats) / table.rows if table.rows else 0.0
    return Check(
        "duplicates",
        target,
        share <= dup["max_share"],
        _share(len(repeats), table.rows),
        f"<= {dup['max_share']:.1%}",
        [f"row {i + 1} repeats row {j + 1}" for i, j in repeats[:EXAMPLES]],
    )


# ---------------------------------------------------------------------------------------- images

_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def pillow_available() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def image_problem(path: Path, method: str) -> str | None:
    """Why the file is not a readable image (None: readable). method: 'pillow' or 'magic'."""
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty file"
        if method == "pillow":
            from PIL import Image

            with Image.open(path) as im:
                im.verify()  # structure, checksums (PNG)
            with Image.open(path) as im:
                im.load()  # full decode: catches truncated data
            return None
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
            return None
        return "not an image (unknown signature)"
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the file is unusable
        text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        return text[:120]


def check_images(root: Path, spec: dict, method: str = "auto") -> tuple[list[Check], dict]:
    """Checks for DIR/<split>/<class>/<image>, and a summary (counts, method, corrupt files)."""
    if method == "auto":
        method = "pillow" if pillow_available() else "magic"
    exts = set(spec["extensions"])
    found: dict[str, dict[str, list[Path]]] = {}
    ignored = 0
    for split in spec["splits"]:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        found[split] = {}
        for entry in sorted(split_dir.iterdir()):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                ignored += 1
                continue
            files = []
            for f in sorted(entry.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    if f.suffix.lower() in exts:
                        files.append(f)
                    else:
                        ignored += 1
            found[split][entry.name] = files
    expected = spec["classes"] or sorted({c for classes in found.values() for c in classes})
    checks: list[Check] = []
    total = sum(len(files) for classes in found.values() for files in classes.values())
    checks.append(Check("not-empty", "", total > 0, f"{total} images", ">= 1 image"))
    for split in spec["splits"]:
        if split not in found:
            checks.append(Check("split-present", split, False, "missing", f"folder {split}/"))
            continue
        minimum = spec["min_per_class"][split]
        for cls in expected:
            class_files = found[split].get(cls)
            if class_files is None:
                checks.append(Check("images-per-class", f"{split}/{cls}", False, "0 (folder missing)", f">= {minimum}"))
            else:
                checks.append(
                    Check(
                        "images-per-class",
                        f"{split}/{cls}",
                        len(class_files) >= minimum,
                        str(len(class_files)),
                        f">= {minimum}",
                    )
                )
        if spec["classes"]:
            extra = sorted(set(found[split]) - set(spec["classes"]))
            if extra:
                checks.append(Check("unexpected-classes", split, False, ", ".join(extra), "only the listed classes"))
    all_files = [f for classes in found.values() for files in classes.values() for f in files]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(pool.map(lambda f: image_problem(f, method), all_files))
    corrupt = [(f, p) for f, p in zip(all_files, problems, strict=True) if p]
    label = "Pillow full decode" if method == "pillow" else "file signature and size (Pillow not installed)"
    checks.append(
        Check(
            "readable-images",
            "",
            len(corrupt) <= spec["max_corrupt"],
            f"{len(corrupt)} unreadable of {len(all_files)}",
            f"<= {spec['max_corrupt']} unreadable ({label})",
            [f"{f.relative_to(root)}: {p}" for f, p in corrupt[:EXAMPLES]],
        )
    )
    info = {
        "method": method,
        "method_description": label,
        "images": total,
        "ignored_files": ignored,
        "counts": {split: {cls: len(files) for cls, files in classes.items()} for split, classes in found.items()},
        "corrupt": [{"file": str(f.relative_to(root)), "problem": p} for f, p in corrupt],
    }
    return checks, info


# ---------------------------------------------------------------------------------------- report


@dataclass
class ValidationResult:
    valid: bool
    checks: list[Check]
    report: Path
    report_md: Path
    markdown: str

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def outputs(self) -> dict[str, object]:
        return {
            "data-valid": "true" if self.valid else "false",
            "report": str(self.report),
            "report-md": str(self.report_md),
            "failed-checks": str(len(self.failed)),
            "failures": self.failures(),
        }

    def failures(self, shown: int = 3) -> str:
        """The failed checks by name with their numbers, on one line (the first ``shown``)."""
        parts = [
            f"{c.check}{' ' + c.target if c.target else ''}: {c.observed} (expected {c.expected})"
            for c in self.failed[:shown]
        ]
        more = len(self.failed) - shown
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def render_markdown(report: dict) -> str:
    failed = report["failed_checks"]
    verdict = (
        "✅ **data valid**"
        if report["valid"]
        else f"❌ **data invalid**: {failed} of {len(report['checks'])} checks failed"
    )
    lines = [
        f"### 🔎 validate-data: `{gha.md_inline(report['data'])}`",
        "",
        f"{verdict} (spec `{gha.md_inline(report['spec'])}`, {report['format']}; {report['size']})",
        "",
    ]
    rows = [
        [
            "✅" if c["passed"] else "❌",
            f"`{c['check']}`",
            gha.md_inline(c["target"] or "—"),
            gha.md_inline(c["observed"]),
            gha.md_inline(c["expected"]),
        ]
        for c in sorted(report["checks"], key=lambda c: c["passed"])
    ]
    lines.append(gha.md_table(["", "check", "target", "observed", "expected"], rows))
    details = [c for c in report["checks"] if not c["passed"] and c["examples"]]
    if details:
        lines.append("<details><summary>examples of failing rows and files</summary>\n")
        for c in details:
            lines.append(f"- `{c['check']}` {gha.md_inline(c['target'])}: " + gha.md_inline("; ".join(c["examples"])))
        lines.append("\n</details>\n")
    return "\n".join(lines)


def validate(
    data: str | os.PathLike[str],
    spec_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] = ".mlops/validate-data",
    image_method: str = "auto",
) -> ValidationResult:
    """Check DATA against the spec, write validate-data.json and validate-data.md to output_dir."""
    if not str(data).strip():
        raise InputError(DATA_INPUT, "is empty", "give a CSV file or an image folder (DIR/<split>/<class>/*.jpg)")
    data = Path(data)
    if not data.exists():
        raise InputError(
            DATA_INPUT, f"'{data}' not found", "give a CSV file or an image folder relative to the workspace"
        )
    claimed = {DATA_INPUT: data, "spec": Path(spec_path) if str(spec_path).strip() else None}
    spec = load_spec(spec_path, data)
    extra: dict[str, Any] = {}
    if spec["format"] == "csv":
        if data.is_dir():
            raise InputError(
                DATA_INPUT,
                f"'{data}' is a directory but the spec says format: csv",
                "give the CSV file, or write 'format: images' in the spec",
            )
        paths.claim_output(output_dir, STAGE, "output-dir", claimed)  # before any work: new, empty or ours
        table = read_table(data)
        checks = check_table(table, spec)
        size = f"{table.rows} rows, {len(table.header)} columns"
        extra["rows"] = table.rows
        extra["columns"] = table.header
        if spec["label"] and spec["label"]["column"] in table.columns:
            extra["classes"] = class_counts(label_values(table, spec["label"])[0])
    else:
        if not data.is_dir():
            raise InputError(
                DATA_INPUT,
                f"'{data}' is not a directory but the spec says format: images",
                "give the image folder (DIR/<split>/<class>/*.jpg)",
            )
        paths.claim_output(output_dir, STAGE, "output-dir", claimed)
        checks, extra = check_images(data, spec, image_method)
        size = f"{extra['images']} images"
    report = {
        "data": str(data),
        "spec": str(spec_path),
        "format": spec["format"],
        "size": size,
        "valid": all(c.passed for c in checks),
        "failed_checks": sum(not c.passed for c in checks),
        "checks": [asdict(c) for c in checks],
        **extra,
    }
    markdown = render_markdown(report)
    out = Path(output_dir)
    with paths.output_dir(out, STAGE, "output-dir", claimed) as staging:  # replaced atomically, never a foreign folder
        (staging / "validate-data.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (staging / "validate-data.md").write_text(markdown, encoding="utf-8")
    json_path, md_path = out / "validate-data.json", out / "validate-data.md"
    return ValidationResult(
        valid=report["valid"], checks=checks, report=json_path, report_md=md_path, markdown=markdown
    )
