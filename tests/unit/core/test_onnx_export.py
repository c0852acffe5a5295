"""The ONNX equivalence check of core/onnx_export.py on real sklearn models saved by MLflow: every
conversion is compared on the input example, 500 rows synthesized around it (per column type,
seeded) and the held-out sample when given, and a conversion that is exact on the example rows but
wrong elsewhere is refused."""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")

from conftest import save_small_keras_model
from mlops_actions.core import modelinfo, onnx_export
from mlops_actions.core.onnx_export import NotConvertible, convert, synthesize_table

POS, NEG = ["great", "love", "fast", "nice"], ["awful", "slow", "crashes", "broken"]
HELD = [
    "love it, a great and fast phone",
    "crashes, awful and slow",
    "great great phone, really great",
    "awful battery",
]


def _save(model, path: Path, example: pd.DataFrame, **kwargs) -> modelinfo.ModelInfo:
    import mlflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(model, str(path), input_example=example, pip_requirements=["scikit-learn"], **kwargs)
    return modelinfo.read(path)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A sentiment-like TF-IDF (bigrams, sublinear tf) + LogisticRegression pipeline on one text column."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(0)
    rows = [(" ".join(rng.choice(POS if y else NEG, 4)) + " phone", y) for y in rng.integers(0, 2, 200)]
    df = pd.DataFrame(rows, columns=["review_text", "label"])
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = Pipeline(
        [
            ("features", ColumnTransformer([("tfidf", tfidf, "review_text")])),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    ).fit(df[["review_text"]], df["label"])
    root = tmp_path_factory.mktemp("text")
    held = root / "heldout.csv"
    pd.DataFrame({"review_text": HELD * 5}).to_csv(held, index=False)
    return _save(model, root / "model", df[["review_text"]].head(2)), held


@pytest.fixture(scope="module")
def numeric_model(tmp_path_factory):
    """StandardScaler + LogisticRegression on a double and an integer column."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = pd.DataFrame({"income": rng.normal(50_000, 15_000, 300), "age": rng.integers(18, 90, 300)})
    y = (x["income"] / 1000 + x["age"] + rng.normal(0, 10, 300) > 95).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    return _save(model, tmp_path_factory.mktemp("numeric") / "model", x.head(2))


def test_a_text_model_is_checked_on_its_example_and_500_rows_synthesized_around_it(text_model, tmp_path):
    info, _ = text_model
    conv = convert(info, tmp_path / "model.onnx")
    assert conv.rows_by_source == {"example": 2, "synthesized": 500} and conv.checked_rows == 502
    assert conv.labels_compared and conv.label_mismatches == 0 and conv.max_abs_diff <= onnx_export.TOLERANCE
    assert conv.classes == [0, 1] and conv.check_source == "2 example, 500 synthesized around it"
    assert re.fullmatch(
        r"ONNX equivalent to the native model on 502 rows \(2 example, 500 synthesized around it\): labels equal, "
        r"max \|Δ\| \d\.\de-\d\d ≤ 1e-04 \((example|synthesized) row \d+, probability of class [01]\)",
        conv.reason(),
    ), conv.reason()


def test_check_data_rows_are_compared_too_up_to_the_cap(text_model, tmp_path, monkeypatch):
    info, held = text_model
    conv = convert(info, tmp_path / "model.onnx", held)
    assert conv.rows_by_source == {"example": 2, "synthesized": 500, "check data": 20} and conv.checked_rows == 522
    assert conv.check_source == "2 example, 500 synthesized around it, 20 held-out from heldout.csv"
    assert "on 522 rows (2 example, 500 synthesized around it, 20 held-out from heldout.csv)" in conv.reason()
    monkeypatch.setattr(onnx_export, "MAX_CHECK_ROWS", 7)
    assert convert(info, tmp_path / "model.onnx", held).rows_by_source["check data"] == 7


def test_a_numeric_model_is_checked_on_synthesized_rows_and_the_raw_example_is_enough(numeric_model, tmp_path):
    conv = convert(numeric_model, tmp_path / "model.onnx")
    assert conv.rows_by_source == {"example": 2, "synthesized": 500}
    assert conv.labels_compared and conv.max_abs_diff <= onnx_export.TOLERANCE
    assert conv.server_config()["inputs"] == [
        {"name": "income", "column": "income", "dtype": "float64"},
        {"name": "age", "column": "age", "dtype": "int64"},
    ]
    # without the serving example MLflow writes, the raw one (input_example.json, pandas split) serves
    (numeric_model.path / "serving_input_example.json").rename(tmp_path / "moved.json")
    try:
        again = convert(numeric_model, tmp_path / "again.onnx")
    finally:
        (tmp_path / "moved.json").rename(numeric_model.path / "serving_input_example.json")
    assert again.rows_by_source == conv.rows_by_source and again.max_abs_diff == conv.max_abs_diff


def test_a_tree_on_float32_columns_converts(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(2)
    x = pd.DataFrame({"width": rng.uniform(0, 10, 200), "height": rng.uniform(0, 5, 200)}).astype("float32")
    y = np.where(x["width"] * x["height"] > 12, "large", "small")
    tree = make_pipeline(MinMaxScaler(), DecisionTreeClassifier(max_depth=5, random_state=0)).fit(x, y)
    info = _save(tree, tmp_path / "m", x.head(2), serialization_format="cloudpickle")
    conv = convert(info, tmp_path / "model.onnx")
    assert conv.rows_by_source == {"example": 2, "synthesized": 500} and conv.classes == ["large", "small"]
    assert conv.labels_compared and conv.max_abs_diff <= onnx_export.TOLERANCE
    assert [i["dtype"] for i in conv.inputs] == ["float32", "float32"]


def test_a_categorical_column_takes_the_encoders_categories_and_rows_it_rejects_are_replaced(tmp_path):
    """OneHotEncoder (handle_unknown='error') raises on a city it never saw: such synthesized rows
    are no request the native model answers, so they are left out and more are synthesized."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(3)
    x = pd.DataFrame({"city": rng.choice(["paris", "lyon", "nice"], 200), "rooms": rng.integers(1, 6, 200)})
    y = ((x["city"] == "paris") ^ (x["rooms"] > 3)).astype(int)
    features = ColumnTransformer([("city", OneHotEncoder(), ["city"]), ("rooms", StandardScaler(), ["rooms"])])
    model = Pipeline([("features", features), ("clf", LogisticRegression())]).fit(x, y)
    conv = convert(_save(model, tmp_path / "m", x.head(2)), tmp_path / "model.onnx")
    assert conv.rows_by_source == {"example": 2, "synthesized": 500} and conv.labels_compared
    assert re.fullmatch(
        r"2 example, 500 synthesized around it; \d+ more the native model rejects left out", conv.check_source
    )


def test_a_conversion_wrong_only_away_from_the_example_is_refused(tmp_path):
    """A forest on a large-magnitude column (values near 1e8, e.g. amounts in cents): sklearn rounds
    the input to float32 (8 apart at 1e8) before comparing it with its float64 thresholds, the ONNX
    trees compare the double input with float32 thresholds; the two disagree on part of every gap
    between thresholds. The two example rows are not in such a gap: the old check (the example
    only) accepted the conversion; the synthesized rows around them find the disagreement."""
    import onnxruntime as ort
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"amount": 1e8 + rng.uniform(0, 1000, 400)})
    y = ((x["amount"] * 7.3) % 50 > 25).astype(int)
    model = RandomForestClassifier(n_estimators=7, random_state=0).fit(x, y)
    info = _save(model, tmp_path / "m", x.head(2), serialization_format="cloudpickle")
    with pytest.raises(NotConvertible) as caught:
        convert(info, tmp_path / "model.onnx")
    message, details = str(caught.value), caught.value.details
    assert details is not None and details["rows_by_source"] == {"example": 2, "synthesized": 500}
    assert details["label_mismatches"] > 0 and f"on {details['label_mismatches']} of 502 check rows" in message
    assert details["row"].startswith("synthesized row ") and f"first at {details['row']} " in message
    assert re.match(
        r"the ONNX model predicts other labels than the native one on \d+ of 502 check rows "
        r"\(0 of 2 example, \d+ of 500 synthesized\); first at synthesized row \d+ \(amount=1000\d+\.\d+\): "
        r"native [01], ONNX [01]$",
        message,
    ), message
    # the converted file (left for inspection; render-dockerfile deletes it) agrees on the example
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    example = x.head(2)
    labels, proba = sess.run(None, {"amount": example.to_numpy().reshape(-1, 1)})
    assert labels.tolist() == model.predict(example).tolist()
    assert np.abs(proba - model.predict_proba(example)).max() <= onnx_export.TOLERANCE
    # ... and disagrees on the row the message names
    row = float(re.search(r"amount=([\d.]+)", message).group(1))
    assert (
        sess.run(None, {"amount": np.array([[row]])})[0].tolist()
        != model.predict(pd.DataFrame({"amount": [row]})).tolist()
    )


def test_the_check_is_the_same_in_every_run_and_process(text_model, tmp_path):
    """Same sample, same answer, same bytes: twice here, and once in a process with another string
    hash seed (the vocabulary the synthesized texts draw from comes out of a set)."""
    import json
    import os
    import subprocess
    import sys

    from mlops_actions.core.paths import resource

    info, held = text_model
    first, second = (convert(info, tmp_path / f"{k}.onnx", held) for k in "ab")
    here = [first.rows_by_source, first.max_abs_diff, first.max_diff_at]
    assert here == [second.rows_by_source, second.max_abs_diff, second.max_diff_at]
    script = (
        "import json, sys; from pathlib import Path; from mlops_actions.core import modelinfo, onnx_export; "
        "c = onnx_export.convert(modelinfo.read(Path(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])); "
        "print(json.dumps([c.rows_by_source, c.max_abs_diff, c.max_diff_at]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "7", "PYTHONPATH": str(resource("scripts"))}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(info.path), str(tmp_path / "c.onnx"), str(held)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == here
    digest = {hashlib.sha256((tmp_path / f"{k}.onnx").read_bytes()).hexdigest() for k in "abc"}
    assert len(digest) == 1


def test_the_synthesized_sample_spreads_each_column_by_its_type():
    example = pd.DataFrame(
        {
            "text": ["great love fast phone", "awful slow phone"],
            "price": [19.99, 5.25],
            "count": [3, 7],
            "ratio": np.array([0.5, 0.25], dtype="float32"),
            "delta": [-2.0, 4.0],
            "flag": [True, True],
        }
    )
    types = {"text": "string", "price": "double", "count": "long", "ratio": "float", "delta": "double"}
    types["flag"] = "boolean"
    sample = synthesize_table(example, types, words=["nice"])
    assert len(sample) == 500 and sample.equals(synthesize_table(example, types, words=["nice"]))
    assert not sample.equals(synthesize_table(example, types, seed=1, words=["nice"]))
    assert [str(sample[c].dtype) for c in ("price", "count", "ratio", "flag")] == [
        "float64",
        "int64",
        "float32",
        "bool",
    ]
    # numbers: the example's values, 0, beyond the example's range, non-negative columns stay so
    price, count, delta = sample["price"], sample["count"], sample["delta"]
    assert {19.99, 5.25, 0.0} <= set(price) and price.min() >= 0 and price.max() > 19.99 + 5
    assert price.between(5.25, 19.99).sum() > 100 and price.nunique() > 400
    assert {3, 7, 0} <= set(count) and count.min() >= 0 and count.max() > 7 and count.nunique() > 5
    assert delta.min() < -2 - 3 and delta.max() > 4 + 3 and (delta < 0).sum() > 50
    # booleans both ways
    assert set(sample["flag"]) == {True, False}
    # texts: the examples as they are, empty, recombined words, unseen words, other cases, the model's words
    texts = sample["text"].tolist()
    assert {"great love fast phone", "awful slow phone", ""} <= set(texts) and len(set(texts)) > 300
    words = {w for t in texts for w in t.split()}
    assert {"great", "awful", "nice", "naïve", "x"} <= words and any(t.isupper() for t in texts if t.strip())
    assert any(
        sorted(t.split()) == sorted(["great", "love", "fast", "phone"]) and t != "great love fast phone" for t in texts
    )


def test_a_keras_model_is_checked_on_500_noisy_copies_of_its_example_and_the_check_data(tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    save_small_keras_model(tmp_path / "m", rng, pip_requirements=["tensorflow"])
    np.save(tmp_path / "held.npy", rng.normal(size=(30, 4)).astype("float32"))
    conv = convert(modelinfo.read(tmp_path / "m"), tmp_path / "model.onnx", tmp_path / "held.npy")
    assert conv.kind == "tensor" and conv.rows_by_source == {"example": 2, "synthesized": 500, "check data": 30}
    assert conv.labels_compared and conv.max_abs_diff <= onnx_export.TOLERANCE
    assert (
        "on 532 rows (2 example, 500 seeded noisy copies of it, 30 held-out from held.npy): labels equal"
        in conv.reason()
    )
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), dtype="float32"))
    with pytest.raises(NotConvertible, match=r"check data '.*wrong.npy' has shape \(3, 5\), the model takes \(n, 4\)"):
        convert(modelinfo.read(tmp_path / "m"), tmp_path / "model.onnx", tmp_path / "wrong.npy")
