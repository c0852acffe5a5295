"""The deciding metric across the last runs of an experiment, as a plot a reviewer reads at a glance.

fetch-artifacts writes it beside the run's artifacts (``metric_trend.png``), so open-pr commits it
and shows it under the verdict. The plot is a function of the runs alone: the same runs give the
same bytes (no date or software version in the PNG), so a rerun of the same commit changes
nothing on the bot branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FILE = "metric_trend.png"
MAX_RUNS = 200


@dataclass(frozen=True)
class Point:
    run_id: str
    run_name: str
    started_ms: int
    value: float


def history(client, experiment_id: str, metric: str, run, runs: int) -> list[Point]:
    """The last ``runs`` finished runs of the experiment that logged ``metric`` (oldest first),
    with ``run`` (the one being proposed) always among them."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'FINISHED' and metrics.`{metric}` > -1e300",
        order_by=["attributes.start_time DESC"],
        max_results=runs,
    )
    by_id = {r.info.run_id: r for r in found}
    if run.info.run_id not in by_id:
        if found and len(found) >= runs:
            by_id.pop(found[-1].info.run_id)
        by_id[run.info.run_id] = run
    points = [
        Point(r.info.run_id, r.info.run_name or "", int(r.info.start_time or 0), float(r.data.metrics[metric]))
        for r in by_id.values()
        if metric in r.data.metrics
    ]
    return sorted(points, key=lambda p: (p.started_ms, p.run_id))


def plot(points: list[Point], metric: str, this_run: str, path: Path) -> Path:
    """A line of ``metric`` per run (oldest left), this run marked and labelled; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(1, len(points) + 1))
    ys = [p.value for p in points]
    fig, ax = plt.subplots(figsize=(7, 2.6), dpi=100)
    try:
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color="#57606a")
        mine = [i for i, p in enumerate(points) if p.run_id == this_run]
        for i in mine:
            ax.plot([xs[i]], [ys[i]], marker="*", markersize=14, color="#1a7f37", zorder=3)
            left = i < len(points) / 2  # the label on the side with room
            ax.annotate(
                f"this run: {ys[i]:.4g}",
                (xs[i], ys[i]),
                textcoords="offset points",
                xytext=(10 if left else -10, 6),
                ha="left" if left else "right",
                fontsize=9,
                color="#1a7f37",
            )
        ax.margins(x=0.04, y=0.25)
        runs = f"{len(points)} finished run" + ("s" if len(points) != 1 else "")
        ax.set_title(f"{metric}, last {runs} of the experiment", fontsize=10)
        ax.set_xlabel("run (oldest → newest)", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(True, linewidth=0.3)
        if len(xs) <= 20:
            ax.set_xticks(xs)
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return path
