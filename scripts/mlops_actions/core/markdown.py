"""Markdown for job summaries and the pull request body: metric numbers, deltas, sizes and cells."""

from __future__ import annotations


def number(value: object) -> str:
    """A metric as the PR, DVC and job summaries show it: 4 significant digits, '—' for none."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def delta(new: object, old: object) -> str:
    """The change from ``old`` to ``new``: ``▲ +0.02``, ``▼ -0.1``, ``＝ +0``, or new/removed/—/changed."""
    if _is_number(new) and _is_number(old):
        d = new - old  # type: ignore[operator]
        return f"{'▲' if d > 0 else '▼' if d < 0 else '＝'} {d:+.4g}"
    if old is None:
        return "new"
    if new is None:
        return "removed"
    return "—" if old == new else "changed"


def metric_rows(new: dict, old: dict) -> list[dict]:
    """One row per metric of either side: name, new, old, delta (the pull request body's table)."""
    return [
        {
            "name": name,
            "new": number(new.get(name)),
            "old": number(old.get(name)),
            "delta": delta(new.get(name), old.get(name)),
        }
        for name in sorted(set(new) | set(old))
    ]


AUTOLOG_NOISE = ("training_", "system/")  # autologging's training-set scores, system metrics


def order_metrics(names: list[str], chosen: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(shown, folded, unmatched): the names matching ``chosen`` (names or fnmatch globs) in its
    order, then the others but autologging's noise (``training_*``, ``system/*``), sorted; the
    noise, which goes under the table; and the chosen entries no name matched."""
    import fnmatch

    first: list[str] = []
    unmatched: list[str] = []
    for pattern in chosen:
        hits = [n for n in sorted(names) if fnmatch.fnmatchcase(n, pattern) and n not in first]
        if not hits and not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            unmatched.append(pattern)
        first += hits
    rest = [n for n in sorted(names) if n not in first]
    folded = [n for n in rest if n.startswith(AUTOLOG_NOISE)]
    return first + [n for n in rest if n not in folded], folded, unmatched


def cell(value: object, limit: int = 80) -> str:
    """One line of text for a table cell: white space folded, pipes escaped, at most ``limit`` characters."""
    text = " ".join(str(value).split()).replace("|", "\\|").replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"
