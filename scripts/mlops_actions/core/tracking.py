"""Where MLflow lives and how to reach it: URI resolution (DagsHub included), credentials,
a preflight that turns 401/unreachable into one-line errors, retries and run links.

Resolution order: the ``tracking-uri`` input, the ``dagshub-repo`` input, ``MLFLOW_TRACKING_URI``
from the environment (how MLflow and DagsHub users usually configure it), and only when none is set
the sqlite store in the workspace. Credentials and TLS settings are MLflow's own environment
variables, read the way the mlflow client reads them (``mlflow.utils.rest_utils``):

* ``MLFLOW_TRACKING_USERNAME`` + ``MLFLOW_TRACKING_PASSWORD``: HTTP basic auth (MLflow sends them
  only as a pair, and prefers them to a token when both are set);
* ``MLFLOW_TRACKING_TOKEN``: ``Authorization: Bearer <token>``;
* DagsHub (a dagshub.com URI, or the host in ``DAGSHUB_CLIENT_HOST``): the username and a DagsHub
  token as the password, as DagsHub documents, or the token alone in ``DAGSHUB_USER_TOKEN`` (the
  dagshub client's variable), sent as basic auth with the token as password (and as the username
  unless ``DAGSHUB_USERNAME`` is set), which is what the dagshub client itself configures;
* ``MLFLOW_TRACKING_INSECURE_TLS`` (true/false/1/0) → ``verify=False``;
  ``MLFLOW_TRACKING_SERVER_CERT_PATH`` → ``verify=<CA bundle>`` (MLflow refuses both together);
  ``MLFLOW_TRACKING_CLIENT_CERT_PATH`` → ``cert=<path>``.

Every secret is masked (``::add-mask::``) as soon as it is read, and ``display_uri`` (what is
printed and written to step outputs) drops userinfo and redacts token-like query parameters.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

from . import gha
from .errors import InputError, StageError, TransientError
from .retry import retry_or_raise

T = TypeVar("T")

_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SCHEMES = {"http", "https", "sqlite", "file", "postgresql", "mysql", "mssql", "databricks"}
LOCAL_DIR = ".mlops"

# Where the URI came from (Tracking.source).
SOURCE_INPUT = "tracking-uri input"
SOURCE_DAGSHUB = "dagshub-repo input"
SOURCE_ENV = "MLFLOW_TRACKING_URI"
SOURCE_DEFAULT = "workspace sqlite (nothing set)"
_SOURCE_NAMES = {
    SOURCE_INPUT: "tracking-uri",
    SOURCE_DAGSHUB: "dagshub-repo",
    SOURCE_ENV: "MLFLOW_TRACKING_URI",
    SOURCE_DEFAULT: "tracking-uri",
}

BASIC_VARS = "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
TOKEN_VAR = "MLFLOW_TRACKING_TOKEN"
DAGSHUB_TOKEN_VAR = "DAGSHUB_USER_TOKEN"
INSECURE_VAR = "MLFLOW_TRACKING_INSECURE_TLS"
SERVER_CERT_VAR = "MLFLOW_TRACKING_SERVER_CERT_PATH"
CLIENT_CERT_VAR = "MLFLOW_TRACKING_CLIENT_CERT_PATH"
DAGSHUB_HOST = "dagshub.com"

# Query (and fragment) parameters whose value is a secret: redacted in display_uri, masked.
_SECRET_PARAM = re.compile(
    r"token|passw|pwd|secret|signature|credential|api[-_]?key|access[-_]?key|private[-_]?key|(^|[-_.])(key|sig|auth)$"
    r"|^(authorization|apikey|jwt|bearer|pass|code)$",
    re.IGNORECASE,
)
REDACTED = "***"


@dataclass(frozen=True)
class Tracking:
    uri: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    #: where ``uri`` came from: one of the SOURCE_* labels ("" when built directly)
    source: str = ""
    #: the variables the credentials came from, for error messages ("" when none were found)
    credentials_from: str = ""
    insecure_tls: bool = False
    server_cert_path: str | None = None
    client_cert_path: str | None = None

    def __repr__(self) -> str:  # never the password, the token or a secret in the URI
        return (
            f"Tracking(uri={self.display_uri!r}, username={self.username!r}, source={self.source!r}, "
            f"auth={self.auth!r}, "
            f"credentials_from={self.credentials_from!r}, verify={self.verify!r})"
        )

    @property
    def is_http(self) -> bool:
        return self.uri.startswith(("http://", "https://"))

    @property
    def display_uri(self) -> str:
        """The URI without any user:password part and with token-like query parameters redacted:
        safe to print and to store."""
        return redact_uri(self.uri)

    @property
    def input_name(self) -> str:
        """The input (or variable) to name in an error about the URI itself."""
        return _SOURCE_NAMES.get(self.source, "tracking-uri")

    @property
    def auth(self) -> str | None:
        """What the mlflow client sends: "basic" when username and password are both set (it
        prefers them to a token), else "bearer" with a token, else None."""
        if self.username and self.password:
            return "basic"
        if self.token:
            return "bearer"
        return None

    def describe(self) -> str:
        """One short line for logs and summaries: which store, and why that one."""
        shown = self.display_uri
        if self.source == SOURCE_DEFAULT:
            return f"{shown} (workspace sqlite store: no tracking-uri, dagshub-repo or MLFLOW_TRACKING_URI set)"
        return f"{shown} (from {self.source})" if self.source else shown

    def http_options(self) -> dict[str, Any]:
        """``requests`` keyword arguments equal to what the mlflow client sends this server:
        basic auth or a bearer header, ``verify`` and ``cert``."""
        options: dict[str, Any] = {"verify": self.verify}
        if self.auth == "basic":
            options["auth"] = (self.username, self.password)
        elif self.auth == "bearer":
            options["headers"] = {"Authorization": f"Bearer {self.token}"}
        if self.client_cert_path:
            options["cert"] = self.client_cert_path
        return options

    @property
    def verify(self) -> bool | str:
        """MlflowHostCreds.verify: the CA bundle when given, else not ignore_tls_verification."""
        if self.server_cert_path:
            return self.server_cert_path
        return not self.insecure_tls

    def run_url(self, experiment_id: str, run_id: str) -> str:
        if not self.is_http:
            return ""
        base = self.display_uri.split("#", 1)[0].split("?", 1)[0].rstrip("/")
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"

    def local_artifact_root(self) -> str | None:
        """For a sqlite store, keep artifacts next to the database (not in ./mlruns of the cwd)."""
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri[len("sqlite:///") :])
            return (db.parent / "mlartifacts").resolve().as_uri()
        return None


def default_uri(workspace: str | os.PathLike[str] | None = None) -> str:
    base = Path(workspace or os.environ.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    return f"sqlite:///{base / LOCAL_DIR / 'mlflow.db'}"


# -- URIs ---------------------------------------------------------------------------------------


def _redact_pairs(text: str) -> tuple[str, list[str]]:
    """``a=1&token=x`` → (``a=1&token=***``, [``x``]); anything that is not name=value stays."""
    out, secrets = [], []
    for pair in text.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and _SECRET_PARAM.search(urllib.parse.unquote_plus(name)):
            secrets.append(value)
            unquoted = urllib.parse.unquote_plus(value)
            if unquoted != value:
                secrets.append(unquoted)
            pair = f"{name}={REDACTED}"
        out.append(pair)
    return "&".join(out), secrets


def _uri_parts(uri: str) -> tuple[str, list[str]]:
    """The redacted URI and the secrets found in it (userinfo password, secret parameters)."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: show nothing of the authority
        return re.sub(r"//[^/?#]*", "//" + REDACTED, uri, count=1), []
    shown, secrets = uri, []
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, has_password, password = userinfo.partition(":")
        if has_password:
            secrets += [password, urllib.parse.unquote(password)]
        elif len(user) >= 16:  # a lone long user part is a token (https://<token>@host)
            secrets += [user, urllib.parse.unquote(user)]
        shown = shown.replace(parts.netloc, host, 1)
    for sep, piece in (("?", parts.query), ("#", parts.fragment)):
        if piece:
            redacted, found = _redact_pairs(piece)
            if found:
                shown = shown.replace(sep + piece, sep + redacted, 1)
                secrets += found
    return shown, [s for s in dict.fromkeys(secrets) if s]


def redact_uri(uri: str) -> str:
    """``uri`` without userinfo and with secret query/fragment parameters replaced by ***."""
    return _uri_parts(uri)[0]


def _strip_userinfo(uri: str) -> str:
    return redact_uri(uri)


def _check_uri(uri: str, name: str) -> None:
    """The scheme check and the no-password-in-the-URI rule, naming where the URI came from."""
    shown, secrets = _uri_parts(uri)
    for secret in secrets:
        gha.mask(secret)
    try:
        parts = urllib.parse.urlsplit(uri)
        password = parts.password
    except ValueError:
        raise InputError(name, f"'{shown}' is not a valid URI", _URI_FIX) from None
    scheme = parts.scheme.split("+")[0].lower() or ("databricks" if uri == "databricks" else "")
    if scheme not in _SCHEMES:
        raise InputError(name, f"'{shown}' has no supported scheme", _URI_FIX)
    if password:
        where = "the URI" if name == "tracking-uri" else name
        raise InputError(
            name,
            "contains a password",
            f"remove it from {where} and pass MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (or "
            "MLFLOW_TRACKING_TOKEN) as secrets",
        )
    if scheme in ("http", "https") and not parts.hostname:
        raise InputError(name, f"'{shown}' has no host", _URI_FIX)


_URI_FIX = "use http(s)://host:port of an MLflow server, a DagsHub .mlflow URL, or sqlite:///path.db"


def is_dagshub(uri: str, env: Mapping[str, str] | None = None) -> bool:
    """A DagsHub-hosted MLflow: dagshub.com, or the instance named by DAGSHUB_CLIENT_HOST."""
    env = os.environ if env is None else env
    try:
        host = (urllib.parse.urlsplit(uri).hostname or "").lower()
    except ValueError:
        return False
    if not host:
        return False
    hosts = {DAGSHUB_HOST}
    custom = (env.get("DAGSHUB_CLIENT_HOST") or "").strip()
    if custom:
        with contextlib.suppress(ValueError):
            hosts.add((urllib.parse.urlsplit(custom if "//" in custom else f"https://{custom}").hostname or "").lower())
    return host in hosts or host.endswith("." + DAGSHUB_HOST)


# -- resolution ---------------------------------------------------------------------------------


def resolve(
    tracking_uri: str | None,
    dagshub_repo: str | None,
    workspace: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Tracking:
    """Pick the tracking URI (``tracking-uri`` input, ``dagshub-repo`` input, ``MLFLOW_TRACKING_URI``,
    else the workspace sqlite store) and the credentials and TLS settings from the environment."""
    env = dict(os.environ if env is None else env)

    def var(name: str) -> str | None:
        return (env.get(name) or "").strip() or None

    tracking_uri = (tracking_uri or "").strip()
    dagshub_repo = (dagshub_repo or "").strip()
    env_uri = var("MLFLOW_TRACKING_URI")
    if tracking_uri and dagshub_repo:
        raise InputError("dagshub-repo", "given together with tracking-uri", "set only one of the two")
    if dagshub_repo:
        if not _REPO_RE.match(dagshub_repo):
            raise InputError(
                "dagshub-repo", f"'{dagshub_repo}' is not owner/name", "write it as owner/name, e.g. alice/rice"
            )
        uri, source = f"https://{DAGSHUB_HOST}/{dagshub_repo}.mlflow", SOURCE_DAGSHUB
    elif tracking_uri:
        _check_uri(tracking_uri, "tracking-uri")
        uri, source = tracking_uri, SOURCE_INPUT
    elif env_uri:
        _check_uri(env_uri, "MLFLOW_TRACKING_URI")
        uri, source = env_uri, SOURCE_ENV
    else:
        uri, source = default_uri(workspace), SOURCE_DEFAULT

    creds = _credentials(uri, var, env)
    for secret in dict.fromkeys(
        (creds["password"], creds["token"], var(DAGSHUB_TOKEN_VAR), var("MLFLOW_TRACKING_PASSWORD"), var(TOKEN_VAR))
    ):
        gha.mask(secret)
    if dagshub_repo and not (creds["username"] and creds["password"]) and not creds["token"]:
        raise InputError(
            "dagshub-repo",
            "DagsHub needs credentials and none were found",
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (a DagsHub token), or the token alone in "
            "DAGSHUB_USER_TOKEN, from secrets",
        )
    tracking = Tracking(
        uri=uri, source=source, **creds, **(_tls(var) if uri.startswith(("http://", "https://")) else {})
    )
    if tracking.is_http and tracking.auth == "basic" and creds["token"]:
        gha.warning(
            f"both {BASIC_VARS} and {TOKEN_VAR} are set: MLflow sends the username and password and ignores the token"
        )
    if tracking.is_http and tracking.insecure_tls:
        gha.warning(f"{INSECURE_VAR}=true: the TLS certificate of {tracking.display_uri} is not verified")
    return tracking


def _credentials(uri: str, var: Callable[[str], str | None], env: Mapping[str, str]) -> dict[str, Any]:
    username, password, token = var("MLFLOW_TRACKING_USERNAME"), var("MLFLOW_TRACKING_PASSWORD"), var(TOKEN_VAR)
    dagshub_token = var(DAGSHUB_TOKEN_VAR) if is_dagshub(uri, env) else None
    found = []
    if username and password:
        found.append(BASIC_VARS)
    elif dagshub_token and not token:
        # DagsHub: a username and the token as password (dagshub.init), or the token alone
        # (basic auth with the token as user and password, as the dagshub client configures DVC)
        if username:
            password = dagshub_token
            found.append(f"MLFLOW_TRACKING_USERNAME/{DAGSHUB_TOKEN_VAR}")
        else:
            username = var("DAGSHUB_USERNAME") or dagshub_token
            password = dagshub_token
            found.append(DAGSHUB_TOKEN_VAR if username == dagshub_token else f"DAGSHUB_USERNAME/{DAGSHUB_TOKEN_VAR}")
    if token:
        found.append(TOKEN_VAR)
    return {"username": username, "password": password, "token": token, "credentials_from": ", ".join(found)}


def _tls(var: Callable[[str], str | None]) -> dict[str, Any]:
    raw = var(INSECURE_VAR)
    insecure = False
    if raw is not None:
        if raw.lower() not in ("true", "false", "1", "0"):
            raise InputError(
                INSECURE_VAR,
                f"'{raw}' is not true or false",
                "set it to true (skip TLS verification), false, or leave it unset",
            )
        insecure = raw.lower() in ("true", "1")
    server_cert, client_cert = var(SERVER_CERT_VAR), var(CLIENT_CERT_VAR)
    if insecure and server_cert:
        raise InputError(
            INSECURE_VAR,
            f"set together with {SERVER_CERT_VAR} (MLflow refuses the two together)",
            f"keep {SERVER_CERT_VAR} to verify against that CA bundle, or {INSECURE_VAR}=true to skip verification, "
            "not both",
        )
    out: dict[str, Any] = {"insecure_tls": insecure}
    for name, value, key in (
        (SERVER_CERT_VAR, server_cert, "server_cert_path"),
        (CLIENT_CERT_VAR, client_cert, "client_cert_path"),
    ):
        if value is None:
            continue
        path = Path(value).expanduser()
        if not path.exists():
            what = (
                "a PEM CA bundle (or a folder of CA certificates)"
                if key == "server_cert_path"
                else "a PEM client certificate"
            )
            raise InputError(
                name, f"'{value}' does not exist on the runner", f"point it at {what} written in an earlier step"
            )
        # absolute: the training code runs in the project folder and reads it from the environment
        out[key] = str(path.resolve())
    return out


# -- using it -----------------------------------------------------------------------------------

_EXPORTED = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    TOKEN_VAR,
    INSECURE_VAR,
    SERVER_CERT_VAR,
    CLIENT_CERT_VAR,
)


def activate(tracking: Tracking) -> None:
    """Point the mlflow library (and child processes: the user's training code) at the server with
    its credentials and TLS settings, with bounded HTTP retries so our own backoff decides how long
    to wait."""
    import mlflow

    for name in _EXPORTED:  # mlflow fails on an empty INSECURE_TLS and skips TLS checks on an empty cert path
        if name in os.environ and not os.environ[name].strip():
            del os.environ[name]
    os.environ["MLFLOW_TRACKING_URI"] = tracking.uri
    for name, value in (
        ("MLFLOW_TRACKING_USERNAME", tracking.username),
        ("MLFLOW_TRACKING_PASSWORD", tracking.password),
        (TOKEN_VAR, tracking.token),
        (SERVER_CERT_VAR, tracking.server_cert_path),
        (CLIENT_CERT_VAR, tracking.client_cert_path),
        (INSECURE_VAR, "true" if tracking.insecure_tls else None),
    ):
        if value:
            os.environ[name] = value
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    if tracking.uri.startswith("sqlite:///"):
        Path(tracking.uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking.uri)


def auth_error(tracking: Tracking, problem: str, fix: str | None = None) -> InputError:
    """A 401/403 as one line naming the credential variables that were sent (or that are missing)."""
    dagshub = is_dagshub(tracking.uri)
    if tracking.auth == "bearer":
        name = TOKEN_VAR
    elif tracking.auth == "basic":
        name = tracking.credentials_from.split(", ")[0] if tracking.credentials_from else BASIC_VARS
    else:
        name = BASIC_VARS
    if fix is None:
        if tracking.auth is None:
            fix = f"pass MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or {TOKEN_VAR}, as secrets in env"
        else:
            fix = f"pass valid tracking credentials as secrets in env ({name})"
        if dagshub:
            fix += (
                "; for DagsHub: your username and a DagsHub token as the password, "
                "or the token alone in DAGSHUB_USER_TOKEN"
            )
    return InputError(name, problem, fix)


def _why_refused(tracking: Tracking, status: int) -> str:
    if tracking.auth == "basic":
        return "credentials refused" if status == 401 else "these credentials may not do this"
    if tracking.auth == "bearer":
        return "token refused" if status == 401 else "this token may not do this"
    if bool(tracking.username) != bool(tracking.password):
        have, missing = (
            ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
            if tracking.username
            else ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME")
        )
        return f"no credentials sent: {have} is set but {missing} is not, and MLflow sends only the pair"
    return "no credentials given"


def preflight(tracking: Tracking, input_name: str | None = None) -> None:
    """Fail fast, with the right input named, when an HTTP server is unreachable or refuses us.
    The probe carries exactly what the mlflow client would send (auth, verify, cert)."""
    if not tracking.is_http:
        return
    input_name = input_name or tracking.input_name
    url = tracking.uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    options = tracking.http_options()

    def probe() -> requests.Response:
        try:
            resp = requests.get(url, params={"max_results": 1}, timeout=15, **options)
        except requests.exceptions.SSLError as exc:
            raise _tls_error(tracking, exc) from exc
        except requests.RequestException as exc:
            raise TransientError(f"cannot reach {tracking.display_uri} ({exc.__class__.__name__})") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TransientError(f"{tracking.display_uri} answered HTTP {resp.status_code}")
        return resp

    resp = retry_or_raise(
        probe,
        what="MLflow tracking server",
        input_name=input_name,
        fix="check the URL and that the MLflow server is up and reachable from the runner",
    )
    if resp.status_code in (401, 403):
        raise auth_error(
            tracking,
            f"{tracking.display_uri} answered HTTP {resp.status_code} ({_why_refused(tracking, resp.status_code)})",
        )
    if resp.status_code != 200:
        raise InputError(
            input_name,
            f"{tracking.display_uri} answered HTTP {resp.status_code} to the MLflow REST API",
            "point it at the root URL of an MLflow tracking server",
        )


def _tls_error(tracking: Tracking, exc: Exception) -> InputError:
    reason = (
        "certificate verification failed"
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc)
        else "TLS handshake failed"
    )
    if tracking.server_cert_path:
        return InputError(
            SERVER_CERT_VAR,
            f"{tracking.display_uri}: {reason} against {tracking.server_cert_path}",
            "point it at the CA bundle that signed the server's certificate",
        )
    return InputError(
        SERVER_CERT_VAR,
        f"{tracking.display_uri}: {reason} ({exc.__class__.__name__})",
        f"set {SERVER_CERT_VAR} to the CA bundle that signed the server's certificate (or {INSECURE_VAR}=true to "
        "skip verification)",
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


# How MLflow words a 401/403: "failed with error code 403 != 200" (REST calls), "403 Client Error:
# Forbidden for url" (artifact downloads through requests), the error codes of its JSON body. A bare
# "401" anywhere in the text is not one: a URL's port or path may hold those digits.
_AUTH_STATUS = re.compile(
    r"error code (401|403)\b|\b(401|403) Client Error|\bHTTP (401|403)\b|status(?: code)?:? (401|403)\b"
)
_AUTH_CODES = ("UNAUTHENTICATED", "PERMISSION_DENIED", "UNAUTHORIZED")


def _refused_auth(exc: Exception, text: str) -> bool:
    code = str(getattr(exc, "error_code", "") or "")
    return code in _AUTH_CODES or bool(_AUTH_STATUS.search(text)) or any(c in text for c in _AUTH_CODES[:2])


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
            if _refused_auth(exc, text):
                raise auth_error(
                    tracking,
                    f"{tracking.display_uri} refused {what}",
                    "pass credentials that may read and write this experiment",
                ) from exc
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"{what}: {exc.__class__.__name__}") from exc

    return retry_or_raise(
        attempt,
        what=what,
        message=f"MLflow at {tracking.display_uri} failed during {what} " + "({problem})",
        fix="check that the tracking server is up, then re-run the job",
    )


def find_model_uri(run, client, tracking: Tracking, model_name: str | None = None) -> str:
    """The URI of the model the run logged: an MLflow 3 logged model, or a legacy run artifact."""
    import mlflow

    run_id = run.info.run_id
    models = call(
        lambda: mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}'",
            output_format="list",
        ),
        "search logged models",
        tracking,
    )
    if model_name:
        models = [m for m in models if m.name == model_name]
    if models:
        models.sort(key=lambda m: (m.name != "model", -(m.creation_timestamp or 0)))
        return f"models:/{models[0].model_id}"
    for entry in call(lambda: client.list_artifacts(run_id), "list artifacts", tracking):
        if entry.is_dir:
            inner = call(functools.partial(client.list_artifacts, run_id, entry.path), "list artifacts", tracking)
            if any(e.path.endswith("/MLmodel") for e in inner):
                return f"runs:/{run_id}/{entry.path}"
    which = f" named '{model_name}'" if model_name else ""
    raise StageError(
        f"run {run_id} logged no model{which}",
        "log one with mlflow.<flavor>.log_model(...) or mlflow.autolog(log_models=True) in the training code",
    )


_REMOTE_SCHEMES = (
    "models:/",
    "runs:/",
    "mlflow-artifacts:/",
    "s3://",
    "gs://",
    "wasbs://",
    "abfss://",
    "dbfs:/",
    "http://",
    "https://",
)


def check_model_uri(value: str, input_name: str) -> str:
    """A model URI names a model in MLflow or a remote store (models:/, runs:/, s3://...), never a
    path on the runner: a local path or file:// URI would copy the runner's files into the
    artifacts, and from there into the pull request and the image."""
    text = (value or "").strip()
    if text and (not text.startswith(_REMOTE_SCHEMES) or any(ord(c) < 32 for c in text)):
        raise InputError(
            input_name,
            f"'{text[:80]}' is not an MLflow model URI (a local path or file:// is never read)",
            "pass models:/<model-id> or runs:/<run-id>/<path>, or leave it empty for the run's model",
        )
    return text


def mlflow_call(fn, what: str, tracking: Tracking):
    """``tracking.call`` whose remaining MLflow errors (an unexpected answer, a refused path) end
    as one line naming the server instead of an exception."""
    from mlflow.exceptions import MlflowException

    try:
        return call(fn, what, tracking)
    except MlflowException as exc:
        text = " ".join(str(exc.message if hasattr(exc, "message") else exc).split())[:240]
        raise StageError(
            f"MLflow at {tracking.display_uri} failed during {what}: {text}",
            "check the tracking server (and its artifact store), then re-run the job",
        ) from exc


def read_run(client, run_id: str, tracking: Tracking, input_name: str = "run-id"):
    """The run ``run_id``, which must exist, be live (not deleted) and FINISHED: fetch-artifacts and
    gate take only what a training run completed. Anything else is an InputError naming the input."""
    from mlflow.exceptions import MlflowException

    def get_run():
        try:
            return client.get_run(run_id)
        except MlflowException as exc:
            if (
                exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
                or "not found" in str(exc).lower()
            ):
                raise InputError(
                    input_name,
                    f"no run '{run_id}' on {tracking.display_uri}",
                    "pass the run-id output of the train step against the same tracking-uri",
                ) from exc
            raise

    run = mlflow_call(get_run, "read run", tracking)
    stage = str(getattr(run.info, "lifecycle_stage", "") or "active")
    status = str(getattr(run.info, "status", "") or "")
    refusals = [  # (refused, problem, fix), in this order
        (
            stage != "active",
            f"run '{run_id}' is {stage} on {tracking.display_uri}",
            "pass the run-id of a live run (restore it in the MLflow UI, or train again)",
        ),
        (
            status != "FINISHED",
            f"run '{run_id}' is {status or 'in an unknown state'}, not FINISHED",
            "pass the run-id of a run the train step finished",
        ),
    ]
    for refused, problem, fix in refusals:
        if refused:
            raise InputError(input_name, problem, fix)
    return run
