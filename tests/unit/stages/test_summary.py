"""The pipeline summary: stages from toJSON(needs), reasons, facts and the JSON twin."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlops_actions.core.errors import InputError
from mlops_actions.stages.summary import summarize

NEEDS = {
    "data": {"result": "success", "outputs": {"data-valid": "true", "drift-detected": "false"}},
    "train": {"result": "success", "outputs": {"run-id": "abc123", "run-url": "http://mlflow/#/runs/abc123",
                                                "model-uri": "models:/m-1", "metrics": json.dumps({"test_accuracy": 0.91234, "n_test": 300})}},
    "gate": {"result": "success", "outputs": {"promoted": "false", "model-version": "4", "challenger-value": "0.91",
                                               "champion-value": "0.93", "reason": "test_accuracy 0.91 <= champion 0.93 (v3)"}},
    "propose": {"result": "skipped", "outputs": {}},
    "image": {"result": "skipped", "outputs": {}},
}


@pytest.fixture(autouse=True)
def _context(monkeypatch):
    for key, value in {"GITHUB_EVENT_NAME": "schedule", "GITHUB_RUN_NUMBER": "17", "GITHUB_RUN_ID": "999",
                       "GITHUB_REPOSITORY": "acme/model", "GITHUB_SHA": "0123456789abcdef", "GITHUB_REF_NAME": "main"}.items():
        monkeypatch.setenv(key, value)


def test_losing_challenger_skips_with_the_gate_reason(tmp_path):
    reason = NEEDS["gate"]["outputs"]["reason"]
    result = summarize(json.dumps(NEEDS), stages="data=validate data\ntrain=train\ngate=champion / challenger",
                       reasons=f"propose=challenger lost: {reason}\nimage=challenger lost: {reason}\nhealth=",
                       output=str(tmp_path / "s.json"))
    assert [s.job for s in result.stages] == ["data", "train", "gate", "propose", "image"]
    assert result.status == "success"
    rows = {s.job: (s.result, s.reason) for s in result.stages}
    assert rows["propose"] == ("skipped", f"challenger lost: {reason}")
    md = result.markdown
    assert "| validate data | ✅ success |" in md and "| propose | ⏭️ skipped | challenger lost: test_accuracy 0.91" in md
    assert "[abc123](http://mlflow/#/runs/abc123)" in md and "🥈 challenger kept: 0.91 vs champion 0.93" in md
    assert "| test_accuracy | 0.9123 |" in md
    assert "Trigger `schedule` on `main` at `0123456`, run [#17](https://github.com/acme/model/actions/runs/999)" in md
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["status"] == "success" and saved["facts"]["metrics"]["test_accuracy"] == pytest.approx(0.91234)
    assert saved["stages"][3] == {"job": "propose", "stage": "propose", "result": "skipped", "reason": f"challenger lost: {reason}"}


def test_failed_stage_propagates_to_the_stages_after_it(tmp_path):
    needs = {"data": {"result": "failure", "outputs": {}}, "train": {"result": "skipped", "outputs": {}},
             "gate": {"result": "skipped", "outputs": {}}}
    result = summarize(json.dumps(needs), stages="data=validate data", reasons="data=data invalid: 2 checks failed",
                       after="train=data\ngate=train", output=str(tmp_path / "s.json"))
    rows = {s.job: (s.result, s.reason) for s in result.stages}
    assert rows["data"] == ("failure", "data invalid: 2 checks failed")
    assert rows["train"] == ("skipped", "validate data failure")  # the cause is said once, on its own row
    assert rows["gate"] == ("skipped", "train skipped")  # one level up: the root cause is on the data row
    assert result.status == "failure" and result.outputs()["failed"] == "data"
    assert result.markdown.startswith("## ❌ mlops pipeline")


def test_winner_shows_pr_image_and_health(tmp_path):
    needs = dict(NEEDS, gate={"result": "success", "outputs": {"promoted": "true", "challenger-value": "0.95", "champion-value": ""}},
                 propose={"result": "success", "outputs": {"pr-url": "https://github.com/acme/model/pull/3", "operation": "updated"}},
                 image={"result": "success", "outputs": {"image": "reg/acme/m@sha256:" + "a" * 64, "digest": "sha256:" + "a" * 64}},
                 health={"result": "success", "outputs": {"healthy": "true", "latency-ms": "41"}},
                 promote={"result": "success", "outputs": {"prod-image": "reg/acme/prod@sha256:" + "a" * 64}})
    md = summarize(json.dumps(needs), output=str(tmp_path / "s.json")).markdown
    assert "🏆 new champion: 0.95 vs champion —" in md
    assert "https://github.com/acme/model/pull/3 (updated)" in md
    assert "`reg/acme/m@sha256:" + "a" * 64 + "`" in md and "✅ answered in 41 ms" in md
    assert "| production image | `reg/acme/prod@sha256:" in md


@pytest.mark.parametrize("needs, reasons, after, name", [
    ("", "", "", "needs"),
    ("{not json", "", "", "needs"),
    ('{"train": {"outputs": {}}}', "", "", "needs"),
    ('{"train": {"result": "success"}}', "no equals sign", "", "reasons"),
    ('{"train": {"result": "success"}}', "deploy=x", "", "reasons"),
    ('{"train": {"result": "success"}}', "", "gate=train", "after"),
])
def test_bad_input_names_the_input(tmp_path, needs, reasons, after, name):
    with pytest.raises(InputError) as exc:
        summarize(needs, reasons=reasons, after=after, output=str(tmp_path / "s.json"))
    assert exc.value.input_name == name
    assert not (tmp_path / "s.json").exists()


def test_cli_writes_outputs_and_summary(tmp_path):
    out, summ = tmp_path / "out", tmp_path / "summary.md"
    env = {"PATH": "/usr/bin:/bin", "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summ),
           "MLOPS_NEEDS": json.dumps(NEEDS), "PYTHONPATH": ":".join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "mlops_actions", "summary", "--output", str(tmp_path / "s.json")],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "status=success" in out.read_text() and f"json={tmp_path / 's.json'}" in out.read_text()
    assert "| gate | ✅ success |" in summ.read_text()
    assert (tmp_path / "s.md").read_text().startswith("## ✅ mlops pipeline")


def test_unevaluated_expressions_of_skipped_jobs_are_ignored(tmp_path):
    """act hands back a skipped job's outputs as the raw ${{ }} text; GitHub gives empty strings."""
    needs = {"train": {"result": "failure", "outputs": {}},
             "gate": {"result": "skipped", "outputs": {"reason": "${{ steps.gate.outputs.reason }}"}}}
    result = summarize(json.dumps(needs), reasons="gate=${{ steps.gate.outputs.reason }}", after="gate=train",
                       output=str(tmp_path / "s.json"))
    gate = {s.job: s for s in result.stages}["gate"]
    assert gate.reason == "train failure" and "${{" not in result.markdown


def test_the_deciding_metric_heads_the_metrics_and_autolog_noise_is_folded(tmp_path):
    metrics = {"training_score": 1.0, "n_test": 300, "test_accuracy": 0.91234, "training_log_loss": 0.1, "auc": 0.97}
    needs = dict(NEEDS, train={"result": "success", "outputs": {"run-id": "abc", "metrics": json.dumps(metrics)}},
                 gate={"result": "success", "outputs": {"promoted": "true", "metric": "test_accuracy"}})
    md = summarize(json.dumps(needs), output=str(tmp_path / "s.json")).markdown
    table, _, folded = md.partition("<details>")
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "value" in table]
    names = [r for r in rows if r in {"**test_accuracy**", "auc", "n_test", "training_score", "training_log_loss"}]
    assert names == ["**test_accuracy**", "auc", "n_test"], rows
    assert "2 more metrics logged by autologging" in folded and "| training_log_loss | 0.1 |" in folded
