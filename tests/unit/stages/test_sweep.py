"""stages/sweep.py plan: a grid or a list of points into matrix points, strictly."""

from __future__ import annotations

import json
import os

import pytest

from mlops_actions.core.errors import InputError
from mlops_actions.stages import sweep as sw


def test_a_grid_is_every_combination_on_top_of_the_base_params():
    plan = sw.plan({"C": [0.1, 1, 10], "penalty": ["l1", "l2"]}, {"rows": "800", "C": "2"}, sha="a" * 40)
    assert [p.id for p in plan.points] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert plan.points[0].params == {"rows": "800", "C": "0.1", "penalty": "l1"}
    assert plan.points[-1].values == {"C": "10", "penalty": "l2"} and plan.swept == ["C", "penalty"]
    out = plan.outputs()
    matrix = json.loads(out["points"])
    assert out["size"] == 6 and out["swept"] == "C,penalty" and len(matrix) == 6
    assert matrix[0] == {"id": "p1", "label": "C=0.1, penalty=l1", "params": "rows=800\nC=0.1\npenalty=l1",
                         "values": {"C": "0.1", "penalty": "l1"}, "tags": f"mlops_actions.sweep.{plan.sweep_id}=p1"}
    assert "| p6 | 10 | l2 |" in plan.summary()


def test_a_list_is_the_points_and_a_scalar_in_a_grid_is_one_value():
    plan = sw.plan([{"k": 2}, {"k": 4, "n_init": 20}, {"k": True}], {}, sha="")
    assert [p.values for p in plan.points] == [{"k": "2"}, {"k": "4", "n_init": "20"}, {"k": "true"}]
    assert sw.plan({"k": 3, "seed": [1, 2]}, {}).swept == ["seed"]  # k is the same everywhere
    ids = [p.id for p in sw.plan({"k": list(range(12))}, {}).points]
    assert ids[0] == "p01" and ids[-1] == "p12"  # sortable


def test_the_sweep_id_follows_the_commit_and_the_points():
    one = sw.plan({"k": [2, 3]}, {}, sha="a" * 40).sweep_id
    assert one == sw.plan({"k": [2, 3]}, {}, sha="a" * 40).sweep_id  # a rerun of the commit: the same runs
    assert one != sw.plan({"k": [2, 3]}, {}, sha="b" * 40).sweep_id
    assert one != sw.plan({"k": [2, 4]}, {}, sha="a" * 40).sweep_id
    assert len(one) == 12 and one.isalnum()


@pytest.mark.parametrize("doc,words", [
    ({}, "no parameter"),
    ([], "no point"),
    ("k=2", "str is not a sweep"),
    ({"k": []}, "'k' has no value"),
    ({"k": [[1, 2]]}, "list"),
    ({"k": [None]}, "NoneType"),
    ({"k": [""]}, "not a parameter value"),
    ({"k": ["a\nb"]}, "spans lines"),
    ({"bad name": [1]}, "'bad name' is not a parameter name"),
    ([{"k": 1}, "k=2"], "point 2 is not a mapping"),
    ([{"k": 1}, {"k": 1}], "points 1 and 2 are the same training"),
    ({"a": list(range(20)), "b": list(range(20))}, "400 points, more than 256"),
])
def test_bad_sweeps_name_the_input_and_the_fix(doc, words):
    with pytest.raises(InputError) as err:
        sw.plan(doc, {})
    line = err.value.line()
    assert line.startswith("input 'sweep'") and words in line, line
    assert "fix" in line.lower() or ";" in line or ":" in line


def test_the_sweep_reads_inline_or_from_a_workspace_file_only(tmp_path):
    assert sw.read_sweep("{k: [2, 3]}") == {"k": [2, 3]}
    (tmp_path / "sweep.yml").write_text("- {k: 2}\n- {k: 3}\n")
    assert sw.read_sweep("", "sweep.yml", tmp_path) == [{"k": 2}, {"k": 3}]
    outside = tmp_path.parent / "outside.yml"
    outside.write_text("{k: [1]}\n")
    os.symlink(outside, tmp_path / "link.yml")
    for bad, name in (("../outside.yml", "sweep-file"), ("/etc/passwd", "sweep-file"), ("link.yml", "sweep-file"),
                      ("missing.yml", "sweep-file")):
        with pytest.raises(InputError) as err:
            sw.read_sweep("", bad, tmp_path)
        assert err.value.input_name == name, bad
    with pytest.raises(InputError) as err:
        sw.read_sweep("{k: [2]}", "sweep.yml", tmp_path)
    assert "not both" in err.value.line()
    with pytest.raises(InputError) as err:
        sw.read_sweep("{k: [2", "")
    assert err.value.input_name == "sweep" and "not YAML" in err.value.line()


def test_points_come_back_as_the_plan_wrote_them():
    text = sw.plan({"k": [2, 3]}, {}).outputs()["points"]
    assert [p["id"] for p in sw.parse_points(str(text))] == ["p1", "p2"]
    for bad in ("", "{}", "[]", '[{"id": "p1"}]', "not json"):
        with pytest.raises(InputError):
            sw.parse_points(bad)
