"""The run record mlops-run.json: the same JSON as before, and a record whose keys or types differ is refused."""

import json

import pytest

from mlops_actions.core.errors import InputError
from mlops_actions.core.run_record import RUN_FILE, RunRecord

# a record as fetch-artifacts wrote it before RunRecord existed (sorted keys, two-space indent)
WRITTEN = {
    "run_id": "abc123", "run_name": "bold-owl", "experiment_id": "1", "tracking_uri": "", "run_url": "",
    "params": {"C": "2.0"}, "metrics": {"accuracy": 0.9}, "tags": {"github.sha": "deadbeef"},
    "model_uri": "models:/m-1", "flavor": "sklearn", "python_version": "3.11.9", "started": "2026-01-01T00:00:00Z",
}


def test_existing_files_load_and_write_back_byte_for_byte(tmp_path):
    text = json.dumps(WRITTEN, indent=2, sort_keys=True) + "\n"
    (tmp_path / RUN_FILE).write_text(text)
    record = RunRecord.read(tmp_path)
    assert record is not None and record.run_id == "abc123" and record.metrics == {"accuracy": 0.9}
    assert record.to_json() == text
    out = tmp_path / "out"
    out.mkdir()
    assert record.write(out).read_text() == text


def test_no_file_is_no_record(tmp_path):
    assert RunRecord.read(tmp_path) is None


@pytest.mark.parametrize("change,words", [
    (lambda d: d.update(metric=d.pop("metrics")), ["unknown key(s) metric", "missing key(s) metrics"]),
    (lambda d: d.pop("run_url"), ["missing key(s) run_url"]),
    (lambda d: d.update(metrics={"accuracy": "high"}), ["'metrics' has the wrong type"]),
    (lambda d: d.update(run_id=7), ["'run_id' has the wrong type (int)"]),
])
def test_a_renamed_missing_or_mistyped_key_fails_loudly(tmp_path, change, words):
    data = dict(WRITTEN)
    change(data)
    (tmp_path / RUN_FILE).write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        RunRecord.read(tmp_path)
    assert info.value.input_name == "source-dir"
    for word in words:
        assert word in info.value.line()


def test_not_json_is_refused(tmp_path):
    (tmp_path / RUN_FILE).write_text("{")
    with pytest.raises(InputError, match="is not JSON"):
        RunRecord.read(tmp_path)
