"""The two data gates through the real CLI (``python -m mlops_actions`` as the actions run it, with
the runner's GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files): validate-data on valid and invalid data,
drift on sentiment reviews from make_data.py with and without drift. Exit codes, outputs, summary,
and exactly one ::error:: line where the step fails."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MLOPS = [sys.executable, "-m", "mlops_actions"]
SPEC = ROOT / "model_project" / "sentiment" / "data-spec.yaml"


from conftest import sentiment_generator  # noqa: E402

generate = sentiment_generator()

NEW_WORDS = ["subscription", "paywall", "refund", "premium", "charged", "cancel", "scam", "trial"]


def run(args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(cwd / "gh-output"), GITHUB_STEP_SUMMARY=str(cwd / "gh-summary"))
    for var in ("MLOPS_DEBUG", "RUNNER_DEBUG"):
        env.pop(var, None)
    return subprocess.run(MLOPS + [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def outputs(cwd: Path) -> dict[str, str]:
    path = cwd / "gh-output"
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("::error")]


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def write(path: Path, table: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(table)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Reference and a second sample of the same generator; a drifted copy (fewer 5-star ratings,
    complaints about a paywall in new words); an invalid copy (bad ratings, empty reviews)."""
    root = tmp_path_factory.mktemp("gates")
    reference = generate(root / "reference.csv", rows=1200, seed=7)
    same = generate(root / "same.csv", rows=1200, seed=8)
    rng = random.Random(21)
    table = rows(same)
    drifted = [table[0]]
    for text, rating in table[1:]:
        if rating in ("4", "5") and rng.random() < 0.5:
            rating = rng.choice(["1", "2"])
            text = f"{text}, {rng.choice(NEW_WORDS)} {rng.choice(NEW_WORDS)}"
        drifted.append([text, rating])
    invalid = [table[0]] + [list(r) for r in table[1:]]
    for i in (3, 40, 77):
        invalid[i][1] = "0"
    invalid[5][0] = ""
    return {"reference": reference, "same": same, "drifted": write(root / "drifted.csv", drifted), "invalid": write(root / "invalid.csv", invalid)}


# ---------------------------------------------------------------------------------- validate-data


def test_validate_valid_data(tmp_path, data):
    proc = run(["validate-data", "--data", data["reference"], "--spec", SPEC, "--output-dir", "reports"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not errors(proc)
    out = outputs(tmp_path)
    assert out == {"data-valid": "true", "report": "reports/validate-data.json", "report-md": "reports/validate-data.md", "failed-checks": "0",
                   "failures": ""}
    report = json.loads((tmp_path / out["report"]).read_text())
    assert report["valid"] and report["rows"] == 1200
    summary = (tmp_path / "gh-summary").read_text()
    assert "✅ **data valid**" in summary and summary.strip() == (tmp_path / out["report-md"]).read_text().strip()


def test_validate_invalid_data_fails_with_one_error_and_the_report(tmp_path, data):
    proc = run(["validate-data", "--data", data["invalid"], "--spec", SPEC, "--output-dir", "reports"], tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = errors(proc)
    assert len(lines) == 1, proc.stdout
    # the failing checks by name with their numbers, then the fix
    assert "data invalid: 3 checks failed: no-nulls review_text: 1/1200" in lines[0], lines[0]
    assert "; allowed-values rating: 3 rows with 0 (expected 1, 2, 3, 4, 5)" in lines[0], lines[0]
    assert lines[0].endswith("; fix: see the report reports/validate-data.md"), lines[0]
    assert "Traceback" not in proc.stderr
    out = outputs(tmp_path)  # written before failing, so an if: failure() step can upload the report
    assert out["data-valid"] == "false" and out["failed-checks"] == "3"
    report = json.loads((tmp_path / "reports" / "validate-data.json").read_text())
    failed = sorted((c["check"], c["target"]) for c in report["checks"] if not c["passed"])
    assert failed == [("allowed-values", "rating"), ("no-nulls", "review_text"), ("range", "rating")]
    summary = (tmp_path / "gh-summary").read_text()
    assert "❌ **data invalid**: 3 of" in summary and "| ❌ | `range` | rating |" in summary
    shown = lines[0].split("::", 2)[2].replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")  # the command's escapes
    assert summary.rstrip().endswith("❌ **validate-data**: " + shown)


def test_validate_invalid_data_without_failing(tmp_path, data):
    proc = run(["validate-data", "--data", data["invalid"], "--spec", SPEC, "--fail-on-invalid", "false"], tmp_path)
    assert proc.returncode == 0 and not errors(proc), proc.stdout + proc.stderr
    out = outputs(tmp_path)
    assert out["data-valid"] == "false" and out["failed-checks"] == "3"
    assert Path(tmp_path / out["report"]).is_file() and out["report"] == ".mlops/validate-data/validate-data.json"
    assert "❌ **data invalid**" in (tmp_path / "gh-summary").read_text()


def test_validate_images_with_a_corrupt_file(tmp_path):
    Image = pytest.importorskip("PIL.Image")  # the truncated JPEG below is caught by a full decode only

    for split in ("train", "val", "test"):
        for index, cls in enumerate(("Arborio", "Basmati")):
            folder = tmp_path / "rice" / split / cls
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (12, 12), (90 * index, 30 * i, 0)).save(folder / f"{i}.jpg")
    spec = tmp_path / "rice.yaml"
    spec.write_text("format: images\nclasses: [Arborio, Basmati]\nmin_per_class: 2\n")
    proc = run(["validate-data", "--data", "rice", "--spec", spec], tmp_path)
    assert proc.returncode == 0 and outputs(tmp_path)["data-valid"] == "true", proc.stdout + proc.stderr
    (tmp_path / "rice" / "val" / "Basmati" / "1.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "gh-output").unlink()
    proc = run(["validate-data", "--data", "rice", "--spec", spec], tmp_path)
    assert proc.returncode == 1 and len(errors(proc)) == 1 and "data invalid: 1 check failed: " in errors(proc)[0] and errors(proc)[0].endswith("; fix: see the report .mlops/validate-data/validate-data.md")
    report = json.loads((tmp_path / ".mlops" / "validate-data" / "validate-data.json").read_text())
    assert report["corrupt"][0]["file"] == "val/Basmati/1.jpg"


@pytest.mark.parametrize("args,input_name", [
    (["--spec", "{bad_spec}"], "spec"),
    (["--spec", "missing.yaml"], "spec"),
    (["--spec", str(SPEC), "--data", "missing.csv"], "data"),
    (["--spec", str(SPEC), "--fail-on-invalid", "maybe"], "fail-on-invalid"),
], ids=["unknown-key", "missing-spec", "missing-data", "bad-flag"])
def test_validate_bad_input_exits_2_and_writes_nothing(tmp_path, data, args, input_name):
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: csv\ncolumns:\n  rating: {mn: 1}\n")
    args = [a.format(bad_spec=bad) for a in args]
    if "--data" not in args:
        args += ["--data", str(data["reference"])]
    proc = run(["validate-data", *args], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = errors(proc)
    assert len(lines) == 1 and f"input '{input_name}'" in lines[0] and "; fix: " in lines[0], proc.stdout
    if str(bad) in args:
        assert "key 'columns.rating.mn' is unknown" in lines[0] and str(bad) in lines[0]
    assert not (tmp_path / ".mlops").exists() and not (tmp_path / "gh-output").exists()


# ------------------------------------------------------------------------------------------ drift


def test_drift_two_seeds_of_the_generator_no_drift(tmp_path, data):
    proc = run(["drift", "--reference", data["reference"], "--current", data["same"], "--output-dir", "drift"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not errors(proc) and "::warning::" not in proc.stdout
    assert outputs(tmp_path) == {"drift-detected": "false", "report": "drift/drift.json", "table": "drift/drift.md", "drifted-features": ""}
    report = json.loads((tmp_path / "drift" / "drift.json").read_text())
    assert {f["name"]: f["type"] for f in report["features"]} == {"review_text": "text", "rating": "categorical"}
    summary = (tmp_path / "gh-summary").read_text()
    assert "✅ **no drift** in 2 features" in summary and "| `review_text` | text | OOV rate (permutation p) | 0 |" in summary


def test_drift_detected_is_a_signal_not_a_failure(tmp_path, data):
    proc = run(["drift", "--reference", data["reference"], "--current", data["drifted"], "--output-dir", "drift"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not errors(proc)
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("::warning::")]
    assert len(warnings) == 1 and "review_text, rating" in warnings[0]
    out = outputs(tmp_path)
    assert out["drift-detected"] == "true" and out["drifted-features"] == "review_text,rating"
    report = json.loads((tmp_path / out["report"]).read_text())
    features = {f["name"]: f for f in report["features"]}
    assert features["rating"]["stats"]["psi"] > 0.2 and features["rating"]["stats"]["chi2_p_value"] < 0.05
    assert features["review_text"]["stats"]["oov_rate"] > 0.05 and features["review_text"]["stats"]["oov_p_value"] < 0.05
    assert set(features["review_text"]["stats"]["top_new_tokens"]) <= set(NEW_WORDS)
    summary = (tmp_path / "gh-summary").read_text()
    assert "⚠️ **drift detected** in 2 of 2 features" in summary and "⚠️ drift |" in summary


def test_drift_with_column_types_and_thresholds(tmp_path, data):
    # the same drifted data, but rating compared as a number and the text left out: only rating drifts
    proc = run(["drift", "--reference", data["reference"], "--current", data["drifted"],
                "--columns", "rating=numeric\nreview_text=ignore", "--p-value", "0.01"], tmp_path)
    assert proc.returncode == 0 and not errors(proc), proc.stdout + proc.stderr
    assert outputs(tmp_path)["drifted-features"] == "rating"
    report = json.loads((tmp_path / ".mlops" / "drift" / "drift.json").read_text())
    assert report["thresholds"]["p-value"] == 0.01 and report["features"][1]["tests"][0]["statistic"] == "KS D"


@pytest.mark.parametrize("args,input_name", [
    (["--reference", "missing.csv", "--current", "{same}"], "reference"),
    (["--reference", "{reference}", "--current", "{empty}"], "current"),
    (["--reference", "{reference}", "--current", "{other}"], "current"),
    (["--reference", "{reference}", "--current", "{same}", "--columns", "rating=ordinal"], "columns"),
    (["--reference", "{reference}", "--current", "{same}", "--psi", "-1"], "psi"),
    (["--reference", "", "--current", "{same}"], "reference"),
], ids=["missing-file", "no-rows", "no-common-columns", "bad-type", "bad-threshold", "empty-input"])
def test_drift_bad_input_exits_2(tmp_path, data, args, input_name):
    (tmp_path / "empty.csv").write_text("review_text,rating\n")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    values = {"reference": data["reference"], "same": data["same"], "empty": tmp_path / "empty.csv", "other": tmp_path / "other.csv"}
    proc = run(["drift", *[a.format(**values) for a in args]], tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = errors(proc)
    assert len(lines) == 1 and f"input '{input_name}'" in lines[0] and "; fix: " in lines[0], proc.stdout
    assert not (tmp_path / ".mlops").exists() and not (tmp_path / "gh-output").exists()
