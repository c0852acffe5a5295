"""Gate, drift: compare new data with a reference dataset, feature by feature (CSV vs CSV).

Each common column gets a type (inferred, or given with ``columns``) and the tests of that type:

==============  ==============================================  =========================================
type            statistics                                      drifted when
==============  ==============================================  =========================================
numeric         Kolmogorov-Smirnov D and p-value                p < p-value
categorical     chi-square p-value (homogeneity), PSI           p < p-value **and** PSI >= psi
text            length (tokens per row): KS D and p-value       length p < p-value, or
                vocabulary: out-of-vocabulary rate,             JS >= js-distance and its p < p-value, or
                Jensen-Shannon distance of token frequencies    OOV >= oov-rate and its p < p-value
==============  ==============================================  =========================================

PSI and the vocabulary statistics are effect sizes: alone they are noisy on small samples (a few
hundred rows give PSI or JS distances well above typical thresholds by chance). So each is paired
with a significance test: chi-square for categories, and for the vocabulary a permutation test
(rows shuffled between the two datasets, fixed seed) that gives the JS distance and the OOV rate a
p-value. Conversely the significance alone flags negligible changes on large samples.

The result is a signal, not a failure: the report says what moved; the caller decides.

With ``service-url`` instead of two files, the stage asks a running serving image (rendered with
``reference-data``) for its ``/monitoring/drift``: the population stability index of each feature and
of the predicted classes over the server's sliding window of traffic, against the profile of the
training data baked into the image. A feature drifts when its PSI is at least ``psi``; a window
with fewer than ``min-rows`` rows decides nothing (drift-detected false, said in the report).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..core import gha, paths
from ..core.errors import InputError, TransientError
from ..core.paths import read_text_input
from ..core.retry import retry_or_raise
from ..core.tables import Table, is_null, norm, read_table, to_number

STAGE = "drift"  # the output folder's marker
TYPES = ("numeric", "categorical", "text", "ignore")
CATEGORICAL_MAX_INT = 20  # integer columns with at most this many distinct values are categories
CATEGORICAL_MAX = 50  # string columns with at most this many distinct values (or 5% of the rows)
TEXT_MIN_TOKENS = 3  # mean tokens per value for a string column to be text
TOP_TOKENS = 1000  # the JS distance compares the most frequent tokens; the rest share one bucket
PERMUTATIONS = 200
PERMUTATION_TOKENS = 500_000  # larger text columns are permutation-tested on a random subset of rows
PSI_FLOOR = 1e-4  # share given to a category absent on one side, so PSI stays finite
_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Thresholds:
    p_value: float = 0.05
    psi: float = 0.2
    js_distance: float = 0.1
    oov_rate: float = 0.1

    def check(self) -> Thresholds:
        for name, value, lo, hi in (
            ("p-value", self.p_value, 0, 1),
            ("psi", self.psi, 0, None),
            ("js-distance", self.js_distance, 0, 1),
            ("oov-rate", self.oov_rate, 0, 1),
        ):
            if (
                not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= lo
                or (hi is not None and value > hi)
            ):
                span = f"in (0, {hi}]" if hi is not None else "above 0 and finite"
                raise InputError(name, f"{value} is out of range", f"give a number {span}")
        return self


@dataclass
class Feature:
    name: str
    type: str
    drifted: bool
    stats: dict[str, float | int | None]
    tests: list[dict]  # one per decision statistic: statistic, value, threshold, flagged
    reasons: list[str] = field(default_factory=list)
    inferred: bool = True
    rows: dict[str, int] = field(default_factory=dict)  # non-null values per side
    null_share: dict[str, float] = field(default_factory=dict)
    note: str = ""


# ------------------------------------------------------------------------------------ column types


def parse_columns(value: str) -> dict[str, str]:
    """``name=type`` (or ``name:type``) items separated by commas or newlines, or a YAML file with a
    ``columns:`` mapping. Types: numeric, categorical, text, ignore."""
    text = (value or "").strip()
    if not text:
        return {}
    if text.endswith((".yml", ".yaml")) and "\n" not in text and "=" not in text:
        path = Path(text)
        try:
            doc = yaml.safe_load(
                read_text_input(path, "columns", "a YAML file with a 'columns:' mapping", max_bytes=256_000)
            )
        except yaml.YAMLError:
            raise InputError("columns", f"{path}: not valid YAML", "fix the YAML syntax") from None
        if not isinstance(doc, dict) or set(doc) != {"columns"} or not isinstance(doc["columns"], dict):
            raise InputError(
                "columns",
                f"{path}: must hold exactly one key 'columns' mapping column names to types",
                "write 'columns: {review_text: text, rating: categorical}'",
            )
        items = [(str(k), v) for k, v in doc["columns"].items()]
        where = f"{path}: key 'columns."
    else:
        items = []
        for part in re.split(r"[,\n]", text):
            part = part.strip()
            if not part or part.startswith("#"):
                continue
            m = re.fullmatch(r"(.+?)\s*[=:]\s*([A-Za-z]+)", part)
            if not m:
                raise InputError(
                    "columns",
                    f"'{part}' is not name=type",
                    f"write e.g. 'rating=categorical, review_text=text' (types: {', '.join(TYPES)})",
                )
            items.append((m.group(1).strip(), m.group(2)))
        where = "'"
    out: dict[str, str] = {}
    for name, kind in items:
        if kind not in TYPES:
            raise InputError("columns", f"{where}{name}' has type {kind!r}", f"use one of {', '.join(TYPES)}")
        if name in out:
            raise InputError("columns", f"{where}{name}' is given twice", "give each column once")
        out[name] = kind
    return out


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def infer_type(values: list[str]) -> tuple[str, str]:
    """(type, why) from the non-null values of a column."""
    if not values:
        return "ignore", "no values"
    numbers = [n for n in (to_number(v) for v in values) if n is not None]
    distinct = len({norm(v) for v in values})
    if len(numbers) == len(values):  # every value is a number
        if all(n.is_integer() for n in numbers) and distinct <= CATEGORICAL_MAX_INT:
            return "categorical", f"integers with {distinct} distinct values"
        return "numeric", "numbers"
    mean_tokens = sum(len(tokens(v)) for v in values) / len(values)
    if mean_tokens >= TEXT_MIN_TOKENS and distinct / len(values) >= 0.5:
        return "text", f"{mean_tokens:.1f} tokens per value, mostly distinct"
    if distinct <= max(CATEGORICAL_MAX, 0.05 * len(values)):
        return "categorical", f"{distinct} distinct values"
    if mean_tokens >= TEXT_MIN_TOKENS:
        return "text", f"{mean_tokens:.1f} tokens per value"
    return "ignore", f"{distinct} distinct short values (an identifier?); set its type with columns to test it"


# ------------------------------------------------------------------------------------- statistics


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    result = stats.ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population stability index: sum (cur% - ref%) * ln(cur% / ref%), empty shares floored."""
    p = np.maximum(ref_counts / max(ref_counts.sum(), 1), PSI_FLOOR)
    q = np.maximum(cur_counts / max(cur_counts.sum(), 1), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def chi_square(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x k table; (statistic, p-value)."""
    from scipy import stats

    keep = (ref_counts + cur_counts) > 0
    table = np.vstack([ref_counts[keep], cur_counts[keep]])
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def js_distance(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors."""
    p = p_counts / max(p_counts.sum(), 1)
    q = q_counts / max(q_counts.sum(), 1)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def oov_rate(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Share of the current token occurrences whose token never occurs in the reference."""
    total = cur_counts.sum()
    return float(cur_counts[ref_counts == 0].sum() / total) if total else 0.0


def vocabulary_stats(
    reference: list[list[str]],
    current: list[list[str]],
    permutations: int = PERMUTATIONS,
    top: int = TOP_TOKENS,
    seed: int = 0,
) -> dict[str, Any]:
    """OOV rate and JS distance of token frequencies, each with a permutation p-value: rows are
    shuffled between the two sides (sizes kept) and the statistic recomputed."""
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(t, len(vocab)) for doc in reference + current for t in doc), dtype=np.int64)
    lengths = np.array([len(d) for d in reference + current], dtype=np.int64)
    doc_of_token = np.repeat(np.arange(len(lengths)), lengths)
    size = len(vocab)
    pooled = np.bincount(ids, minlength=size)
    # the most frequent tokens keep their own bin, the rest share one; a tie at the cut-off leaves
    # all the tied tokens out (picking some by position would favour one side)
    order = np.argsort(-pooled, kind="stable")
    if size > top:
        order = order[pooled[order] > pooled[order[top]]]
    bucket = np.full(size, len(order), dtype=np.int64)
    bucket[order] = np.arange(len(order))
    bucketed = bucket[ids]
    nbins = len(order) + 1

    def statistics(
        side: np.ndarray, ids: np.ndarray, bucketed: np.ndarray, doc_of_token: np.ndarray
    ) -> tuple[float, float]:
        cur = side[doc_of_token]
        ref_counts = np.bincount(ids[~cur], minlength=size)
        cur_counts = np.bincount(ids[cur], minlength=size)
        js = js_distance(np.bincount(bucketed[~cur], minlength=nbins), np.bincount(bucketed[cur], minlength=nbins))
        return js, oov_rate(ref_counts, cur_counts)

    observed_side = np.arange(len(lengths)) >= len(reference)
    js, oov = statistics(observed_side, ids, bucketed, doc_of_token)
    rng = np.random.default_rng(seed)
    # the permutation test on at most PERMUTATION_TOKENS tokens: a random subset of rows when larger
    side, p_ids, p_bucketed, p_doc, p_js, p_oov = observed_side, ids, bucketed, doc_of_token, js, oov
    sampled = len(ids) > PERMUTATION_TOKENS
    if sampled:
        keep = rng.random(len(lengths)) < PERMUTATION_TOKENS / len(ids)
        token_keep = keep[doc_of_token]
        side = observed_side[keep]
        p_ids, p_bucketed = ids[token_keep], bucketed[token_keep]
        p_doc = (np.cumsum(keep) - 1)[doc_of_token[token_keep]]
        p_js, p_oov = statistics(side, p_ids, p_bucketed, p_doc)
    js_null, oov_null = [], []
    for _ in range(permutations):
        j, o = statistics(rng.permutation(side), p_ids, p_bucketed, p_doc)
        js_null.append(j)
        oov_null.append(o)
    js_null_a, oov_null_a = np.array(js_null), np.array(oov_null)
    cur_tokens = observed_side[doc_of_token]
    ref_counts, cur_counts = np.bincount(ids[~cur_tokens], minlength=size), np.bincount(ids[cur_tokens], minlength=size)
    return {
        "oov_rate": oov,
        "oov_p_value": float((1 + np.sum(oov_null_a >= p_oov)) / (permutations + 1)),
        "js_distance": js,
        "js_p_value": float((1 + np.sum(js_null_a >= p_js)) / (permutations + 1)),
        "js_noise": float(np.median(js_null_a)) if permutations else 0.0,
        "vocabulary_reference": int(np.count_nonzero(ref_counts)),
        "vocabulary_current": int(np.count_nonzero(cur_counts)),
        "new_tokens": int(np.count_nonzero((cur_counts > 0) & (ref_counts == 0))),
        "top_new_tokens": [
            t
            for t, _ in sorted(
                ((t, int(cur_counts[i])) for t, i in vocab.items() if cur_counts[i] and not ref_counts[i]),
                key=lambda kv: (-kv[1], kv[0]),
            )[:10]
        ],
        "permutations": permutations,
        "permutation_rows": int(len(side)),
    }


def _test(statistic: str, value: float, p_value: float, threshold: str, flagged: bool) -> dict:
    return {
        "statistic": statistic,
        "value": value,
        "p_value": p_value,
        "threshold": threshold,
        "flagged": bool(flagged),
    }


def compare_numeric(ref: list[str], cur: list[str], th: Thresholds) -> tuple[dict, list[dict]]:
    a = np.array([x for x in (to_number(v) for v in ref) if x is not None], dtype=float)
    b = np.array([x for x in (to_number(v) for v in cur) if x is not None], dtype=float)
    d, p = ks(a, b)
    stats = {
        "ks_statistic": d,
        "ks_p_value": p,
        "mean_reference": float(np.mean(a)),
        "mean_current": float(np.mean(b)),
        "std_reference": float(np.std(a)),
        "std_current": float(np.std(b)),
        "not_numbers_current": len(cur) - len(b),
    }
    return stats, [_test("KS D", d, p, f"p < {th.p_value:g}", p < th.p_value)]


def compare_categorical(ref: list[str], cur: list[str], th: Thresholds) -> tuple[dict, list[dict]]:
    rc, cc = Counter(norm(v) for v in ref), Counter(norm(v) for v in cur)
    cats = sorted(set(rc) | set(cc))
    r = np.array([rc[c] for c in cats], dtype=float)
    c = np.array([cc[c] for c in cats], dtype=float)
    chi2, p = chi_square(r, c)
    index = psi(r, c)
    stats = {
        "chi2": chi2,
        "chi2_p_value": p,
        "psi": index,
        "categories": len(cats),
        "new_categories": sorted(set(cc) - set(rc))[:20],
        "missing_categories": sorted(set(rc) - set(cc))[:20],
        "shares_reference": {k: rc[k] / max(len(ref), 1) for k in cats[:50]},
        "shares_current": {k: cc[k] / max(len(cur), 1) for k in cats[:50]},
    }
    return stats, [
        _test(
            "PSI (chi-square p)", index, p, f">= {th.psi:g} and p < {th.p_value:g}", index >= th.psi and p < th.p_value
        )
    ]


def compare_text(ref: list[str], cur: list[str], th: Thresholds) -> tuple[dict, list[dict]]:
    rt, ct = [tokens(v) for v in ref], [tokens(v) for v in cur]
    d, p = ks(np.array([len(t) for t in rt], dtype=float), np.array([len(t) for t in ct], dtype=float))
    permutations = max(PERMUTATIONS, min(5000, math.ceil(2 / th.p_value)))
    vocab = vocabulary_stats(rt, ct, permutations=permutations)
    stats = {
        "length_ks_statistic": d,
        "length_ks_p_value": p,
        "mean_tokens_reference": float(np.mean([len(t) for t in rt])),
        "mean_tokens_current": float(np.mean([len(t) for t in ct])),
        **vocab,
    }
    tests = [
        _test("length KS D", d, p, f"p < {th.p_value:g}", p < th.p_value),
        _test(
            "JS distance (permutation p)",
            vocab["js_distance"],
            vocab["js_p_value"],
            f">= {th.js_distance:g} and p < {th.p_value:g}",
            vocab["js_distance"] >= th.js_distance and vocab["js_p_value"] < th.p_value,
        ),
        _test(
            "OOV rate (permutation p)",
            vocab["oov_rate"],
            vocab["oov_p_value"],
            f">= {th.oov_rate:g} and p < {th.p_value:g}",
            vocab["oov_rate"] >= th.oov_rate and vocab["oov_p_value"] < th.p_value,
        ),
    ]
    return stats, tests


def compare_feature(
    name: str,
    kind: str,
    ref: list[str | None],
    cur: list[str | None],
    th: Thresholds,
    inferred: bool = True,
    why: str = "",
) -> Feature:
    a = [v for v in ref if v is not None and not is_null(v)]
    b = [v for v in cur if v is not None and not is_null(v)]
    feature = Feature(
        name=name,
        type=kind,
        drifted=False,
        stats={},
        tests=[],
        inferred=inferred,
        rows={"reference": len(a), "current": len(b)},
        null_share={"reference": 1 - len(a) / max(len(ref), 1), "current": 1 - len(b) / max(len(cur), 1)},
        note=why if inferred else "type given in columns",
    )
    if kind == "ignore":
        return feature
    if not a:
        feature.note = "no values in the reference: not tested"
        return feature
    if not b:
        feature.drifted, feature.reasons = True, ["no values in the current data"]
        return feature
    if kind == "numeric":
        if not any(to_number(v) is not None for v in a):
            feature.note = "no numbers in the reference: not tested"
            return feature
        if not any(to_number(v) is not None for v in b):
            feature.drifted, feature.reasons = True, ["no numbers in the current data"]
            return feature
    compare = {"numeric": compare_numeric, "categorical": compare_categorical, "text": compare_text}[kind]
    feature.stats, feature.tests = compare(a, b, th)
    flagged = any(t["flagged"] for t in feature.tests)
    feature.drifted = bool(flagged)
    if flagged:
        feature.reasons = [f"{t['statistic']} {_cell(t)} ({t['threshold']})" for t in feature.tests if t["flagged"]]
    return feature


# ------------------------------------------------------------------------------------------ report


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def _cell(test: dict) -> str:
    return f"{_fmt(test['value'])}, p={_fmt(test['p_value'])}"


@dataclass
class DriftResult:
    drift_detected: bool
    features: list[Feature]
    report: Path
    table: Path
    markdown: str

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def outputs(self) -> dict[str, object]:
        return {
            "drift-detected": "true" if self.drift_detected else "false",
            "report": str(self.report),
            "table": str(self.table),
            "drifted-features": ",".join(self.drifted),
        }


def render_markdown(report: dict) -> str:
    drifted = report["drifted_features"]
    tested = [f for f in report["features"] if f["type"] != "ignore"]
    head = (
        f"⚠️ **drift detected** in {len(drifted)} of {len(tested)} features: "
        + ", ".join(f"`{gha.md_inline(n)}`" for n in drifted)
        if drifted
        else f"✅ **no drift** in {len(tested)} features"
    )
    lines = [
        "### 🌊 drift",
        "",
        f"{head} (reference `{gha.md_inline(report['reference'])}`: {report['rows']['reference']} rows; current "
        f"`{gha.md_inline(report['current'])}`: {report['rows']['current']} rows)",
        "",
    ]
    rows = []
    for f in report["features"]:
        kind = f["type"] + ("" if f["inferred"] else " (given)")
        if not f["tests"]:
            rows.append(
                [
                    f"`{gha.md_inline(f['name'])}`",
                    kind,
                    "—",
                    "—",
                    "—",
                    "—",
                    ("⚠️ " + "; ".join(f["reasons"])) if f["drifted"] else (f["note"] or "not tested"),
                ]
            )
        for t in f["tests"]:
            rows.append(
                [
                    f"`{gha.md_inline(f['name'])}`",
                    kind,
                    t["statistic"],
                    _fmt(t["value"]),
                    _fmt(t["p_value"]),
                    t["threshold"],
                    "⚠️ drift" if t["flagged"] else "ok",
                ]
            )
    lines.append(gha.md_table(["feature", "type", "statistic", "value", "p-value", "drift when", "result"], rows))
    if report["columns_only_in_reference"] or report["columns_only_in_current"]:
        lines.append(
            f"Not compared: only in reference: {gha.md_inline(', '.join(report['columns_only_in_reference'])) or '—'}; "
            f"only in current: {gha.md_inline(', '.join(report['columns_only_in_current'])) or '—'}\n"
        )
    return "\n".join(lines)


def _load(path: str, input_name: str) -> Table:
    table = read_table(path, input_name)
    if not table.header:
        raise InputError(
            input_name, f"'{path}' is empty (no header)", "give a CSV file with a header row and data rows"
        )
    if table.rows == 0:
        raise InputError(input_name, f"'{path}' has no data rows", "give a CSV file with at least one data row")
    return table


def detect_drift(
    reference: str | os.PathLike[str],
    current: str | os.PathLike[str],
    *,
    columns: str = "",
    thresholds: Thresholds = Thresholds(),
    output_dir: str | os.PathLike[str] = ".mlops/drift",
) -> DriftResult:
    """Compare CURRENT with REFERENCE; write drift.json and drift.md to output_dir."""
    thresholds.check()
    claimed = {
        name: Path(value) for name, value in (("reference", reference), ("current", current)) if str(value).strip()
    }
    paths.claim_output(output_dir, STAGE, "output-dir", claimed)  # before any work: new, empty or ours
    overrides = parse_columns(columns)
    ref = _load(str(reference), "reference")
    cur = _load(str(current), "current")
    common = [c for c in ref.header if c in cur.columns]
    if not common:
        raise InputError(
            "current",
            f"'{current}' has no column in common with the reference (reference: {', '.join(ref.header[:10])}; "
            f"current: {', '.join(cur.header[:10])})",
            "compare two CSV files with the same column names",
        )
    unknown = [c for c in overrides if c not in common]
    if unknown:
        raise InputError(
            "columns",
            f"{', '.join(repr(c) for c in unknown)} not in both files (common columns: {', '.join(common[:20])})",
            "name columns present in the reference and the current data",
        )
    features = []
    with gha.group(f"drift: {len(common)} columns, {ref.rows} reference rows vs {cur.rows} current rows"):
        for name in common:
            if name in overrides:
                kind, why, inferred = overrides[name], "", False
            else:
                kind, why = infer_type(
                    [v for v in ref.values(name) if v is not None and not is_null(v)]
                    or [v for v in cur.values(name) if v is not None and not is_null(v)]
                )
                inferred = True
            feature = compare_feature(name, kind, ref.values(name), cur.values(name), thresholds, inferred, why)
            gha.log(
                f"{name} ({kind}): "
                + ("; ".join(f"{t['statistic']} {_cell(t)}" for t in feature.tests) or feature.note or "-")
                + (" → DRIFT" if feature.drifted else "")
            )
            features.append(feature)
    report = {
        "reference": str(reference),
        "current": str(current),
        "rows": {"reference": ref.rows, "current": cur.rows},
        "thresholds": {
            "p-value": thresholds.p_value,
            "psi": thresholds.psi,
            "js-distance": thresholds.js_distance,
            "oov-rate": thresholds.oov_rate,
        },
        "drift_detected": any(f.drifted for f in features),
        "drifted_features": [f.name for f in features if f.drifted],
        "columns_only_in_reference": [c for c in ref.header if c not in cur.columns],
        "columns_only_in_current": [c for c in cur.header if c not in ref.columns],
        "features": [
            {
                "name": f.name,
                "type": f.type,
                "inferred": f.inferred,
                "drifted": f.drifted,
                "reasons": f.reasons,
                "tests": f.tests,
                "stats": f.stats,
                "rows": f.rows,
                "null_share": f.null_share,
                "note": f.note,
            }
            for f in features
        ],
    }
    markdown = render_markdown(report)
    out = Path(output_dir)
    with paths.output_dir(out, STAGE, "output-dir", claimed) as staging:  # replaced atomically, never a foreign folder
        (staging / "drift.json").write_text(
            json.dumps(report, indent=2, default=_json_default) + "\n", encoding="utf-8"
        )
        (staging / "drift.md").write_text(markdown, encoding="utf-8")
    json_path, md_path = out / "drift.json", out / "drift.md"
    return DriftResult(
        drift_detected=bool(report["drift_detected"]),
        features=features,
        report=json_path,
        table=md_path,
        markdown=markdown,
    )


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _fetch_drift(url: str) -> dict:
    """The service's /monitoring/drift, retried with backoff on connection errors and 5xx."""
    import urllib.error
    import urllib.request

    def attempt() -> dict:
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise InputError(
                    "service-url",
                    f"{url} answered 404: the service has no drift profile",
                    "render its image with reference-data (render-dockerfile), or give reference and current CSVs",
                ) from None
            if exc.code >= 500 or exc.code == 429:
                raise TransientError(f"{url} answered HTTP {exc.code}") from None
            raise InputError(
                "service-url", f"{url} answered HTTP {exc.code}", "give the serving image's base URL"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransientError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        except ValueError:
            raise InputError(
                "service-url", f"{url} did not answer JSON", "give the base URL of a mlops-actions serving image"
            ) from None

    return retry_or_raise(attempt, what=f"GET {url}", fix="check that the service is up and reachable from the runner")


def service_drift(
    service_url: str,
    *,
    psi: float = 0.2,
    min_rows: int = 500,
    output_dir: str | os.PathLike[str] = ".mlops/drift",
) -> DriftResult:
    """Read a serving image's /monitoring/drift and decide: a feature (or the predicted classes)
    drifts at PSI >= ``psi``, once the window holds ``min_rows`` rows."""
    base = service_url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", base):
        raise InputError("service-url", f"'{service_url}' is not an http(s) URL", "give e.g. https://model.example.com")
    if not (0 < psi < 100) or min_rows < 1:
        raise InputError("psi", f"psi {psi} / min-rows {min_rows} out of range", "psi above 0, min-rows at least 1")
    paths.claim_output(output_dir, STAGE, "output-dir", {})
    served = _fetch_drift(f"{base}/monitoring/drift")
    rows = int((served.get("window") or {}).get("rows") or 0)
    enough = rows >= min_rows
    scored = list(served.get("features") or [])
    if served.get("predictions"):
        scored.append({"name": "prediction", "kind": "predicted class", "psi": served["predictions"].get("psi")})
    features = []
    for f in scored:
        value = f.get("psi")
        flagged = enough and value is not None and value >= psi
        test = _test("PSI", value if value is not None else float("nan"), float("nan"), f">= {psi}", flagged)
        features.append(
            Feature(
                name=str(f.get("name")),
                type=str(f.get("kind", "")),
                drifted=flagged,
                stats={"psi": value},
                tests=[test],
                reasons=[f"PSI {value} >= {psi}"] if flagged else [],
                rows={"current": int(f.get("rows") or rows)},
                note="" if enough else f"{rows} rows in the window, fewer than min-rows {min_rows}: not decided",
            )
        )
    drifted = [f.name for f in features if f.drifted]
    report = {
        "service": base,
        "window": served.get("window"),
        "reference": served.get("reference"),
        "psi": psi,
        "min_rows": min_rows,
        "decided": enough,
        "drift_detected": bool(drifted),
        "drifted_features": drifted,
        "served": served,
    }
    head = (
        f"⚠️ **drift detected** at {base} in {', '.join(drifted)}"
        if drifted
        else f"no drift at {base}"
        if enough
        else f"not decided: {rows} rows in the window of {base}, fewer than {min_rows}"
    )
    markdown = (
        f"### 📉 drift (serving traffic)\n{head} ({rows} rows in the window, PSI threshold {psi})\n\n"
        + gha.md_table(
            ["feature", "kind", "PSI", "drifted"],
            [[f.name, f.type, _fmt(f.stats["psi"]), "⚠️ yes" if f.drifted else "no"] for f in features],
        )
    )
    out = Path(output_dir)
    with paths.output_dir(out, STAGE, "output-dir", {}) as staging:
        (staging / "drift.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (staging / "drift.md").write_text(markdown, encoding="utf-8")
    return DriftResult(bool(drifted), features, out / "drift.json", out / "drift.md", markdown)
