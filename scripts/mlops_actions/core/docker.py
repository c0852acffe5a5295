"""The Docker engine and HTTP probes shared by push-image, health-check and the local services: the
client, registry login (ECR too), waiting for a container's endpoint and its last log lines."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request

from . import gha, images
from .errors import InputError, StageError, TransientError, scrub
from .retry import retry_or_raise

MAX_WAIT = 86_400.0  # seconds: no wait for a server outlives a day


ECR = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com$")


def login_registry(ref: images.ImageRef, registry_input: str) -> str:
    registry = (registry_input or "").strip() or ref.registry
    if registry == images.DOCKER_HUB:
        return "https://index.docker.io/v1/"
    return registry


def engine():
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except DockerException as exc:
        raise StageError(
            f"no Docker engine answers ({str(exc).splitlines()[0][:120]})",
            "run on a runner with Docker (ubuntu-latest) or start dockerd",
        ) from exc


def ecr_password(registry: str) -> tuple[str, str]:
    try:
        import boto3
    except ImportError as exc:
        raise InputError(
            "password",
            f"no password for ECR registry {registry}",
            "pass one (aws ecr get-login-password) or install mlops-actions[ecr] with AWS credentials",
        ) from exc
    import base64

    region = registry.split(".")[3]
    token = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0][
        "authorizationToken"
    ]
    user, _, password = base64.b64decode(token).decode().partition(":")
    return user, password


def login(client, registry: str, username: str, password: str) -> None:
    from docker.errors import APIError

    if ECR.match(registry) and not password:
        username, password = ecr_password(registry)
    if not password:
        return
    gha.mask(password)
    if not username:
        raise InputError(
            "username", f"a password was given for {registry} but no username", "set username (for GHCR: github.actor)"
        )

    def attempt():
        try:
            return client.login(username=username, password=password, registry=registry, reauth=True)
        except APIError as exc:
            text = scrub(str(exc.explanation or exc), password)
            if exc.status_code in (401, 403) or "unauthorized" in text.lower() or "denied" in text.lower():
                raise InputError(
                    "password",
                    f"registry {registry} refused the login for '{username}' ({text[:120]})",
                    "check the registry username/password secrets",
                ) from exc
            raise TransientError(f"login to {registry}: {text[:160]}") from exc

    retry_or_raise(
        attempt,
        what=f"login to {registry}",
        input_name="registry",
        fix="check the registry address and that it is reachable from the runner",
    )


def wait_for_endpoint(container, port: int, path: str, timeout: float, started: float, prefix: str, fix: str) -> str:
    """Wait until the container's published ``port`` answers 200 on ``path``; return its base URL.
    A container that exits, or no answer within ``timeout`` seconds of ``started``, is a StageError
    with the container's last log lines. Used by the smoke test and the health check."""
    host = os.environ.get("MLOPS_SMOKE_HOST", "127.0.0.1")
    base = ""
    while True:
        container.reload()
        if container.status in ("exited", "dead"):
            code = (container.attrs.get("State") or {}).get("ExitCode")
            raise StageError(
                f"{prefix}the container exited with code {code} before {path} answered: "
                f"{tail(container) or 'no output'}",
                "run the image locally to see why the server does not start",
            )
        if not base:
            bindings = ((container.attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp")
            if bindings:
                base = f"http://{host}:{bindings[0]['HostPort']}"
        if base and http_status(base + path) == 200:
            return base
        if time.monotonic() - started > timeout:
            raise StageError(
                f"{prefix}{path} did not answer 200 within {timeout:g}s: {tail(container) or 'no output'}", fix
            )
        time.sleep(0.5)


def http_status(url: str, headers: dict[str, str] | None = None, timeout: float = 2) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def tail(container, lines: int = 5) -> str:
    try:
        text = container.logs(tail=lines).decode(errors="replace").strip()
        return " | ".join(text.splitlines()[-lines:])[:400]
    except Exception:  # noqa: BLE001
        return ""


def invoke(base: str, body: bytes, timeout: float, container, prefix: str, fix: str) -> list:
    """POST ``body`` to the server's /invocations and return its non-empty ``predictions``; an HTTP
    error (``fix`` says what to check), an answer that is not JSON, or one without predictions is a
    StageError starting with ``prefix``. Used by the smoke test and the health check."""
    request = urllib.request.Request(
        base + "/invocations", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()[:300].decode(errors="replace")
        raise StageError(f"{prefix}/invocations answered HTTP {exc.code}: {text}", fix) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StageError(
            f"{prefix}/invocations gave no JSON answer ({exc.__class__.__name__}): {tail(container)}",
            "run the image locally to see why",
        ) from exc
    preds = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(preds, list) or not preds:
        raise StageError(
            f"{prefix}/invocations gave no predictions: {str(answer)[:200]}", "check the model's predict output"
        )
    return preds
