"""Stage health-check: pull the published serving image, run it, wait for ``/health``, send one
prediction (the given payload or the input example baked into the image), and always remove the
container. A server that exits or does not answer in time fails the stage with its last log lines.
``timeout`` is a finite number of seconds above 0 (at most a day); ``port`` a whole number 1-65535.

An image with a challenger beside the champion (render-dockerfile's challenger-dir) runs with
SHADOW_RATIO=1: every probe is scored by both, and the stage reports the challenger's agreement with
the champion and both models' latency from the server's ``/monitoring``."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..core import gha, images
from ..core.docker import MAX_WAIT, engine, invoke, login, login_registry, wait_for_endpoint
from ..core.errors import InputError, StageError, TransientError, positive_number, scrub
from ..core.retry import retry_or_raise

EXAMPLE_IN_IMAGE = "/app/model/serving_input_example.json"
CHALLENGER_LABEL = "io.github.mlops-actions.challenger.model-sha256"
SHADOW_PROBES = 5  # requests sent to an image with a challenger, each also scored by it


@dataclass
class HealthRequest:
    image: str
    registry: str = ""
    username: str = ""
    password: str = ""
    payload: str = ""
    timeout: str | float = 180
    port: str | int = 8080
    pull: bool = True


@dataclass
class HealthResult:
    image: str
    healthy: bool
    latency_ms: int
    prediction: str
    ready_seconds: float
    monitoring: dict | None = None  # the server's /monitoring after the shadow probes, with a challenger

    def outputs(self) -> dict[str, object]:
        shadow = (self.monitoring or {}).get("shadow") or {}
        return {
            "healthy": "true" if self.healthy else "false",
            "latency-ms": str(self.latency_ms),
            "prediction": self.prediction,
            "challenger-agreement": "" if shadow.get("agreement") is None else str(shadow["agreement"]),
        }

    def summary(self) -> str:
        text = (
            f"### 🩺 health-check\n`{self.image}`: /health after {self.ready_seconds:.1f}s, prediction in "
            f"{self.latency_ms} ms\n\n" + gha.md_table(["prediction"], [[f"`{self.prediction}`"]])
        )
        if not self.monitoring:
            return text
        rows = []
        for role in ("champion", "challenger"):
            m = self.monitoring.get(role) or {}
            lat = m.get("latency_ms") or {}
            rows.append(
                [
                    role,
                    f"`{m.get('run_id', '')}`",
                    str(m.get("scorings", 0)),
                    str(lat.get("p50", "–")),
                    str(lat.get("mean", "–")),
                ]
            )
        shadow = self.monitoring.get("shadow") or {}
        agree = shadow.get("agreement")
        return (
            f"{text}\n\n**Shadow probes** ({SHADOW_PROBES} requests scored by both models): the challenger agrees on "
            f"{shadow.get('agreeing_rows', 0)} of {shadow.get('rows', 0)} rows"
            f"{'' if agree is None else f' ({agree:.1%})'}\n\n"
            + gha.md_table(["model", "run", "scorings", "p50 ms", "mean ms"], rows)
        )


def health_check(req: HealthRequest) -> HealthResult:
    ref = images.parse(req.image, "image")
    timeout = positive_number(req.timeout, "timeout", maximum=MAX_WAIT, unit="s", example="seconds to wait for /health")
    port = int(
        positive_number(req.port, "port", integer=True, maximum=65535, example="the container's TCP port, e.g. 8080,")
    )
    body: bytes | None = None
    if req.payload:
        path = Path(req.payload)
        if not path.is_file():
            raise InputError(
                "payload",
                f"'{req.payload}' not found",
                "give a JSON request body file, or leave it empty for the image's input example",
            )
        body = path.read_bytes()
        try:
            json.loads(body)
        except ValueError as exc:
            raise InputError(
                "payload", f"'{req.payload}' is not JSON ({exc})", "give a JSON request body for /invocations"
            ) from None
    if req.password:
        gha.mask(req.password)
    client = engine()
    reference = req.image.strip()
    if req.pull:
        registry = login_registry(ref, req.registry)
        with gha.group(f"pull {reference}"):
            login(client, registry, req.username, req.password)
            _pull(client, reference, req.password)
    container = None
    try:
        try:
            labels = client.images.get(reference).labels or {}
            env = {"SHADOW_RATIO": "1"} if labels.get(CHALLENGER_LABEL) else {}
            container = client.containers.run(
                reference, detach=True, ports={f"{port}/tcp": ("127.0.0.1", None)}, environment=env
            )
        except Exception as exc:  # engine errors (no such image, bad entrypoint) as one line
            raise StageError(
                f"cannot start {reference}: {str(exc).splitlines()[0][:300]}",
                "check the image reference and that it is a serving image",
            ) from exc
        started = time.monotonic()
        base = wait_for_endpoint(
            container,
            port,
            "/health",
            timeout,
            started,
            "",
            "check that the model loads and the server listens on the port; raise timeout for slow models",
        )
        ready = time.monotonic() - started
        print(f"/health answered 200 after {ready:.1f}s")
        if body is None:
            body = _example_from(container)
        if body is None:
            raise InputError(
                "payload",
                f"the image has no input example at {EXAMPLE_IN_IMAGE}",
                "give a JSON request body file for /invocations",
            )
        t0 = time.monotonic()
        preds = invoke(
            base, body, max(10.0, timeout), container, "", "check that the payload matches the model's signature"
        )
        latency = int(round((time.monotonic() - t0) * 1000))
        prediction = json.dumps(preds[:20], separators=(",", ":"), default=str)
        gha.log(f"prediction in {latency} ms: {prediction[:300]}")
        monitoring = _shadow_probes(base, body, timeout, container) if env else None
        return HealthResult(
            image=reference,
            healthy=True,
            latency_ms=latency,
            prediction=prediction,
            ready_seconds=ready,
            monitoring=monitoring,
        )
    finally:
        if container is not None:
            with contextlib.suppress(Exception):  # cleanup must not mask the real error
                container.remove(force=True)


def _shadow_probes(base: str, body: bytes, timeout: float, container) -> dict:
    """Send SHADOW_PROBES more requests, wait until the challenger has scored them all (it does so
    after each answer), and return /monitoring."""
    import urllib.request

    for _ in range(SHADOW_PROBES - 1):  # the probe above was the first
        invoke(base, body, max(10.0, timeout), container, "", "check that the payload matches the model's signature")
    deadline = time.monotonic() + max(10.0, timeout)
    while True:
        with urllib.request.urlopen(f"{base}/monitoring", timeout=10) as resp:
            report = json.loads(resp.read())
        done = sum((report.get("shadow") or {}).get("requests", {}).values())
        if done >= SHADOW_PROBES or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    shadow = report.get("shadow") or {}
    gha.log(
        f"shadow: the challenger agrees on {shadow.get('agreeing_rows', 0)} of {shadow.get('rows', 0)} rows; "
        f"latency p50 champion {(report.get('champion') or {}).get('latency_ms', {}).get('p50')} ms, "
        f"challenger {(report.get('challenger') or {}).get('latency_ms', {}).get('p50')} ms"
    )
    return report


def _pull(client, reference: str, secret: str) -> None:
    from docker.errors import APIError, ImageNotFound, NotFound

    def attempt():
        try:
            for chunk in client.api.pull(reference, stream=True, decode=True):
                if "error" in chunk:
                    raise APIError(chunk["error"])
        except (ImageNotFound, NotFound) as exc:
            raise InputError(
                "image",
                f"'{reference}' not found in the registry",
                "pass the image output of push-image or promote-image",
            ) from exc
        except APIError as exc:
            text = scrub(str(exc.explanation or exc), secret)
            low = text.lower()
            if "not found" in low or "manifest unknown" in low:
                raise InputError(
                    "image",
                    f"'{reference}' not found in the registry ({text[:120]})",
                    "pass the image output of push-image or promote-image",
                ) from exc
            if "unauthorized" in low or "denied" in low or "authentication required" in low:
                raise InputError(
                    "password",
                    f"the registry refused the pull of {reference} ({text[:120]})",
                    "pass username and password with pull permission",
                ) from exc
            raise TransientError(f"pull {reference}: {text[:160]}") from exc

    retry_or_raise(attempt, what=f"pull {reference}", fix="check that the registry is up")


def _example_from(container) -> bytes | None:
    """The input example baked in the image (render-dockerfile copies the model to /app/model)."""
    try:
        stream, _ = container.get_archive(EXAMPLE_IN_IMAGE)
    except Exception:  # noqa: BLE001 - no such file
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = next((m for m in tar.getmembers() if m.isfile()), None)
        extracted = tar.extractfile(member) if member else None
        return extracted.read() if extracted else None
