"""CSV tables as columns of raw strings, and the value rules validate-data and drift share (what is
null, what is a number, one spelling per value)."""

from __future__ import annotations

import csv
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

DATA_INPUT = "data"


NULLS = frozenset({"", "na", "n/a", "nan", "null", "none"})


def is_null(value: str | None) -> bool:
    return value is None or value.strip().lower() in NULLS


def to_number(value: str | None) -> float | None:
    """The value as a finite-or-infinite float; None when it is not a number (or is null)."""
    if value is None or is_null(value):
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return None if math.isnan(number) else number


def norm(value: object) -> str:
    """One spelling per value, so '4', '4.0' and the YAML integer 4 compare equal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            return text
        if math.isnan(number):
            return text
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


@dataclass
class Table:
    path: Path
    header: list[str]
    columns: dict[str, list[str | None]]
    rows: int
    malformed: list[int] = field(default_factory=list)  # 1-based data row numbers with the wrong field count

    def values(self, column: str) -> list[str | None]:
        return self.columns.get(column, [])


def read_table(path: str | os.PathLike[str], input_name: str = DATA_INPUT) -> Table:
    """A CSV file (UTF-8, BOM allowed) as columns of raw strings. A missing file is an InputError."""
    path = Path(path)
    if not str(path).strip() or str(path) == ".":
        raise InputError(input_name, "is empty", "give the path of a CSV file")
    if path.is_dir():
        raise InputError(input_name, f"'{path}' is a directory, not a CSV file", "give the path of a CSV file")
    if not path.is_file():
        raise InputError(input_name, f"'{path}' not found", "give the path of a CSV file relative to the workspace")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None) or []
            header = [h.strip() for h in header]
            columns: dict[str, list[str | None]] = {h: [] for h in header}
            index = {h: i for i, h in reversed(list(enumerate(header)))}  # first column wins on a repeated name
            malformed: list[int] = []
            rows = 0
            for record in reader:
                if len(record) != len(header):
                    if not any(cell.strip() for cell in record):  # a blank line is not a row
                        continue
                    malformed.append(rows + 1)
                rows += 1
                for name, i in index.items():
                    columns[name].append(record[i] if i < len(record) else None)
    except UnicodeDecodeError as exc:
        raise InputError(
            input_name, f"'{path}' is not UTF-8 text ({exc.reason} at byte {exc.start})", "save the CSV as UTF-8"
        ) from None
    except csv.Error as exc:
        raise InputError(
            input_name, f"'{path}' is not a readable CSV file: {exc}", "check the quoting of the file"
        ) from None
    return Table(path=path, header=header, columns=columns, rows=rows, malformed=malformed)
