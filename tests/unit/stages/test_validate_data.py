"""validate-data: the spec is read strictly (InputError naming file and key), every check passes on
good data and fails on the data it is meant to catch, CSV and image folders alike."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from mlops_actions.stages import validate_data as v
from mlops_actions.core.errors import InputError

ROOT = Path(__file__).resolve().parents[3]
SPECS = {"sentiment.yaml": ROOT / "model_project" / "sentiment" / "data-spec.yaml",
         "rice.yaml": ROOT / "model_project" / "rice" / "data-spec.yaml"}


from conftest import sentiment_generator  # noqa: E402

generate = sentiment_generator()

SENTIMENT_SPEC = {
    "format": "csv",
    "min_rows": 100,
    "columns": {
        "review_text": {"nullable": False, "min_length": 3},
        "rating": {"nullable": False, "type": "integer", "min": 1, "max": 5, "allowed": [1, 2, 3, 4, 5]},
    },
    "label": {"column": "rating", "threshold": 4, "share": {"positive": [0.3, 0.9]}},
    "duplicates": {"columns": ["review_text", "rating"], "max_share": 0.25},
}


def write_spec(tmp_path: Path, spec: dict | str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[list[object]], header: list[str] | None = None) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header or ["review_text", "rating"])
        writer.writerows(rows)
    return path


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))[1:]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("reviews") / "reviews.csv", rows=600, seed=11)


def run(tmp_path: Path, data: Path, spec: dict | str) -> tuple[v.ValidationResult, dict[str, v.Check]]:
    result = v.validate(data, write_spec(tmp_path, spec), tmp_path / "out")
    return result, {f"{c.check}:{c.target}": c for c in result.checks}


def failed(result: v.ValidationResult) -> set[str]:
    return {f"{c.check}:{c.target}" for c in result.failed}


# ------------------------------------------------------------------------------------------ spec


@pytest.mark.parametrize("name", ["sentiment.yaml", "rice.yaml"])
def test_example_specs_load(name):
    spec = v.load_spec(SPECS[name])
    assert spec["format"] == {"sentiment.yaml": "csv", "rice.yaml": "images"}[name]


def test_spec_is_normalised():
    spec = v.load_spec(SPECS["sentiment.yaml"])
    assert spec["columns"]["rating"]["allowed"] == ["1", "2", "3", "4", "5"]
    assert spec["label"]["share"] == {"positive": (0.3, 0.9)}
    rice = v.load_spec(SPECS["rice.yaml"])
    assert rice["min_per_class"] == {"train": 100, "val": 20, "test": 20} and rice["max_corrupt"] == 0


SPEC_ERRORS = [
    # (id, spec, words the message must hold)
    ("unknown-top-key", {"format": "csv", "min_row": 5}, ["key 'min_row'", "is unknown"]),
    ("unknown-column-key", {"columns": {"rating": {"mn": 1}}}, ["key 'columns.rating.mn'", "is unknown"]),
    ("min-not-number", {"columns": {"rating": {"min": "one"}}}, ["key 'columns.rating.min'", "must be a number"]),
    ("nullable-not-bool", {"columns": {"rating": {"nullable": "no"}}}, ["key 'columns.rating.nullable'", "true or false"]),
    ("bad-type", {"columns": {"rating": {"type": "int"}}}, ["key 'columns.rating.type'", "number, integer, string"]),
    ("min-above-max", {"columns": {"rating": {"min": 5, "max": 1}}}, ["key 'columns.rating'", "above max"]),
    ("min-rows-zero", {"min_rows": 0}, ["key 'min_rows'", "must be >= 1"]),
    ("min-rows-fraction", {"min_rows": 1.5}, ["key 'min_rows'", "whole number"]),
    ("columns-not-mapping", {"columns": "rating"}, ["key 'columns'", "mapping"]),
    ("label-without-column", {"label": {"threshold": 4}}, ["key 'label.column'", "is missing"]),
    ("share-out-of-range", {"label": {"column": "rating", "share": {"x": [0.2, 1.5]}}}, ["key 'label.share.x[1]'", "between 0 and 1"]),
    ("share-one-item", {"label": {"column": "rating", "share": {"x": [0.2]}}}, ["key 'label.share.x'", "[min, max]"]),
    ("share-class-not-of-threshold", {"label": {"column": "rating", "threshold": 4, "share": {"good": [0.1, 0.9]}}},
     ["key 'label.share.good'", "positive or negative"]),
    ("duplicates-without-max", {"duplicates": {"columns": ["a"]}}, ["key 'duplicates.max_share'", "is missing"]),
    ("allowed-not-list", {"columns": {"rating": {"allowed": 5}}}, ["key 'columns.rating.allowed'", "non-empty list"]),
    ("unknown-format", {"format": "parquet"}, ["key 'format'", "'format: csv' or 'format: images'"]),
    ("image-key-in-csv-spec", {"format": "csv", "classes": ["a"]}, ["key 'classes'", "is unknown"]),
    ("per-class-unknown-split", {"format": "images", "min_per_class": {"training": 5}}, ["key 'min_per_class.training'", "not one of the splits"]),
    ("per-class-zero", {"format": "images", "min_per_class": 0}, ["key 'min_per_class'", "must be >= 1"]),
    ("not-a-mapping", "- a\n- b\n", ["the top level", "must be a mapping"]),
    ("invalid-yaml", "columns: {rating: [1, 2\n", ["not valid YAML"]),
]


@pytest.mark.parametrize("case", SPEC_ERRORS, ids=[c[0] for c in SPEC_ERRORS])
def test_spec_errors_name_file_and_key(case, tmp_path):
    _, spec, words = case
    path = write_spec(tmp_path, spec, "my-spec.yaml")
    with pytest.raises(InputError) as info:
        v.load_spec(path)
    message = info.value.line()
    assert info.value.input_name == "spec" and info.value.exit_code == 2
    assert str(path) in message and "; fix: " in message and "\n" not in message
    for word in words:
        assert word in message, message


def test_missing_spec_and_data_are_input_errors(tmp_path, reviews):
    with pytest.raises(InputError, match="input 'spec': 'nope.yaml' not found"):
        v.validate(reviews, "nope.yaml", tmp_path / "out")
    with pytest.raises(InputError, match="input 'data': 'nope.csv' not found"):
        v.validate("nope.csv", SPECS["sentiment.yaml"], tmp_path / "out")
    with pytest.raises(InputError, match="input 'data': is empty"):
        v.validate("", SPECS["sentiment.yaml"], tmp_path / "out")
    with pytest.raises(InputError, match="directory but the spec says format: csv"):
        v.validate(tmp_path, SPECS["sentiment.yaml"], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written for bad input


# ---------------------------------------------------------------------------------------- tables


def test_generated_reviews_are_valid_and_reports_written(tmp_path, reviews):
    result, checks = run(tmp_path, reviews, SENTIMENT_SPEC)
    assert result.valid, [c for c in result.failed]
    assert result.outputs() == {"data-valid": "true", "report": str(tmp_path / "out" / "validate-data.json"),
                                "report-md": str(tmp_path / "out" / "validate-data.md"), "failed-checks": "0", "failures": ""}
    report = json.loads(result.report.read_text())
    assert report["valid"] and report["rows"] == 600 and report["columns"] == ["review_text", "rating"]
    assert set(report["classes"]) == {"positive", "negative"} and sum(report["classes"].values()) == 600
    share = checks["class-share:rating >= 4: positive"]
    assert share.passed and share.expected == "30% to 90%"
    assert "✅ **data valid**" in result.report_md.read_text()


def test_example_sentiment_spec_accepts_the_project_data(tmp_path):
    data = generate(tmp_path / "reviews.csv")  # what train.py generates when data/reviews.csv is missing
    result = v.validate(data, SPECS["sentiment.yaml"], tmp_path / "out")
    assert result.valid, result.failed


def test_too_few_rows_and_empty_file(tmp_path, reviews):
    small = write_csv(tmp_path / "small.csv", read_rows(reviews)[:50])
    result, checks = run(tmp_path, small, SENTIMENT_SPEC)
    assert failed(result) == {"min-rows:"} and checks["min-rows:"].observed == "50"
    expected = checks["min-rows:"].expected
    assert result.outputs()["failures"] == f"min-rows: 50 (expected {expected})"  # the check by name, its numbers
    empty = write_csv(tmp_path / "empty.csv", [])
    result, _ = run(tmp_path, empty, {"columns": ["review_text"]})
    assert failed(result) == {"min-rows:"}  # the header is there, the rows are not
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("")
    result, _ = run(tmp_path, nothing, {"columns": ["review_text"]})
    assert failed(result) == {"min-rows:", "required-column:review_text"}
    assert result.failures(shown=1).endswith("; and 1 more")


def test_missing_required_column(tmp_path, reviews):
    data = write_csv(tmp_path / "d.csv", [[r[0]] for r in read_rows(reviews)], header=["review_text"])
    result, checks = run(tmp_path, data, SENTIMENT_SPEC)
    assert "required-column:rating" in failed(result) and "label-column:rating" in failed(result)
    assert checks["required-column:rating"].examples == ["header: review_text"]
    optional = {"columns": {"rating": {"required": False, "min": 1}}}
    assert run(tmp_path, data, optional)[0].valid


def test_nulls(tmp_path, reviews):
    rows = read_rows(reviews)
    rows[3][0], rows[9][0], rows[20][1] = "", "NA", " "
    result, checks = run(tmp_path, write_csv(tmp_path / "d.csv", rows), SENTIMENT_SPEC)
    assert {"no-nulls:review_text", "no-nulls:rating"} <= failed(result)
    assert checks["no-nulls:review_text"].observed == "2/600 (0.3%) null"
    assert checks["no-nulls:review_text"].examples == ["row 4", "row 10"]
    relaxed = json.loads(json.dumps(SENTIMENT_SPEC))
    relaxed["columns"]["review_text"]["nullable"] = True
    relaxed["columns"]["rating"]["nullable"] = True
    assert not {"no-nulls:review_text", "no-nulls:rating"} & failed(run(tmp_path, write_csv(tmp_path / "d.csv", rows), relaxed)[0])


def test_type_range_allowed_and_length(tmp_path, reviews):
    rows = read_rows(reviews)
    rows[0][1], rows[1][1], rows[2][1], rows[3][0] = "4.5", "7", "five", "ok"
    result, checks = run(tmp_path, write_csv(tmp_path / "d.csv", rows), SENTIMENT_SPEC)
    assert {"type:rating", "range:rating", "allowed-values:rating", "length:review_text"} <= failed(result)
    assert checks["type:rating"].examples == ["row 1: '4.5'", "row 3: 'five'"]
    assert checks["range:rating"].observed == "1 to 7; 2 outside" and checks["range:rating"].examples == ["row 2: '7'", "row 3: 'five'"]
    assert checks["allowed-values:rating"].observed == "3 rows with 4.5, 7, five"
    assert checks["length:review_text"].examples == ["row 4"]


def test_allowed_values_compare_numbers_by_value(tmp_path):
    data = write_csv(tmp_path / "d.csv", [["a", "4.0"], ["b", "4"], ["c", " 5 "]])
    assert run(tmp_path, data, {"columns": {"rating": {"allowed": [4, 5]}}})[0].valid
    assert not run(tmp_path, data, {"columns": {"rating": {"allowed": ["4"]}}})[0].valid


def test_threshold_label_share_both_ways(tmp_path, reviews):
    rows = read_rows(reviews)
    positive = write_csv(tmp_path / "pos.csv", [[t, "5"] for t, _ in rows])
    result, checks = run(tmp_path, positive, SENTIMENT_SPEC)
    assert failed(result) == {"class-share:rating >= 4: positive", "class-present:rating >= 4: negative"}
    assert checks["class-share:rating >= 4: positive"].observed == "600/600 (100.0%)"
    skew = [[t, "1" if i % 10 < 8 else "5"] for i, (t, _) in enumerate(rows)]  # 20% positive
    result, checks = run(tmp_path, write_csv(tmp_path / "neg.csv", skew), SENTIMENT_SPEC)
    assert "class-share:rating >= 4: positive" in failed(result)
    assert checks["class-share:rating >= 4: positive"].observed == "120/600 (20.0%)"
    balanced = [[t, "1" if i % 2 else "5"] for i, (t, _) in enumerate(rows)]
    assert "class-share:rating >= 4: positive" not in failed(run(tmp_path, write_csv(tmp_path / "ok.csv", balanced), SENTIMENT_SPEC)[0])


def test_threshold_label_needs_numbers(tmp_path):
    data = write_csv(tmp_path / "d.csv", [["a", "5"], ["b", "great"], ["c", "1"]])
    result, checks = run(tmp_path, data, {"label": {"column": "rating", "threshold": 4}})
    assert failed(result) == {"label-numeric:rating >= 4"} and checks["label-numeric:rating >= 4"].examples == ["row 2: 'great'"]


def test_plain_label_column(tmp_path):
    rows = [[f"text {i}", "pos" if i % 10 < 7 else "neg"] for i in range(100)]
    data = write_csv(tmp_path / "d.csv", rows, header=["text", "sentiment"])
    spec = {"label": {"column": "sentiment", "classes": ["pos", "neg", "neutral"], "share": {"neg": {"min": 0.2}}, "min_share": 0.05, "max_share": 0.8}}
    result, checks = run(tmp_path, data, spec)
    assert failed(result) == {"class-present:sentiment: neutral", "class-balance:sentiment"}
    assert checks["class-share:sentiment: neg"].passed and checks["class-share:sentiment: neg"].observed == "30/100 (30.0%)"
    assert checks["class-balance:sentiment"].examples == ["neutral: 0/100 (0.0%)"]
    spec["label"]["max_share"] = 0.6  # pos at 70% is now too much
    result, checks = run(tmp_path, data, spec)
    assert "pos: 70/100 (70.0%)" in checks["class-balance:sentiment"].examples
    two = {"label": {"column": "sentiment", "min_share": 0.25, "max_share": 0.75}}
    assert run(tmp_path, data, two)[0].valid


def test_duplicates(tmp_path, reviews):
    rows = read_rows(reviews)[:100]
    dup = rows + rows[:30]
    spec = {"duplicates": {"max_share": 0.1}}
    result, checks = run(tmp_path, write_csv(tmp_path / "d.csv", dup), spec)
    extra = sum(1 for i, r in enumerate(dup) if r in dup[:i])
    assert failed(result) == {"duplicates:all columns"} and checks["duplicates:all columns"].observed == f"{extra}/130 ({extra / 130:.1%})"
    unique = [[f"review number {i}", str(1 + i % 5)] for i in range(100)]
    assert run(tmp_path, write_csv(tmp_path / "u.csv", unique), spec)[0].valid
    on_missing = {"duplicates": {"max_share": 0.1, "columns": ["user"]}}
    assert failed(run(tmp_path, write_csv(tmp_path / "u.csv", unique), on_missing)[0]) == {"duplicates:user"}


def test_malformed_rows_always_fail(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("review_text,rating\ngood app,5\nbad,1,extra\n\nfine,4\n", encoding="utf-8")
    result, checks = run(tmp_path, path, {"columns": ["review_text"]})
    assert failed(result) == {"well-formed-rows:"} and checks["well-formed-rows:"].examples == ["row 2"]
    assert json.loads(result.report.read_text())["rows"] == 3  # the blank line is not a row


def test_markdown_report_lists_failures_first_with_examples(tmp_path, reviews):
    rows = read_rows(reviews)
    rows[5][1] = "9"
    result, _ = run(tmp_path, write_csv(tmp_path / "d.csv", rows), SENTIMENT_SPEC)
    md = result.report_md.read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[1].startswith("| ❌ | `range` | rating | 1 to 9; 1 outside | 1 to 5 |")
    assert f"❌ **data invalid**: {len(result.failed)} of {len(result.checks)} checks failed" in md
    assert "row 6: '9'" in md
    report = json.loads(result.report.read_text())
    assert report["valid"] is False and report["failed_checks"] == len(result.failed) == 2  # range and allowed-values


# ---------------------------------------------------------------------------------------- images


def make_images(root: Path, classes=("Arborio", "Basmati"), splits=("train", "val", "test"), per_class=3) -> Path:
    from PIL import Image

    for s_index, split in enumerate(splits):
        for c_index, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", (16, 16), (40 * c_index, 20 * i, 30 * s_index)).save(folder / f"{cls}_{i}.jpg", quality=90)
    return root


IMAGE_SPEC = {"format": "images", "classes": ["Arborio", "Basmati"], "min_per_class": {"train": 3, "val": 2, "test": 2}}


@pytest.mark.parametrize("method", ["pillow", "magic"])
def test_image_folder_valid(tmp_path, method):
    data = make_images(tmp_path / "rice")
    (data / "SYNTHETIC.txt").write_text("not an image, at the root: ignored")
    (data / "train" / "Arborio" / "notes.txt").write_text("not an image extension: ignored")
    checks, info = v.check_images(data, v.load_spec(write_spec(tmp_path, IMAGE_SPEC)), method)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert info["counts"] == {s: {"Arborio": 3, "Basmati": 3} for s in ("train", "val", "test")}
    assert info["images"] == 18 and info["ignored_files"] == 1 and info["method"] == method


def test_image_folder_missing_class_and_too_few(tmp_path):
    data = make_images(tmp_path / "rice")
    for f in (data / "val" / "Basmati").iterdir():
        f.unlink()
    (data / "val" / "Basmati").rmdir()
    (data / "test" / "Arborio" / "Arborio_0.jpg").unlink()
    (data / "test" / "Arborio" / "Arborio_1.jpg").unlink()
    result, checks = run(tmp_path, data, IMAGE_SPEC)
    assert failed(result) == {"images-per-class:val/Basmati", "images-per-class:test/Arborio"}
    assert checks["images-per-class:val/Basmati"].observed == "0 (folder missing)"
    assert checks["images-per-class:test/Arborio"].observed == "1" and checks["images-per-class:test/Arborio"].expected == ">= 2"


def test_image_folder_missing_split_and_unexpected_class(tmp_path):
    data = make_images(tmp_path / "rice", splits=("train", "val"))
    make_images(tmp_path / "rice", classes=("Jasmine",), splits=("train",))
    result, checks = run(tmp_path, data, IMAGE_SPEC)
    assert failed(result) == {"split-present:test", "unexpected-classes:train"}
    assert checks["unexpected-classes:train"].observed == "Jasmine"


def test_classes_default_to_every_class_found(tmp_path):
    data = make_images(tmp_path / "rice")
    make_images(tmp_path / "rice", classes=("Jasmine",), splits=("train",))
    result, _ = run(tmp_path, data, {"format": "images"})
    assert failed(result) == {"images-per-class:val/Jasmine", "images-per-class:test/Jasmine"}


def test_corrupt_images(tmp_path):
    data = make_images(tmp_path / "rice")
    good = (data / "train" / "Arborio" / "Arborio_0.jpg").read_bytes()
    (data / "train" / "Arborio" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (data / "train" / "Basmati" / "empty.jpg").write_bytes(b"")
    (data / "val" / "Basmati" / "text.jpg").write_text("<html>not found</html>")
    spec = v.load_spec(write_spec(tmp_path, IMAGE_SPEC))
    checks, info = v.check_images(data, spec, "pillow")
    bad = {c.check for c in checks if not c.passed}
    assert bad == {"readable-images"}
    assert {c["file"] for c in info["corrupt"]} == {"train/Arborio/truncated.jpg", "train/Basmati/empty.jpg", "val/Basmati/text.jpg"}
    readable = next(c for c in checks if c.check == "readable-images")
    assert readable.observed == "3 unreadable of 21" and "Pillow full decode" in readable.expected
    # without Pillow: signature and size only, so the truncated JPEG passes (and the report says how it was checked)
    checks, info = v.check_images(data, spec, "magic")
    assert {c["file"]: c["problem"] for c in info["corrupt"]} == {"train/Basmati/empty.jpg": "empty file",
                                                                  "val/Basmati/text.jpg": "not an image (unknown signature)"}
    assert "Pillow not installed" in next(c for c in checks if c.check == "readable-images").expected
    tolerant = v.load_spec(write_spec(tmp_path, {**IMAGE_SPEC, "max_corrupt": 3}))
    assert all(c.passed for c in v.check_images(data, tolerant, "pillow")[0])


def test_image_spec_against_a_file_is_an_input_error(tmp_path, reviews):
    with pytest.raises(InputError, match="not a directory but the spec says format: images"):
        v.validate(reviews, write_spec(tmp_path, IMAGE_SPEC), tmp_path / "out")


def test_format_defaults_to_the_kind_of_data(tmp_path):
    data = make_images(tmp_path / "rice")
    result, _ = run(tmp_path, data, {"min_per_class": 2})
    assert result.valid and json.loads(result.report.read_text())["format"] == "images"


@pytest.mark.parametrize("path", sorted((ROOT / "actions" / "validate-data" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_the_action_examples_load(path):
    spec = v.load_spec(path)
    assert spec["format"] in ("csv", "images")


def test_the_examples_the_messages_point_to_exist():
    examples = sorted(p.name for p in (ROOT / "actions" / "validate-data" / "examples").glob("*.yaml"))
    assert examples == ["images.yaml", "table.yaml"]
