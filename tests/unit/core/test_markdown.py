"""Metric numbers and deltas as the pull request body, the DVC metrics diff and the summaries show them."""

import pytest

from mlops_actions.core import markdown


@pytest.mark.parametrize("value,text", [(None, "—"), ("", "—"), (0.912345, "0.9123"), (3, "3"), ("x", "x")])
def test_number(value, text):
    assert markdown.number(value) == text


@pytest.mark.parametrize("new,old,text", [
    (0.9, 0.8, "▲ +0.1"), (0.8, 0.9, "▼ -0.1"), (1, 1, "＝ +0"),
    (0.9, None, "new"), (None, 0.9, "removed"), ("a", "a", "—"), ("a", "b", "changed"), (True, 0.5, "changed"),
])
def test_delta(new, old, text):
    assert markdown.delta(new, old) == text


def test_metric_rows_cover_both_sides_in_order():
    rows = markdown.metric_rows({"acc": 0.9, "f1": 0.5}, {"acc": 0.8, "loss": 0.1})
    assert [(r["name"], r["new"], r["old"], r["delta"]) for r in rows] == [
        ("acc", "0.9", "0.8", "▲ +0.1"), ("f1", "0.5", "—", "new"), ("loss", "—", "0.1", "removed")]


def test_cell_is_one_escaped_line():
    assert markdown.cell("a |b\n c`d", limit=80) == "a \\|b c'd"
    assert markdown.cell("x" * 100, limit=10) == "x" * 9 + "…"


def test_human_size():
    assert [markdown.human_size(n) for n in (5, 2048, 3 * 1024**3)] == ["5 B", "2.0 KiB", "3.0 GiB"]


def test_chosen_metrics_first_in_their_order_autolog_noise_folded():
    names = ["training_accuracy_score", "test_f1", "test_accuracy", "system/cpu", "training_loss", "latency_ms", "auc"]
    shown, folded, unmatched = markdown.order_metrics(names, ["test_accuracy", "test_*", "nope", "train*_loss"])
    assert shown == ["test_accuracy", "test_f1", "training_loss", "auc", "latency_ms"]  # chosen, then the others
    assert folded == ["system/cpu", "training_accuracy_score"] and unmatched == ["nope"]
    assert markdown.order_metrics(names, []) == (["auc", "latency_ms", "test_accuracy", "test_f1"],
                                                ["system/cpu", "training_accuracy_score", "training_loss"], [])
