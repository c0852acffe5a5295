"""The whole chain in one call, safe by default. Used by the root action.yml (the one-step adoption)
and by ``mlops demo``::

    train (reuse) → gate → fetch-artifacts → scan → render-dockerfile → build + smoke test → open-pr → push

* **reuse**: a finished run with the same fingerprint (committed project files, entry point,
  params) is returned instead of training again, so a rerun of the same commit, and the run on the
  merge commit of the bot's own pull request, propose the same artifacts.
* **gate**: the run's model becomes a version in the MLflow Model Registry and must beat the
  champion on ``metric``; a losing or tied challenger stops the chain cleanly (``decision:
  rejected``, no pull request, no image, success). A rerun answers with the recorded decision.
* **scan before anything leaves**: every fetched file is scanned for code run at load time
  (stages/scan.py); a finding at ``scan_fail_on`` or above stops the chain before any image or pull
  request, and the report goes to the pull request body.
* **smoke test before the pull request**: the image is built and smoke-tested before anything is
  proposed, and pushed only after the pull request is open; a failed smoke test opens nothing.
* **the loop ends**: after the bot's pull request is merged the artifacts equal the base branch,
  so open-pr opens nothing.

The caller's :class:`PipelineConfig` is never changed; each stage gets its own copy of a request."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .core import gha, paths
from .core import tracking as trk
from .core.errors import InputError, MlopsError, StageError
from .stages.fetch_artifacts import fetch
from .stages.gate import GateRequest, check_request
from .stages.gate import gate as run_gate
from .stages.open_pr import PrRequest, open_pr
from .stages.push_image import PushRequest, push_image
from .stages.render_dockerfile import render
from .stages.scan import fail_line, parse_fail_on
from .stages.scan import scan as run_scan
from .stages.train import train

DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}
STAGES = ("train", "gate", "fetch-artifacts", "scan", "render-dockerfile", "smoke-test", "open-pr", "push-image")


@dataclass(frozen=True)
class GateConfig:
    """The champion/challenger gate of the pipeline (see stages/gate.py)."""

    metric: str
    model_name: str
    direction: str = "maximize"  # max|maximize or min|minimize
    min_improvement: str = "0"


@dataclass
class PipelineConfig:
    project_path: str
    tracking: trk.Tracking
    entry_point: str = "main"
    params: dict[str, str] = field(default_factory=dict)
    experiment: str = "mlops-actions"
    artifacts_dir: Path = Path("artifacts")
    pr: PrRequest | None = None  # None: no pull request; its source_dir is replaced by the fetched folder
    context_dir: Path = Path("build/image")
    base_image: str = ""
    ca_bundle: str = ""
    version: str = ""
    push: PushRequest | None = None  # None: stop after render; its context is replaced by the rendered one
    env_manager: str = "uv"
    reuse: bool = False  # the CLI and the root action default to True
    gate: GateConfig | None = None  # None: every run is proposed; the CLI and the root action gate by default
    scan_fail_on: str = "low"  # stages/scan.py's fail-on: low (any finding) ... critical, none (report only)


def default_model_name(project_path: str) -> str:
    """The registered model's name when none is given: the project folder's name (for ``.``, the
    checkout's folder, which on GitHub is the repository's name)."""
    return Path(project_path or ".").resolve().name or "model"


def parse_direction(text: str) -> str:
    value = (text or "").strip().lower()
    if value not in DIRECTIONS:
        raise InputError("direction", f"'{text}' is not max or min", "write max (accuracy, f1) or min (loss, rmse)")
    return DIRECTIONS[value]


def lowercase_image(name: str) -> str:
    """The image's repository part (registry host and path) in lower case, as docker/metadata-action
    does with its ``images``; a ``:tag`` or ``@digest`` is kept exactly as written."""
    text = (name or "").strip()
    rest, at, digest = text.partition("@")
    slash, colon = rest.rfind("/"), rest.rfind(":")
    repo, tag = (rest[:colon], rest[colon:]) if colon > slash else (rest, "")
    return repo.lower() + tag + at + digest


def gate_request(cfg: GateConfig) -> GateRequest:
    """The gate's request for ``cfg``, checked before any training (its run id is filled in later)."""
    if not cfg.metric.strip():
        raise InputError(
            "metric",
            "is empty, and the gate needs the metric that decides whether the run beats the champion",
            "set metric: <name>, or gate: 'false'",
        )
    req = GateRequest(
        run_id="(set after training)",
        model_name=cfg.model_name.strip(),
        metric=cfg.metric.strip(),
        direction=parse_direction(cfg.direction),
        min_improvement=cfg.min_improvement,
    )
    check_request(req)
    return req


def push_request(req: PushRequest) -> PushRequest:
    """A copy of ``req`` whose image name is lower case (with a notice when that changed it)."""
    lowered = lowercase_image(req.image)
    if lowered != req.image.strip():
        gha.notice(
            f"image '{req.image.strip()}' is used as '{lowered}': registries accept lower-case repository names only "
            "(docker/metadata-action lowercases them the same way)"
        )
    return dataclasses.replace(req, image=lowered)


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or child.is_relative_to(parent)


class _Table:
    """The job-summary table, written once at the end, also when a stage fails."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.current = ""

    def start(self, name: str) -> None:
        self.current = name

    def add(self, name: str, result: str, detail: str) -> None:
        self.rows.append([name, result, detail])
        self.current = ""

    def skip_rest(self, why: str) -> None:
        done = {row[0] for row in self.rows}
        for name in STAGES:
            if name not in done:
                self.rows.append([name, "⏭️", why])


def run_pipeline(cfg: PipelineConfig) -> dict[str, object]:
    """Run the chain for ``cfg``; returns the step outputs (``stages``: stage → result icon)."""
    gate_req = gate_request(cfg.gate) if cfg.gate is not None else None  # a bad gate input fails before training
    push_req = push_request(cfg.push) if cfg.push is not None else None
    parse_fail_on(cfg.scan_fail_on, "scan-fail-on")
    paths.claim_output(
        cfg.artifacts_dir, "fetch-artifacts", "artifacts-path"
    )  # output folders are checked before training
    paths.claim_output(cfg.context_dir, "render-dockerfile", "context-dir")
    if cfg.pr is not None and _inside(Path(cfg.pr.workdir) / cfg.pr.repo_path, Path(cfg.project_path)):
        gha.warning(
            f"repo-path '{cfg.pr.repo_path}' lies inside project-path '{cfg.project_path}': merging the pull "
            "request changes "
            "the project's files, so the next run trains again instead of reusing this run; keep repo-path outside "
            "project-path (and in the workflow's paths-ignore)"
        )
    table = _Table()
    out: dict[str, object] = {}
    extra: list[str] = []
    try:
        table.start("train")
        with gha.group("1/8 train" + (" (or reuse a finished run of the same fingerprint)" if cfg.reuse else "")):
            trained = train(
                cfg.project_path,
                entry_point=cfg.entry_point,
                params=dict(cfg.params),
                experiment=cfg.experiment,
                tracking=cfg.tracking,
                env_manager=cfg.env_manager,
                reuse=cfg.reuse,
            )
        out.update(trained.outputs())
        run = trained.run_url or trained.run_id
        table.add(
            "train",
            "♻️" if trained.reused else "✅",
            f"reused {run} (same fingerprint, nothing trained)" if trained.reused else f"trained {run}",
        )

        table.start("gate")
        if gate_req is None:
            out.update(
                {
                    "decision": "ungated",
                    "reason": "gate off: the run is proposed without comparing it with a champion",
                    "model-version": "",
                    "champion-version": "",
                }
            )
            gha.notice("gate off: the run is proposed without comparing it with the registry's champion")
            table.add("gate", "⚠️", "off (gate: 'false'): every run is proposed")
        else:
            with gha.group(f"2/8 gate {gate_req.model_name} on {gate_req.metric} ({gate_req.direction})"):
                decided = run_gate(
                    dataclasses.replace(gate_req, run_id=trained.run_id, model_uri=trained.model_uri), cfg.tracking
                )
                print(("promoted: " if decided.promoted else "not promoted: ") + decided.reason)
            out.update(
                {
                    "decision": "promoted" if decided.promoted else "rejected",
                    "reason": decided.reason,
                    "model-version": decided.model_version,
                    "champion-version": decided.champion_version,
                }
            )
            extra.append(decided.summary())
            recorded = " (decision recorded earlier for this run)" if decided.rerun else ""
            if not decided.promoted:
                table.add(
                    "gate",
                    "⏸️",
                    f"`{decided.model_name}` v{decided.model_version} does not replace the champion: "
                    f"{decided.reason}{recorded}",
                )
                gha.notice(
                    f"gate: {decided.reason}: the challenger (v{decided.model_version}) does not replace the champion; "
                    "no pull request, no image"
                )
                table.skip_rest("challenger lost the gate")
                return _finish(out, table)
            table.add(
                "gate",
                "🏆",
                f"`{decided.model_name}` v{decided.model_version} is the champion: {decided.reason}{recorded}",
            )

        table.start("fetch-artifacts")
        with gha.group("3/8 fetch-artifacts"):
            fetched = fetch(trained.run_id, cfg.artifacts_dir, tracking=cfg.tracking)
        out.update({"artifacts": str(fetched.path), "model-path": str(fetched.model_path), "flavor": fetched.flavor})
        table.add("fetch-artifacts", "✅", str(fetched.path))

        table.start("scan")
        with gha.group("4/8 scan"):
            scanned = run_scan(fetched.path, cfg.scan_fail_on)
        extra.append(scanned.summary())
        out.update({"scan-result": "passed" if scanned.passed else "failed", "scan-report": str(scanned.report)})
        if not scanned.passed:
            raise StageError(
                fail_line(scanned),
                "retrain without the flagged object, or set scan-fail-on above its severity if you trust it",
            )
        table.add(
            "scan",
            "✅" if not scanned.findings else "⚠️",
            f"{len(scanned.scanned)} model file(s), {len(scanned.findings)} finding(s)"
            + (f" (highest {scanned.highest}, below {cfg.scan_fail_on})" if scanned.findings else ""),
        )

        table.start("render-dockerfile")
        with gha.group("5/8 render-dockerfile"):
            assert fetched.model_path is not None  # fetch() includes the model unless told not to
            rendered = render(
                fetched.model_path,
                cfg.context_dir,
                base_image=cfg.base_image,
                ca_bundle=cfg.ca_bundle,
                run_id=trained.run_id,
                version=cfg.version,
            )
        out.update({"dockerfile": str(rendered.dockerfile), "context": str(rendered.context)})
        table.add("render-dockerfile", "✅", str(rendered.dockerfile))

        tested = None
        table.start("smoke-test")
        if push_req is not None:
            with gha.group("6/8 build + smoke test (nothing pushed yet)"):
                tested = push_image(dataclasses.replace(push_req, context=rendered.context, push=False))
            table.add(
                "smoke-test",
                "✅" if push_req.smoke_test else "⚠️",
                f"built {tested.image_id[:19]}, " + ("smoke test passed" if push_req.smoke_test else "smoke test off"),
            )
        else:
            table.add("smoke-test", "⏭️", "no image given")

        table.start("open-pr")
        if cfg.pr is not None:
            with gha.group("7/8 open-pr"):
                pr = open_pr(
                    dataclasses.replace(
                        cfg.pr,
                        source_dir=fetched.path,
                        extra_body=[*cfg.pr.extra_body, *([scanned.markdown] if scanned.markdown else [])],
                    )
                )
            out.update(
                {
                    "pr-number": str(pr.pr_number or ""),
                    "pr-url": pr.pr_url,
                    "pr-operation": pr.operation,
                    "pr-branch": pr.branch,
                    "pr-body": pr.body_file,
                }
            )
            if pr.operation == "unchanged" and not pr.pr_url and cfg.pr.open_pull_request:
                detail = f"the base branch already holds these artifacts in {cfg.pr.repo_path}: no pull request needed"
            else:
                detail = f"{pr.operation} {pr.pr_url or pr.branch}"
            table.add("open-pr", "✅", detail)
        else:
            out.update({"pr-operation": ""})
            table.add("open-pr", "⏭️", "no repo-path given")

        table.start("push-image")
        if push_req is None or tested is None:
            table.add("push-image", "⏭️", "no image given")
        elif not push_req.push:
            out.update({"image": tested.image, "digest": "", "tags": "\n".join(tested.tags)})
            table.add("push-image", "⏭️", f"push: false (tested locally as {tested.tags[0]})")
        else:
            # push_image tests again before it tags: what is pushed passed a smoke test even if the
            # build cache no longer holds the tested image (then it is rebuilt and tested once more)
            with gha.group("8/8 push-image"):
                pushed = push_image(dataclasses.replace(push_req, context=rendered.context))
            if pushed.image_id != tested.image_id:
                gha.warning(
                    f"the image was rebuilt for the push ({pushed.image_id[:19]}, tested before the pull request: "
                    f"{tested.image_id[:19]}); it passed its own smoke test"
                )
            out.update({"image": pushed.image, "digest": pushed.digest, "tags": "\n".join(pushed.tags)})
            out["sbom"] = str(pushed.sbom.path) if pushed.sbom and pushed.sbom.path else ""
            table.add("push-image", "✅", pushed.image)
    except Exception as exc:
        if table.current:
            table.add(
                table.current,
                "❌",
                exc.line() if isinstance(exc, MlopsError) else f"unexpected {exc.__class__.__name__}",
            )
        table.skip_rest("an earlier stage failed")
        raise
    finally:
        gha.add_summary(
            "### mlops-actions pipeline\n"
            + gha.md_table(["stage", "result", "detail"], table.rows)
            + "".join(f"\n\n{text}" for text in extra)
            + f"\n\nTracking store: {cfg.tracking.describe()}"
        )
    return _finish(out, table)


def _finish(out: dict[str, object], table: _Table) -> dict[str, object]:
    out["stages"] = {row[0]: row[1] for row in table.rows}
    return out
