"""Where MLflow lives and how to reach it: URI resolution (DagsHub included), credentials,
a preflight that turns 401/unreachable into one-line errors, retries and run links."""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import requests

from . import gha
from .errors import InputError, StageError, TransientError
from .retry import retry

T = TypeVar("T")

_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SCHEMES = {"http", "https", "sqlite", "file", "postgresql", "mysql", "mssql", "databricks"}
LOCAL_DIR = ".mlops"


@dataclass(frozen=True)
class Tracking:
    uri: str
    username: str | None = None
    password: str | None = None

    @property
    def is_http(self) -> bool:
        return self.uri.startswith(("http://", "https://"))

    @property
    def display_uri(self) -> str:
        """The URI without any user:password part, safe to print and to store."""
        parts = urllib.parse.urlsplit(self.uri)
        if parts.username or parts.password:
            host = parts.hostname or ""
            if parts.port:
                host += f":{parts.port}"
            return urllib.parse.urlunsplit(parts._replace(netloc=host))
        return self.uri

    def run_url(self, experiment_id: str, run_id: str) -> str:
        if not self.is_http:
            return ""
        return f"{self.display_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def local_artifact_root(self) -> str | None:
        """For a sqlite store, keep artifacts next to the database (not in ./mlruns of the cwd)."""
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri[len("sqlite:///"):])
            return (db.parent / "mlartifacts").resolve().as_uri()
        return None


def default_uri(workspace: str | os.PathLike[str] | None = None) -> str:
    base = Path(workspace or os.environ.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    return f"sqlite:///{base / LOCAL_DIR / 'mlflow.db'}"


def resolve(
    tracking_uri: str | None,
    dagshub_repo: str | None,
    workspace: str | None = None,
    env: dict[str, str] | None = None,
) -> Tracking:
    """Pick the tracking URI from the inputs, or the embedded local default, and the credentials
    from the environment only (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or a DagsHub
    token in DAGSHUB_USER_TOKEN)."""
    env = dict(os.environ if env is None else env)
    tracking_uri = (tracking_uri or "").strip()
    dagshub_repo = (dagshub_repo or "").strip()
    username = env.get("MLFLOW_TRACKING_USERNAME") or None
    password = env.get("MLFLOW_TRACKING_PASSWORD") or env.get("DAGSHUB_USER_TOKEN") or None
    if tracking_uri and dagshub_repo:
        raise InputError("dagshub-repo", "given together with tracking-uri", "set only one of the two")
    if dagshub_repo:
        if not _REPO_RE.match(dagshub_repo):
            raise InputError("dagshub-repo", f"'{dagshub_repo}' is not owner/name", "write it as owner/name, e.g. alice/rice")
        uri = f"https://dagshub.com/{dagshub_repo}.mlflow"
        if not (username and password):
            raise InputError(
                "dagshub-repo",
                "DagsHub needs credentials and none were found",
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (a DagsHub token) from secrets",
            )
    elif tracking_uri:
        scheme = urllib.parse.urlsplit(tracking_uri).scheme.split("+")[0]
        if scheme not in _SCHEMES:
            raise InputError(
                "tracking-uri",
                f"'{_strip_userinfo(tracking_uri)}' has no supported scheme",
                "use http(s)://host:port of an MLflow server, a DagsHub .mlflow URL, or sqlite:///path.db",
            )
        parts = urllib.parse.urlsplit(tracking_uri)
        if parts.password:
            raise InputError(
                "tracking-uri",
                "contains a password",
                "remove it from the URI and pass MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD as secrets",
            )
        uri = tracking_uri
    else:
        uri = default_uri(workspace)
    if password:
        gha.mask(password)
    return Tracking(uri=uri, username=username, password=password)


def _strip_userinfo(uri: str) -> str:
    return Tracking(uri).display_uri


def activate(tracking: Tracking) -> None:
    """Point the mlflow library (and child processes) at the server, with bounded HTTP retries so
    our own backoff decides how long to wait."""
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = tracking.uri
    if tracking.username:
        os.environ["MLFLOW_TRACKING_USERNAME"] = tracking.username
    if tracking.password:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = tracking.password
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    if tracking.uri.startswith("sqlite:///"):
        Path(tracking.uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking.uri)


def preflight(tracking: Tracking, input_name: str = "tracking-uri") -> None:
    """Fail fast, with the right input named, when an HTTP server is unreachable or refuses us."""
    if not tracking.is_http:
        return
    url = tracking.uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    auth = (tracking.username, tracking.password) if tracking.username and tracking.password else None

    def probe() -> requests.Response:
        try:
            resp = requests.get(url, params={"max_results": 1}, auth=auth, timeout=15)
        except requests.RequestException as exc:
            raise TransientError(f"cannot reach {tracking.display_uri} ({exc.__class__.__name__})") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TransientError(f"{tracking.display_uri} answered HTTP {resp.status_code}")
        return resp

    try:
        resp = retry(probe, what="MLflow tracking server")
    except TransientError as exc:
        raise InputError(
            input_name,
            f"{exc.problem} after retries",
            "check the URL and that the MLflow server is up and reachable from the runner",
        ) from exc
    if resp.status_code in (401, 403):
        raise InputError(
            "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD",
            f"{tracking.display_uri} answered HTTP {resp.status_code} ({'no credentials given' if auth is None else 'credentials refused'})",
            "pass valid tracking credentials as secrets in env",
        )
    if resp.status_code != 200:
        raise InputError(
            input_name,
            f"{tracking.display_uri} answered HTTP {resp.status_code} to the MLflow REST API",
            "point it at the root URL of an MLflow tracking server",
        )


_TRANSIENT_MARKERS = (
    "Max retries exceeded",
    "Connection refused",
    "ConnectionError",
    "Read timed out",
    "Temporary failure",
    "503",
    "502",
    "504",
    "TEMPORARILY_UNAVAILABLE",
)


def call(fn: Callable[[], T], what: str, tracking: Tracking) -> T:
    """Run one MLflow client call with backoff on transient failures; a final failure names the server."""
    from mlflow.exceptions import MlflowException

    def attempt() -> T:
        try:
            return fn()
        except MlflowException as exc:
            text = str(exc)
            if any(m in text for m in _TRANSIENT_MARKERS):
                raise TransientError(f"{what}: {text.splitlines()[0][:160]}") from exc
            if "401" in text or "403" in text or "Unauthorized" in text or "PERMISSION_DENIED" in text:
                raise InputError(
                    "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD",
                    f"{tracking.display_uri} refused {what}",
                    "pass credentials that may read and write this experiment",
                ) from exc
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"{what}: {exc.__class__.__name__}") from exc

    try:
        return retry(attempt, what=what)
    except TransientError as exc:
        raise StageError(
            f"MLflow at {tracking.display_uri} failed during {what} ({exc.problem})",
            "check that the tracking server is up, then re-run the job",
        ) from exc
