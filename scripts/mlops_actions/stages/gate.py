"""Stage gate: champion/challenger in the MLflow Model Registry.

The run's model becomes a version of a registered model (once: a rerun for the same run finds the
version it registered). Its metric is compared with the metric of the run behind the version that
holds the champion alias; only a strict win by more than ``min_improvement`` moves the champion
alias, otherwise the challenger alias goes to the new version. The decision is written as tags on
the version, so a rerun answers with the recorded decision and moves nothing.

Only a finished, live run is gated (``artifacts.read_run``): a deleted run, or one that is not
FINISHED, is refused naming ``run-id`` before anything is registered; so is a metric that is not a
finite number. MLflow errors end as one line naming the server (``artifacts.mlflow_call``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..core import gha
from ..core import tracking as trk
from ..core.errors import InputError, StageError
from ..core.tracking import check_model_uri, find_model_uri, mlflow_call, read_run

TAG = "mlops.gate."
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_EPS = 1e-12


@dataclass
class GateRequest:
    run_id: str
    model_name: str
    metric: str
    direction: str = "maximize"
    min_improvement: str | float = 0
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    model_uri: str = ""


@dataclass
class GateResult:
    promoted: bool
    model_version: str
    challenger_value: float
    champion_value: float | None
    champion_version: str
    reason: str
    metric: str
    model_name: str
    rerun: bool = False
    run_url: str = ""  # the challenger's run in the MLflow UI
    champion_run_url: str = ""
    champion_run_id: str = ""

    def outputs(self) -> dict[str, object]:
        diff = None if self.champion_value is None else self.challenger_value - self.champion_value
        delta = "" if diff is None else ("+" if diff > 0 else "") + fmt(diff)
        return {
            "promoted": "true" if self.promoted else "false",
            "challenger-value": fmt(self.challenger_value),
            "champion-value": "" if self.champion_value is None else fmt(self.champion_value),
            "model-version": self.model_version,
            "champion-version": self.champion_version,
            "reason": self.reason,
            "metric": self.metric,
            "delta": delta,
            "run-url": self.run_url,
            "champion-run-url": self.champion_run_url,
            "champion-run-id": self.champion_run_id,
        }

    def summary(self) -> str:
        icon = "✅ promoted" if self.promoted else "⏸️ not promoted"
        rows = [
            ["model", f"`{self.model_name}` v{self.model_version}"],
            ["decision", icon + (" (recorded earlier)" if self.rerun else "")],
            [f"challenger {self.metric}", fmt(self.challenger_value)],
            [
                f"champion {self.metric}",
                "—" if self.champion_value is None else f"{fmt(self.champion_value)} (v{self.champion_version})",
            ],
            ["reason", self.reason],
        ]
        return "### 🥊 gate\n" + gha.md_table(["", ""], rows)


def fmt(value: float) -> str:
    return f"{value:.6g}"


def parse_min_improvement(value: str | float) -> float:
    text = str(value).strip() or "0"
    try:
        number = float(text)
    except ValueError:
        raise InputError(
            "min-improvement", f"'{value}' is not a number", "write an absolute margin such as 0 or 0.01"
        ) from None
    if not math.isfinite(number) or number < 0:
        raise InputError(
            "min-improvement", f"'{value}' is negative or not finite", "write an absolute margin ≥ 0 such as 0.01"
        )
    return number


def check_request(req: GateRequest) -> float:
    if not req.run_id.strip():
        raise InputError("run-id", "is empty", "pass the run-id output of the train step")
    if not req.model_name.strip():
        raise InputError("model-name", "is empty", "name the registered model, e.g. sentiment")
    if not req.metric.strip():
        raise InputError("metric", "is empty", "name the metric the run logs, e.g. accuracy")
    if req.direction not in ("maximize", "minimize"):
        raise InputError(
            "direction",
            f"'{req.direction}' is not maximize or minimize",
            "write maximize (accuracy, f1) or minimize (loss, rmse)",
        )
    for name, alias in (("champion-alias", req.champion_alias), ("challenger-alias", req.challenger_alias)):
        if alias and (not _ALIAS.match(alias) or re.fullmatch(r"[vV]\d+|latest", alias)):
            raise InputError(
                name, f"'{alias}' is not a usable alias", "use letters, digits, _ and - (not latest or v<N>)"
            )
    if not req.champion_alias:
        raise InputError("champion-alias", "is empty", "keep the default champion or name another alias")
    if req.champion_alias == req.challenger_alias:
        raise InputError(
            "challenger-alias", "equals champion-alias", "use two different aliases, or leave challenger-alias empty"
        )
    check_model_uri(req.model_uri, "model-uri")
    return parse_min_improvement(req.min_improvement)


def decide(
    challenger: float, champion: float | None, champion_version: str, metric: str, direction: str, margin: float
) -> tuple[bool, str]:
    """(promoted, one-sentence reason). A tie or a win by no more than the margin loses."""
    if champion is None:
        return True, "no champion yet"
    base = f"champion {fmt(champion)} (v{champion_version})"
    if direction == "maximize":
        gain = challenger - champion
        tail = f" + {fmt(margin)}" if margin else ""
        won = gain - margin > _EPS * max(1.0, abs(challenger), abs(champion))
        return won, f"{metric} {fmt(challenger)} {'>' if won else '≤'} {base}{tail}"
    gain = champion - challenger
    tail = f" − {fmt(margin)}" if margin else ""
    won = gain - margin > _EPS * max(1.0, abs(challenger), abs(champion))
    return won, f"{metric} {fmt(challenger)} {'<' if won else '≥'} {base}{tail}"


def gate(req: GateRequest, tracking: trk.Tracking) -> GateResult:
    margin = check_request(req)
    import mlflow
    from mlflow.exceptions import MlflowException

    trk.preflight(tracking)
    trk.activate(tracking)
    client = mlflow.MlflowClient()
    run_id = req.run_id.strip()

    def champion_run(rid: str):
        return mlflow_call(lambda: client.get_run(rid), f"read run {rid}", tracking)

    run = read_run(client, run_id, tracking, "run-id")
    metrics = run.data.metrics
    if req.metric not in metrics:
        have = ", ".join(sorted(metrics)) or "none"
        raise InputError(
            "metric",
            f"run {run_id} has no metric '{req.metric}' (it logged: {have})",
            "name a metric the training run logs",
        )
    value = float(metrics[req.metric])
    if not math.isfinite(value):
        raise InputError(
            "metric",
            f"run {run_id} logged {value} for '{req.metric}', not a finite number",
            "gate on a metric the run logs as a number",
        )

    version = _register(client, req, run, tracking)
    tags = version.tags or {}
    if tags.get(TAG + "decision"):
        return _recorded(req, version, value, tracking.run_url(run.info.experiment_id, run_id))

    champion_value: float | None = None
    champion_version = champion_url = champion_run_id = ""
    run_url = tracking.run_url(run.info.experiment_id, run_id)
    try:
        holder = trk.call(
            lambda: client.get_model_version_by_alias(req.model_name, req.champion_alias),
            "read champion alias",
            tracking,
        )
    except MlflowException:
        holder = None  # no champion yet
    if holder is not None and str(holder.version) != str(version.version):
        champion_version = str(holder.version)
        if not holder.run_id:
            raise StageError(
                f"champion v{champion_version} of {req.model_name} has no run",
                "move the champion alias to a version registered from a run",
            )
        champion_run_id = str(holder.run_id)
        champ_run = champion_run(holder.run_id)
        if req.metric not in champ_run.data.metrics:
            raise InputError(
                "metric",
                f"the champion v{champion_version} (run {holder.run_id}) has no metric '{req.metric}'",
                "compare on a metric both runs log",
            )
        champion_value = float(champ_run.data.metrics[req.metric])
        champion_url = tracking.run_url(champ_run.info.experiment_id, holder.run_id)
        if not math.isfinite(champion_value):
            raise StageError(
                f"the champion v{champion_version} logged {champion_value} for '{req.metric}'",
                "move the champion alias to a version whose run logged a finite value",
            )

    promoted, reason = decide(value, champion_value, champion_version, req.metric, req.direction, margin)
    name, number = req.model_name, str(version.version)
    if promoted:
        mlflow_call(
            lambda: client.set_registered_model_alias(name, req.champion_alias, number), "set champion alias", tracking
        )
    elif req.challenger_alias:
        mlflow_call(
            lambda: client.set_registered_model_alias(name, req.challenger_alias, number),
            "set challenger alias",
            tracking,
        )
    record = {
        "metric": req.metric,
        "direction": req.direction,
        "min-improvement": fmt(margin),
        "challenger-value": fmt(value),
        "champion-value": "" if champion_value is None else fmt(champion_value),
        "champion-version": champion_version,
        "champion-run-url": champion_url,
        "champion-run-id": champion_run_id,
        "reason": reason,
        "promoted": "true" if promoted else "false",
    }
    for key, val in record.items():
        mlflow_call(
            lambda k=key, v=val: client.set_model_version_tag(name, number, TAG + k, v), "tag model version", tracking
        )
    # the decision tag last: a version carries it only when the rest of the record is complete
    mlflow_call(
        lambda: client.set_model_version_tag(name, number, TAG + "decision", "promoted" if promoted else "rejected"),
        "tag model version",
        tracking,
    )
    return GateResult(
        promoted=promoted,
        model_version=number,
        challenger_value=value,
        champion_value=champion_value,
        champion_version=champion_version,
        reason=reason,
        metric=req.metric,
        model_name=name,
        run_url=run_url,
        champion_run_url=champion_url,
        champion_run_id=champion_run_id,
    )


def _recorded(req: GateRequest, version, value: float, run_url: str = "") -> GateResult:
    tags = version.tags or {}
    if tags.get(TAG + "metric") not in (None, req.metric) or tags.get(TAG + "direction") not in (None, req.direction):
        raise InputError(
            "metric",
            f"v{version.version} was already gated on {tags.get(TAG + 'metric')} ({tags.get(TAG + 'direction')})",
            "re-run with the same metric and direction, or gate a new run",
        )
    champ = tags.get(TAG + "champion-value") or ""
    return GateResult(
        promoted=tags.get(TAG + "decision") == "promoted",
        model_version=str(version.version),
        challenger_value=value,
        champion_value=float(champ) if champ else None,
        champion_version=tags.get(TAG + "champion-version", ""),
        reason=tags.get(TAG + "reason", ""),
        metric=req.metric,
        model_name=req.model_name,
        rerun=True,
        run_url=run_url,
        champion_run_url=tags.get(TAG + "champion-run-url", ""),
        champion_run_id=tags.get(TAG + "champion-run-id", ""),
    )


def _register(client, req: GateRequest, run, tracking: trk.Tracking):
    """The version of model_name registered from this run: the existing one, else a new one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name, run_id = req.model_name, run.info.run_id

    def create_model():
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "INVALID_PARAMETER_VALUE":
                raise InputError(
                    "model-name",
                    f"MLflow refuses the name '{name}' ({str(exc.message)[:160]})",
                    "use letters, digits, _ - . and spaces, e.g. sentiment",
                ) from exc
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def existing():
        found = client.search_model_versions(f"name = '{_quote(name)}' and run_id = '{run_id}'")
        return sorted(found, key=lambda v: int(v.version))

    mlflow_call(create_model, "create registered model", tracking)
    found = mlflow_call(existing, "search model versions", tracking)
    if found:
        return found[0]
    uri = req.model_uri.strip()
    if not uri:
        uri = mlflow_call(lambda: find_model_uri(run, client, tracking), "find the run's model", tracking)
    try:
        version = trk.call(
            lambda: mlflow.register_model(uri, name, await_registration_for=0), "register model version", tracking
        )
    except MlflowException as exc:
        raise InputError(
            "model-uri",
            f"cannot register '{uri}': {str(exc).splitlines()[0][:200]}",
            "pass the URI of a model the run logged (models:/<id> or runs:/<run>/<path>)",
        ) from exc
    if version.run_id and version.run_id != run_id:
        raise InputError(
            "model-uri",
            f"'{uri}' belongs to run {version.run_id}, not {run_id}",
            "pass a model logged by the gated run",
        )
    return mlflow_call(lambda: client.get_model_version(name, version.version), "read model version", tracking)


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
