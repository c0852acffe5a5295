"""Stage summary: one job-summary table for a whole pipeline run.

Input is what a final ``if: always()`` job of a workflow sees: ``toJSON(needs)``, the result
(success / failure / cancelled / skipped) and the outputs of every job before it. The stage turns
that into one table (each stage ✅ / ❌ / ⏭️ / 🚫 with the reason), the headline facts people look
for (metrics, MLflow run, champion decision, pull request, image digest, health), the trigger and
the run number, and writes the same data as JSON for machines (and the table as a .md twin).

Reasons: a job that fails or is skipped has no outputs of its own to say why, so the workflow
passes them in ``reasons`` (``job=text`` lines, computed with expressions from the deciding job's
outputs, e.g. the gate's). Without one, the stage derives a reason from the first failed or
skipped job the stage depends on when the workflow says so (``after``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core import gha, markdown, paths
from ..core.errors import InputError

JSON_MARKER = '"generator": "mlops-actions summary"'  # an earlier summary.json, which a rerun may replace
MD_MARKER = "<!-- mlops-actions:summary -->"  # the same for its .md twin
ICONS = {"success": "✅", "failure": "❌", "cancelled": "🚫", "skipped": "⏭️"}
_JOB_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# outputs worth a headline, whichever job produced them (first job in stage order wins)
HEADLINE = (
    "run-id",
    "run-url",
    "model-uri",
    "metrics",
    "metric",  # the gate's deciding metric: first in the metrics table
    "data-valid",
    "drift-detected",
    "promoted",
    "model-version",
    "challenger-value",
    "champion-value",
    "champion-version",
    "pr-url",
    "pr-number",
    "operation",
    "pr-operation",
    "image",
    "digest",
    "tags",
    "healthy",
    "latency-ms",
    "prod-image",
)

DEFAULT_TITLE = "mlops pipeline"
DEFAULT_OUTPUT = ".mlops/summary.json"


@dataclass
class Stage:
    job: str
    label: str
    result: str
    reason: str = ""
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def icon(self) -> str:
        return ICONS.get(self.result, "❔")


@dataclass
class SummaryResult:
    stages: list[Stage]
    facts: dict[str, object]
    context: dict[str, str]
    status: str
    markdown: str
    json_path: Path

    def as_dict(self) -> dict[str, object]:
        return {
            "generator": "mlops-actions summary",
            "status": self.status,
            "stages": [{"job": s.job, "stage": s.label, "result": s.result, "reason": s.reason} for s in self.stages],
            "facts": self.facts,
            "context": self.context,
        }

    def outputs(self) -> dict[str, object]:
        return {
            "status": self.status,
            "json": str(self.json_path),
            "markdown": str(self.json_path.with_suffix(".md")),
            "failed": ",".join(s.job for s in self.stages if s.result == "failure"),
        }


def parse_needs(text: str) -> dict[str, dict]:
    """``toJSON(needs)``: {job: {"result": ..., "outputs": {...}}}."""
    if not text.strip():
        raise InputError("needs", "is empty", "pass needs: ${{ toJSON(needs) }} from a job that needs every stage")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError("needs", f"is not JSON ({exc.msg} at {exc.pos})", "pass needs: ${{ toJSON(needs) }}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "result" in v for v in data.values()):
        raise InputError(
            "needs", "is not the needs context (an object of jobs with a result)", "pass needs: ${{ toJSON(needs) }}"
        )
    if not data:
        raise InputError(
            "needs",
            "lists no job ('{}'), so there is nothing to report as a success",
            "pass toJSON(needs) from a job whose needs: lists every stage of the pipeline",
        )
    for name, job in data.items():
        if job["result"] not in ICONS or not isinstance(job.get("outputs") or {}, dict):
            raise InputError(
                "needs",
                f"job '{str(name)[:60]}' has result {str(job['result'])[:40]!r} or outputs that are not an object",
                "pass needs: ${{ toJSON(needs) }}: results are success, failure, cancelled or skipped",
            )
    for job in data.values():  # an engine that skipped a job may hand back its output expressions unevaluated
        job["outputs"] = {k: v for k, v in (job.get("outputs") or {}).items() if not _unevaluated(v)}
    return data


def _unevaluated(value: object) -> bool:
    return isinstance(value, str) and "${{" in value


def parse_pairs(text: str, input_name: str) -> dict[str, str]:
    """``job=text`` lines; blank lines and ones with an empty text are skipped."""
    pairs: dict[str, str] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _JOB_ID.match(key):
            raise InputError(
                input_name, f"line '{line.strip()[:60]}' is not job=text", "write one job-id=text per line"
            )
        if value.strip() and not _unevaluated(value):
            pairs[key] = value.strip()
    return pairs


def _metrics(value: object) -> dict[str, float]:
    if isinstance(value, dict):
        data = value
    else:
        try:
            data = json.loads(str(value or "{}"))
        except ValueError:
            return {}
    return {k: v for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


def build(
    needs: dict[str, dict], labels: dict[str, str], reasons: dict[str, str], after: dict[str, str]
) -> list[Stage]:
    for job in list(labels) + list(reasons) + list(after):
        if job not in needs:
            raise InputError(
                "stages" if job in labels else "reasons" if job in reasons else "after",
                f"job '{job}' is not in needs",
                f"use one of: {', '.join(needs) or '(none)'}",
            )
    order = list(labels) + [j for j in needs if j not in labels]
    stages = [
        Stage(
            job=j,
            label=labels.get(j, j),
            result=str(needs[j].get("result", "")),
            outputs={k: str(v) for k, v in (needs[j].get("outputs") or {}).items()},
        )
        for j in order
    ]
    by_job = {s.job: s for s in stages}
    for stage in stages:
        if stage.job in reasons:
            stage.reason = reasons[stage.job]
        elif stage.result == "failure":
            stage.reason = "failed: see the job's log"
    # a stage skipped because one it depends on failed or was skipped says so
    for stage in stages:
        if stage.result in ("skipped", "cancelled") and not stage.reason:
            upstream = by_job.get(after.get(stage.job, ""))
            if upstream is not None and upstream.result != "success":
                stage.reason = f"{upstream.label} {upstream.result}"  # one level up; the cause is on its row, once
            elif stage.result == "skipped":
                stage.reason = "not requested"
    return stages


def collect_facts(stages: list[Stage]) -> dict[str, object]:
    facts: dict[str, object] = {}
    for stage in stages:
        for key in HEADLINE:
            value = stage.outputs.get(key, "")
            if value and key not in facts:
                facts[key] = _metrics(value) if key == "metrics" else value
    return facts


def render(stages: list[Stage], facts: dict[str, object], context: dict[str, str], title: str, status: str) -> str:
    lines = [f"## {ICONS['success'] if status == 'success' else ICONS['failure']} {gha.md_inline(title)}", ""]
    trigger = context.get("event_name") or "local"
    run = (
        f"[#{context['run_number']}]({context['run_url']})"
        if context.get("run_url") and context.get("run_number")
        else (context.get("run_number") or "—")
    )
    commit = (context.get("sha") or "")[:7]
    lines.append(
        f"Trigger `{gha.md_inline(trigger)}` on `{gha.md_inline(context.get('ref_name') or '—')}`"
        + (f" at `{commit}`" if commit else "")
        + f", run {run}"
        + (f" by @{context['actor']}" if context.get("actor") else "")
    )
    lines.append("")
    lines.append(
        gha.md_table(["stage", "result", "reason"], [[s.label, f"{s.icon} {s.result}", s.reason or ""] for s in stages])
    )
    rows: list[list[object]] = []
    if facts.get("run-id"):
        link = f"[{facts['run-id']}]({facts['run-url']})" if facts.get("run-url") else f"`{facts['run-id']}`"
        rows.append(["MLflow run", link])
    if facts.get("model-uri"):
        rows.append(
            [
                "model",
                f"`{gha.md_inline(facts['model-uri'])}`"
                + (f" (registry version {facts['model-version']})" if facts.get("model-version") else ""),
            ]
        )
    if facts.get("promoted"):
        verdict = "🏆 new champion" if facts["promoted"] == "true" else "🥈 challenger kept"
        values = f"{facts.get('challenger-value', '—')} vs champion {facts.get('champion-value') or '—'}"
        rows.append(["champion / challenger", f"{verdict}: {values}"])
    if facts.get("data-valid"):
        rows.append(["data valid", facts["data-valid"]])
    if facts.get("drift-detected"):
        rows.append(["drift detected", facts["drift-detected"]])
    if facts.get("pr-url"):
        op = facts.get("operation") or facts.get("pr-operation") or ""
        rows.append(["pull request", f"{facts['pr-url']}" + (f" ({op})" if op else "")])
    if facts.get("image"):
        rows.append(["image", f"`{gha.md_inline(facts['image'])}`"])
    elif facts.get("digest"):
        rows.append(["image digest", f"`{gha.md_inline(facts['digest'])}`"])
    if facts.get("prod-image"):
        rows.append(["production image", f"`{gha.md_inline(facts['prod-image'])}`"])
    if facts.get("healthy"):
        rows.append(
            [
                "health check",
                ("✅ answered" if facts["healthy"] == "true" else "❌ no answer")
                + (f" in {facts['latency-ms']} ms" if facts.get("latency-ms") else ""),
            ]
        )
    if rows:
        lines.append(gha.md_table(["", ""], rows))
    metrics = facts.get("metrics")
    if isinstance(metrics, dict) and metrics:
        deciding = str(facts.get("metric") or "")
        shown, folded, _ = markdown.order_metrics(list(metrics), [deciding] if deciding else [])
        rows = [[f"**{k}**" if k == deciding else k, markdown.number(metrics[k])] for k in shown]
        lines.append(gha.md_table(["metric", "value"], rows))
        if folded:
            lines.append(
                f"<details><summary>{len(folded)} more metrics logged by autologging</summary>\n\n"
                + gha.md_table(["metric", "value"], [[k, markdown.number(metrics[k])] for k in folded])
                + "\n</details>\n"
            )
    return "\n".join(lines)


def summarize(
    needs_json: str,
    *,
    stages: str = "",
    reasons: str = "",
    after: str = "",
    title: str = DEFAULT_TITLE,
    output: str = DEFAULT_OUTPUT,
) -> SummaryResult:
    needs = parse_needs(needs_json)
    labels = parse_pairs(stages, "stages")
    built = build(needs, labels, parse_pairs(reasons, "reasons"), parse_pairs(after, "after"))
    facts = collect_facts(built)
    context = gha.github_context()
    status = "failure" if any(s.result in ("failure", "cancelled") for s in built) else "success"
    markdown = render(built, facts, context, title, status)
    path = Path(output)
    if path.exists() and path.is_dir():
        raise InputError("output", f"'{output}' is a directory", "give a file path such as .mlops/summary.json")
    if path.suffix.lower() == ".md":
        raise InputError(
            "output",
            f"'{output}' ends in .md, the name of the Markdown twin written beside the JSON",
            "give a .json path such as .mlops/summary.json",
        )
    result = SummaryResult(stages=built, facts=facts, context=context, status=status, markdown=markdown, json_path=path)
    # both files are new or an earlier summary's (never a file the stage did not write), written beside and renamed
    paths.claim_output_file(path, "output", JSON_MARKER, "summary")
    paths.claim_output_file(path.with_suffix(".md"), "output", MD_MARKER, "summary")
    paths.write_file_atomic(path, json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n", "output")
    paths.write_file_atomic(path.with_suffix(".md"), markdown + "\n\n" + MD_MARKER + "\n", "output")
    return result
