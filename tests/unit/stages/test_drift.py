"""drift: each statistic on data generated at fixed seeds, drift and no drift each way (numeric,
categorical, text), the significance guards, type inference and overrides, and bad input."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from mlops_actions.stages import drift as d
from mlops_actions.core.errors import InputError

ROOT = Path(__file__).resolve().parents[3]


from conftest import sentiment_generator  # noqa: E402

generate = sentiment_generator()

TH = d.Thresholds()


def strings(values) -> list[str]:
    return [repr(float(x)) if isinstance(x, (float, np.floating)) else str(x) for x in values]


def write_csv(path: Path, columns: dict[str, list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values()))
    return path


def read_column(path: Path, name: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [row[name] for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    root = tmp_path_factory.mktemp("reviews")
    return generate(root / "a.csv", rows=1000, seed=1), generate(root / "b.csv", rows=1000, seed=2)


# ---------------------------------------------------------------------------------------- numeric


def test_numeric_same_normal_no_drift_shifted_normal_drift():
    rng = np.random.default_rng(42)
    ref = strings(rng.normal(0, 1, 2000))
    same = strings(rng.normal(0, 1, 2000))
    shifted = strings(rng.normal(0.3, 1, 2000))
    wider = strings(rng.normal(0, 1.5, 2000))
    quiet = d.compare_feature("x", "numeric", ref, same, TH)
    assert not quiet.drifted and quiet.stats["ks_p_value"] > 0.05 and quiet.stats["ks_statistic"] < 0.05
    moved = d.compare_feature("x", "numeric", ref, shifted, TH)
    assert moved.drifted and moved.stats["ks_p_value"] < 1e-10 and moved.reasons[0].startswith("KS D ")
    assert abs(moved.stats["mean_current"] - moved.stats["mean_reference"] - 0.3) < 0.1
    assert d.compare_feature("x", "numeric", ref, wider, TH).drifted  # same mean, different spread: KS sees it


def test_ks_matches_scipy_definition():
    a, b = np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6])
    stat, p = d.ks(a, b)
    assert stat == pytest.approx(0.5) and 0 < p <= 1


def test_numeric_column_without_numbers_in_current_drifts():
    feature = d.compare_feature("x", "numeric", ["1", "2", "3"], ["a", "", "b"], TH)
    assert feature.drifted and feature.reasons == ["no numbers in the current data"]
    empty = d.compare_feature("x", "numeric", ["1", "2"], ["", "NA"], TH)
    assert empty.drifted and empty.reasons == ["no values in the current data"] and empty.null_share["current"] == 1.0


# ------------------------------------------------------------------------------------ categorical


def draw(rng: random.Random, weights: list[int], n: int) -> list[str]:
    return [str(x) for x in rng.choices([1, 2, 3, 4, 5], weights=weights, k=n)]


def test_categorical_same_mix_no_drift_changed_mix_drift():
    rng = random.Random(5)
    ref = draw(rng, [2, 1, 1, 2, 4], 1500)
    same = draw(rng, [2, 1, 1, 2, 4], 1500)
    changed = draw(rng, [4, 2, 1, 2, 1], 1500)
    quiet = d.compare_feature("rating", "categorical", ref, same, TH)
    assert not quiet.drifted and quiet.stats["psi"] < 0.02 and quiet.stats["chi2_p_value"] > 0.05
    moved = d.compare_feature("rating", "categorical", ref, changed, TH)
    assert moved.drifted and moved.stats["psi"] > 0.3 and moved.stats["chi2_p_value"] < 1e-10
    assert moved.stats["shares_reference"]["5"] == pytest.approx(0.4, abs=0.04)


def test_psi_formula_and_floor():
    ref, cur = np.array([60.0, 40.0]), np.array([30.0, 70.0])
    expected = (0.3 - 0.6) * math.log(0.3 / 0.6) + (0.7 - 0.4) * math.log(0.7 / 0.4)
    assert d.psi(ref, cur) == pytest.approx(expected)
    assert d.psi(ref, ref) == 0
    assert math.isfinite(d.psi(np.array([50.0, 50.0, 0.0]), np.array([40.0, 40.0, 20.0])))  # a new category


def test_chi_square_on_identical_and_degenerate_tables():
    assert d.chi_square(np.array([10.0, 20.0]), np.array([10.0, 20.0]))[1] == pytest.approx(1.0)
    assert d.chi_square(np.array([10.0]), np.array([30.0])) == (0.0, 1.0)  # one category: nothing to compare


def test_categorical_needs_both_a_large_psi_and_a_significant_test():
    # 10 rows each: PSI 0.38 looks large, but chi-square cannot tell it from chance
    small = d.compare_feature("c", "categorical", list("aaaaaabbbb"), list("aaabbbbbbb"), TH)
    assert small.stats["psi"] > 0.2 and small.stats["chi2_p_value"] > 0.05 and not small.drifted
    # 100,000 rows each: 50/50 vs 51/49 is significant but immaterial
    big = d.compare_feature("c", "categorical", ["a"] * 50000 + ["b"] * 50000, ["a"] * 51000 + ["b"] * 49000, TH)
    assert big.stats["chi2_p_value"] < 1e-5 and big.stats["psi"] < 0.01 and not big.drifted


def test_new_and_missing_categories_are_listed():
    f = d.compare_feature("c", "categorical", ["x"] * 50 + ["y"] * 50, ["x"] * 50 + ["z"] * 50, TH)
    assert f.drifted and f.stats["new_categories"] == ["z"] and f.stats["missing_categories"] == ["y"]


# ------------------------------------------------------------------------------------------- text


def test_text_two_seeds_of_the_generator_no_drift(reviews):
    a, b = reviews
    f = d.compare_feature("review_text", "text", read_column(a, "review_text"), read_column(b, "review_text"), TH)
    assert not f.drifted, f.tests
    assert f.stats["oov_rate"] == 0 and f.stats["js_distance"] < 0.1 and f.stats["length_ks_p_value"] > 0.05


def test_text_new_vocabulary_drifts(reviews):
    a, b = reviews
    rng = random.Random(9)
    new_words = ["subscription", "paywall", "refund", "premium", "charged", "cancel"]
    ref = read_column(a, "review_text")
    # same lengths, a third of the words swapped for new ones: only the vocabulary moves
    cur = [" ".join(rng.choice(new_words) if rng.random() < 0.33 else w for w in text.split()) for text in read_column(b, "review_text")]
    f = d.compare_feature("review_text", "text", ref, cur, TH)
    assert f.drifted
    assert f.stats["oov_rate"] > 0.25 and f.stats["oov_p_value"] < 0.01
    assert f.stats["js_distance"] > 0.3 and f.stats["js_p_value"] < 0.01
    assert set(f.stats["top_new_tokens"]) == set(new_words)
    assert f.stats["length_ks_p_value"] > 0.05  # lengths unchanged
    assert {t["statistic"] for t in f.tests if t["flagged"]} == {"JS distance (permutation p)", "OOV rate (permutation p)"}


def test_text_longer_reviews_drift_on_length_only(reviews):
    a, b = reviews
    cur = [t + " " + t for t in read_column(b, "review_text")]
    f = d.compare_feature("review_text", "text", read_column(a, "review_text"), cur, TH)
    assert f.drifted and f.stats["oov_rate"] == 0
    assert [t["statistic"] for t in f.tests if t["flagged"]] == ["length KS D"]


def zipf_docs(rng: np.random.Generator, n: int, vocab: int = 20000, length: int = 10) -> list[list[str]]:
    p = 1 / np.arange(1, vocab + 1) ** 1.05
    p /= p.sum()
    return [[f"w{i}" for i in row] for row in rng.choice(vocab, (n, length), p=p)]


def test_vocabulary_noise_on_small_samples_is_not_drift():
    """Realistic text (Zipf, many words seen once): 300 rows per side give large JS distances and OOV
    rates by chance; the permutation p-values stay unremarkable (no bias from which side a rare word
    was seen on first)."""
    rng = np.random.default_rng(3)
    p_values = []
    for seed in range(6):
        stats = d.vocabulary_stats(zipf_docs(rng, 300), zipf_docs(rng, 300), permutations=100, seed=seed)
        assert stats["js_distance"] > 0.2 and stats["oov_rate"] > 0.2  # above the thresholds by chance alone
        assert stats["js_noise"] > 0.2
        p_values.append(stats["js_p_value"])
    assert sorted(p_values)[len(p_values) // 2] > 0.15, p_values


def test_permutation_on_a_subset_when_large(monkeypatch):
    monkeypatch.setattr(d, "PERMUTATION_TOKENS", 2000)
    rng = np.random.default_rng(4)
    stats = d.vocabulary_stats(zipf_docs(rng, 500), zipf_docs(rng, 500, vocab=500), permutations=50)
    assert stats["permutation_rows"] < 400 and stats["js_p_value"] < 0.05 and stats["oov_rate"] < 0.05


def test_js_distance_bounds():
    assert d.js_distance(np.array([5.0, 5.0]), np.array([5.0, 5.0])) == 0
    assert d.js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert d.oov_rate(np.array([3, 0, 1]), np.array([1, 2, 1])) == pytest.approx(0.5)


# ------------------------------------------------------------------------------ types and columns


@pytest.mark.parametrize("values,kind", [
    (strings(np.random.default_rng(0).normal(size=50)), "numeric"),
    ([str(i) for i in range(100)], "numeric"),
    (["1", "2", "3", "4", "5"] * 10, "categorical"),
    (["red", "green", "blue"] * 20, "categorical"),
    (["the app is great and fast", "crashes every time i open it", "love the new design a lot"] + [f"review number {i} is here" for i in range(60)], "text"),
    ([f"user-{i:05d}" for i in range(200)], "ignore"),
    ([], "ignore"),
])
def test_infer_type(values, kind):
    assert d.infer_type(values)[0] == kind


def test_parse_columns_inline_and_yaml(tmp_path):
    assert d.parse_columns("review_text=text, rating:categorical\n# comment\nid = ignore") == {"review_text": "text", "rating": "categorical", "id": "ignore"}
    path = tmp_path / "cols.yaml"
    path.write_text("columns:\n  review_text: text\n  rating: numeric\n")
    assert d.parse_columns(str(path)) == {"review_text": "text", "rating": "numeric"}
    assert d.parse_columns("") == {}


@pytest.mark.parametrize("value,words", [
    ("rating=int", "has type 'int'"),
    ("rating", "is not name=type"),
    ("rating=text, rating=numeric", "given twice"),
    ("missing.yaml", "'missing.yaml' not found"),
])
def test_parse_columns_errors(value, words):
    with pytest.raises(InputError) as info:
        d.parse_columns(value)
    assert info.value.input_name == "columns" and words in info.value.line()


def test_parse_columns_yaml_shape(tmp_path):
    path = tmp_path / "cols.yml"
    path.write_text("review_text: text\n")
    with pytest.raises(InputError, match="exactly one key 'columns'"):
        d.parse_columns(str(path))


# ---------------------------------------------------------------------------------- whole datasets


def test_detect_drift_no_drift_and_report(tmp_path, reviews):
    a, b = reviews
    result = d.detect_drift(a, b, output_dir=tmp_path)
    assert not result.drift_detected and result.drifted == []
    assert result.outputs() == {"drift-detected": "false", "report": str(tmp_path / "drift.json"), "table": str(tmp_path / "drift.md"), "drifted-features": ""}
    report = json.loads(result.report.read_text())
    assert {f["name"]: f["type"] for f in report["features"]} == {"review_text": "text", "rating": "categorical"}
    assert report["thresholds"] == {"p-value": 0.05, "psi": 0.2, "js-distance": 0.1, "oov-rate": 0.1}
    md = result.table.read_text()
    assert "✅ **no drift** in 2 features" in md and "| `rating` | categorical | PSI (chi-square p) |" in md


def test_detect_drift_with_overrides_and_extra_columns(tmp_path, reviews):
    a, b = reviews
    rng = np.random.default_rng(8)
    ref = write_csv(tmp_path / "ref.csv", {"review_text": read_column(a, "review_text"), "rating": read_column(a, "rating"),
                                          "latency": strings(rng.normal(100, 10, 1000)), "only_ref": ["x"] * 1000})
    cur = write_csv(tmp_path / "cur.csv", {"review_text": read_column(b, "review_text"), "rating": read_column(b, "rating"),
                                          "latency": strings(rng.normal(110, 10, 1000)), "only_cur": ["y"] * 1000})
    result = d.detect_drift(ref, cur, columns="rating=numeric, review_text=ignore", output_dir=tmp_path / "out")
    assert result.drifted == ["latency"]
    report = json.loads(result.report.read_text())
    types = {f["name"]: (f["type"], f["inferred"]) for f in report["features"]}
    assert types == {"review_text": ("ignore", False), "rating": ("numeric", False), "latency": ("numeric", True)}
    assert report["columns_only_in_reference"] == ["only_ref"] and report["columns_only_in_current"] == ["only_cur"]
    md = result.table.read_text()
    assert "⚠️ **drift detected** in 1 of 2 features: `latency`" in md and "only in reference: only_ref" in md


def test_detect_drift_bad_input(tmp_path, reviews):
    a, _ = reviews
    other = write_csv(tmp_path / "other.csv", {"x": ["1"], "y": ["2"]})
    header_only = tmp_path / "header.csv"
    header_only.write_text("review_text,rating\n")
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    cases = [
        (dict(reference=tmp_path / "nope.csv", current=a), "reference", "not found"),
        (dict(reference=a, current=header_only), "current", "has no data rows"),
        (dict(reference=blank, current=a), "reference", "is empty (no header)"),
        (dict(reference=a, current=other), "current", "no column in common"),
        (dict(reference=a, current=a, columns="stars=numeric"), "columns", "'stars' not in both files"),
        (dict(reference=a, current=a, thresholds=d.Thresholds(p_value=1.5)), "p-value", "out of range"),
        (dict(reference=a, current=a, thresholds=d.Thresholds(psi=0)), "psi", "out of range"),
    ]
    for kwargs, name, words in cases:
        with pytest.raises(InputError) as info:
            d.detect_drift(output_dir=tmp_path / "out", **kwargs)
        assert info.value.input_name == name and words in info.value.line(), info.value.line()
    assert not (tmp_path / "out").exists()


def test_stricter_thresholds_change_the_decision(tmp_path):
    rng = np.random.default_rng(12)
    ref = write_csv(tmp_path / "r.csv", {"x": strings(rng.normal(0, 1, 400))})
    cur = write_csv(tmp_path / "c.csv", {"x": strings(rng.normal(0.4, 1, 400))})
    loose = d.detect_drift(ref, cur, output_dir=tmp_path / "a")
    strict = d.detect_drift(ref, cur, thresholds=d.Thresholds(p_value=1e-6), output_dir=tmp_path / "b")
    p = loose.features[0].stats["ks_p_value"]
    assert 1e-6 < p < 0.05, p
    assert loose.drift_detected and not strict.drift_detected
