"""Hyper-parameter sweeps as a matrix of runners: ``plan`` expands a sweep into points, ``select``
picks the best finished run among them.

A sweep is YAML (inline, or a file): a mapping is a grid (each key a parameter, each value one
value or a list of them; the points are their product), a list of mappings is the points
themselves. Every point is the caller's base ``params`` with its own values on top, so a point is
a complete training and one job of a GitHub matrix (``fromJSON`` of the ``points`` output).

Each point's run is tagged ``mlops_actions.sweep.<sweep-id> = <point id>`` by the train action
(the reused run too), so ``select`` finds the sweep's runs in MLflow, wherever the matrix jobs
ran, without relying on matrix outputs (GitHub keeps only one matrix job's). The sweep id is a
digest of the commit and the points: a rerun of the same commit finds the same runs (and train
reuses them: a rerun trains nothing); another commit starts another sweep.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import gha, git, markdown
from ..core import tracking as trk
from ..core.errors import InputError, StageError
from ..core.inputs import PARAM_NAME_RE, safe_relative
from ..core.tracking import find_model_uri

TAG_PREFIX = "mlops_actions.sweep."
MAX_POINTS = 256  # GitHub's limit of jobs per matrix
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Point:
    id: str
    values: dict[str, str]  # the swept values of this point
    params: dict[str, str]  # base params with the point's values on top

    def as_matrix(self, sweep_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": label(self.values),
            "params": "\n".join(f"{k}={v}" for k, v in self.params.items()),
            "values": dict(self.values),  # select's table and charts read these, not the params text
            "tags": f"{TAG_PREFIX}{sweep_id}={self.id}",
        }


@dataclass
class Plan:
    sweep_id: str
    points: list[Point]
    swept: list[str]  # the parameters whose value differs between points

    def outputs(self) -> dict[str, object]:
        return {
            "sweep-id": self.sweep_id,
            "points": json.dumps([p.as_matrix(self.sweep_id) for p in self.points], separators=(",", ":")),
            "size": len(self.points),
            "swept": ",".join(self.swept),
        }

    def summary(self) -> str:
        rows = [[p.id, *(p.values.get(k, "") for k in self.swept)] for p in self.points]
        return f"### 🧪 sweep `{self.sweep_id}`: {len(self.points)} points, one training job each\n\n" + gha.md_table(
            ["point", *self.swept], rows
        )


def label(values: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "base params"


def _scalar(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)) and str(value).strip() != "":
        text = str(value).strip()
        if "\n" in text:
            raise InputError("sweep", f"{where}: a value spans lines", "give one-line values")
        return text
    raise InputError(
        "sweep",
        f"{where}: {type(value).__name__} {str(value)[:40]!r} is not a parameter value",
        "give a number or a string",
    )


def _key(key: object, where: str) -> str:
    text = str(key)
    if not PARAM_NAME_RE.match(text):  # the names train accepts in params
        raise InputError(
            "sweep",
            f"{where}: '{text[:40]}' is not a parameter name",
            "use letters, digits, _ . - and start with a letter",
        )
    return text


def read_sweep(text: str, file: str = "", workspace: str | os.PathLike[str] = ".") -> object:
    """The sweep document from the inline YAML or the file (relative to the workspace)."""
    import yaml

    if text.strip() and file.strip():
        raise InputError("sweep-file", "given together with sweep", "give the sweep inline or as a file, not both")
    if file.strip():
        rel = safe_relative(file, "sweep-file")
        root = Path(workspace).resolve()
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise InputError(
                "sweep-file", f"'{file}' is not a file of the workspace", "commit the sweep file, or fix the path"
            )
        text, name = path.read_text(encoding="utf-8"), "sweep-file"
    else:
        name = "sweep"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InputError(
            name, f"is not YAML{where}", "write a grid {C: [0.1, 1, 10]} or a list of points [{C: 0.1}, {C: 1}]"
        ) from None
    return doc


def plan(doc: object, base_params: dict[str, str], sha: str = "") -> Plan:
    """The points of a grid (a mapping) or an explicit list (of mappings), each with base params."""
    fix = "write a grid {C: [0.1, 1, 10]} or a list of points [{C: 0.1}, {C: 1}]"
    if isinstance(doc, dict):
        if not doc:
            raise InputError("sweep", "the grid has no parameter", fix)
        axes: list[tuple[str, list[str]]] = []
        for key, values in doc.items():
            name = _key(key, "grid")
            listed = values if isinstance(values, list) else [values]
            if not listed:
                raise InputError("sweep", f"'{name}' has no value", "list at least one value")
            axes.append((name, [_scalar(v, f"'{name}'") for v in listed]))
        total = math.prod(len(values) for _, values in axes)
        if total > MAX_POINTS:
            raise InputError("sweep", f"the grid has {total} points, more than {MAX_POINTS}", "sweep fewer values")
        combos = [
            dict(zip([n for n, _ in axes], values, strict=True)) for values in itertools.product(*(v for _, v in axes))
        ]
    elif isinstance(doc, list):
        if not doc:
            raise InputError("sweep", "the list has no point", fix)
        if len(doc) > MAX_POINTS:
            raise InputError("sweep", f"{len(doc)} points, more than {MAX_POINTS}", "sweep fewer points")
        combos = []
        for i, item in enumerate(doc, start=1):
            if not isinstance(item, dict) or not item:
                raise InputError("sweep", f"point {i} is not a mapping of parameters", fix)
            combos.append({_key(k, f"point {i}"): _scalar(v, f"point {i} '{k}'") for k, v in item.items()})
    else:
        raise InputError("sweep", f"a {type(doc).__name__} is not a sweep", fix)
    seen: dict[str, int] = {}
    points = []
    width = len(str(len(combos)))
    for i, values in enumerate(combos, start=1):
        params = {**base_params, **values}
        key = json.dumps(params, sort_keys=True)
        if key in seen:
            raise InputError(
                "sweep", f"points {seen[key]} and {i} are the same training ({label(values)})", "remove one"
            )
        seen[key] = i
        points.append(Point(id=f"p{i:0{width}d}", values=values, params=params))
    names = list(dict.fromkeys(k for p in points for k in p.values))
    swept = [n for n in names if len({p.params.get(n) for p in points}) > 1] or names
    digest = hashlib.sha256(json.dumps([sha, [p.params for p in points]], sort_keys=True).encode()).hexdigest()
    return Plan(sweep_id=digest[:12], points=points, swept=swept)


def head_sha() -> str:
    return os.environ.get("GITHUB_SHA") or git.output("rev-parse", "HEAD") or ""


# ---------------------------------------------------------------- select


@dataclass
class Scored:
    point: dict[str, Any]
    run_id: str
    value: float
    run_url: str


@dataclass
class Selection:
    sweep_id: str
    metric: str
    direction: str
    scored: list[Scored]
    best: Scored
    model_uri: str
    metrics: dict[str, float]
    tracking_uri: str
    swept: list[str] = field(default_factory=list)

    def outputs(self) -> dict[str, object]:
        return {
            "run-id": self.best.run_id,
            "run-url": self.best.run_url,
            "model-uri": self.model_uri,
            "metrics": self.metrics,
            "tracking-uri": self.tracking_uri,
            "best-point": self.best.point["id"],
            "best-params": self.best.point["label"],
            "table": self.markdown(),
        }

    def markdown(self) -> str:
        """The sweep table (winner marked) and a chart of the metric against each swept parameter."""
        arrow = "↑" if self.direction == "maximize" else "↓"
        rows = []
        for s in self.scored:
            star = "★ " if s is self.best else ""
            run = f"[{s.run_id[:8]}]({s.run_url})" if s.run_url else f"`{s.run_id[:8]}`"
            rows.append([f"{star}{s.point['id']}", s.point["label"], markdown.number(s.value), run])
        text = (
            f"### 🧪 Sweep `{self.sweep_id}`: {len(self.scored)} points, best {self.best.point['id']} "
            f"({self.best.point['label']}), {self.metric} {markdown.number(self.best.value)} {arrow}\n\n"
            + gha.md_table(["point", "params", f"{self.metric} {arrow}", "run"], rows)
        )
        for chart in self.charts():
            text += "\n\n" + chart
        return text

    def charts(self) -> list[str]:
        """A Mermaid xychart per swept parameter (GitHub renders them in PR bodies and summaries):
        the best metric over the other parameters at each of its values, in the sweep's order."""
        charts = []
        for name in self.swept:
            best_at: dict[str, float] = {}
            for s in self.scored:
                value = s.point["values"].get(name)
                if value is None:
                    continue
                pick = max if self.direction == "maximize" else min
                best_at[value] = pick(best_at.get(value, s.value), s.value)
            if len(best_at) < 2:
                continue
            xs = list(best_at)
            if all(_is_float(x) for x in xs):
                xs.sort(key=float)
            axis = ", ".join(json.dumps(x) for x in xs)
            ys = ", ".join(markdown.number(best_at[x]) for x in xs)
            charts.append(
                "```mermaid\nxychart-beta\n"
                f'    title "{self.metric} by {name}"\n'
                f'    x-axis "{name}" [{axis}]\n'
                f'    y-axis "{self.metric}"\n'
                f"    line [{ys}]\n```"
            )
        return charts


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_points(text: str) -> list[dict[str, Any]]:
    """The plan's ``points`` output, as the select step gets it back."""
    try:
        points = json.loads(text)
    except json.JSONDecodeError:
        raise InputError("points", "is not JSON", "pass the plan step's points output as it is") from None
    if (
        not isinstance(points, list)
        or not points
        or not all(
            isinstance(p, dict) and {"id", "label", "params", "values"} <= set(p) and isinstance(p["values"], dict)
            for p in points
        )
    ):
        raise InputError("points", "is not a list of sweep points", "pass the plan step's points output as it is")
    return points


def select(
    *,
    sweep_id: str,
    points: list[dict[str, Any]],
    metric: str,
    direction: str,
    experiment: str,
    tracking: trk.Tracking,
) -> Selection:
    """The best finished run of each point, then the best point, by ``metric`` in ``direction``."""
    if direction not in DIRECTIONS:
        raise InputError("direction", f"'{direction}' is not maximize or minimize", "write maximize or minimize")
    if not metric.strip():
        raise InputError("metric", "is empty", "name the metric every point's run logs, e.g. test_accuracy")
    if not sweep_id.strip() or not all(c.isalnum() for c in sweep_id):
        raise InputError("sweep-id", f"'{sweep_id}' is not a sweep id", "pass the plan step's sweep-id output")
    import mlflow

    trk.preflight(tracking)
    trk.activate(tracking)
    client = mlflow.MlflowClient()
    found = trk.call(lambda: client.get_experiment_by_name(experiment), "read experiment", tracking)
    if found is None:
        raise StageError(
            f"experiment '{experiment}' does not exist", "run the sweep's train jobs first, with this experiment"
        )
    tag = f"{TAG_PREFIX}{sweep_id}"
    runs = trk.call(
        lambda: client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{tag}` != '' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=5000,
        ),
        "search runs",
        tracking,
    )
    latest: dict[str, Any] = {}
    for run in runs:  # newest first: a point's run is the newest one tagged with it
        latest.setdefault(run.data.tags.get(tag, ""), run)
    missing = [p["id"] for p in points if p["id"] not in latest]
    if missing:
        raise StageError(
            f"no finished run of sweep {sweep_id} for point(s) {', '.join(missing)} in experiment '{experiment}'",
            "read the failed train jobs of the matrix; rerun the workflow to train what is missing",
        )
    scored = []
    for p in points:
        run = latest[p["id"]]
        value = run.data.metrics.get(metric)
        if value is None:
            logged = ", ".join(sorted(run.data.metrics)) or "none"
            raise InputError(
                "metric",
                f"point {p['id']}'s run did not log '{metric}' (it logged: {logged[:200]})",
                "name a metric the training logs",
            )
        if isinstance(value, float) and math.isnan(value):
            raise StageError(f"point {p['id']}: {metric} is NaN", "fix the training of that point")
        info = run.info
        scored.append(
            Scored(
                point=p,
                run_id=info.run_id,
                value=float(value),
                run_url=tracking.run_url(info.experiment_id, info.run_id),
            )
        )
    pick = max if direction == "maximize" else min
    best = pick(scored, key=lambda s: s.value)  # the first of equals: the sweep's order breaks ties
    best_run = latest[best.point["id"]]
    model_uri = find_model_uri(best_run, client, tracking)
    names = list(dict.fromkeys(k for p in points for k in p["values"]))
    return Selection(
        sweep_id=sweep_id,
        metric=metric,
        direction=direction,
        scored=scored,
        best=best,
        model_uri=model_uri,
        metrics=dict(sorted(best_run.data.metrics.items())),
        tracking_uri=tracking.display_uri,
        swept=[n for n in names if len({p["values"].get(n) for p in points}) > 1],
    )
