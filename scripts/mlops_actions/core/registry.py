"""A small client for the OCI distribution (Docker registry HTTP API v2): manifests, blobs, tags,
with basic auth or bearer tokens (the WWW-Authenticate challenge decides) and retries with backoff
on transient failures (connection errors, 5xx, 429)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Iterable

import requests

from . import gha, images
from .errors import InputError, StageError, TransientError
from .retry import retry_or_raise

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def api_host(registry: str) -> str:
    return "registry-1.docker.io" if registry == images.DOCKER_HUB else registry


def repository_path(ref: images.ImageRef) -> str:
    if ref.registry == images.DOCKER_HUB and "/" not in ref.repository:
        return "library/" + ref.repository
    return ref.repository


def base_url(registry: str) -> str:
    """https, except for loopback registries and those listed in MLOPS_INSECURE_REGISTRIES
    (the Docker engine's rule for insecure registries)."""
    host = api_host(registry)
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") else host
    insecure = {h.strip() for h in os.environ.get("MLOPS_INSECURE_REGISTRIES", "").split(",") if h.strip()}
    loopback = name == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(name).is_loopback
    return f"{'http' if loopback or host in insecure else 'https'}://{host}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('bearer'|'basic', params) of a WWW-Authenticate header."""
    scheme, _, rest = (header or "").strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE.findall(rest))


class Registry:
    """One registry host with one set of credentials. ``scopes`` are requested together when the
    registry hands out bearer tokens (a cross-repository mount needs pull on the source too)."""

    def __init__(
        self, registry: str, username: str = "", password: str = "", scopes: Iterable[str] = (), input_prefix: str = ""
    ):
        self.registry = registry
        self.url = base_url(registry)
        self.username = username
        self.password = password
        self.scopes = list(scopes)
        self.input_prefix = input_prefix
        self.session = requests.Session()
        self._auth_header: str | None = None
        if password:
            gha.mask(password)

    # -- auth ---------------------------------------------------------------------------------
    def _authenticate(self, challenge: str) -> None:
        scheme, params = parse_challenge(challenge)
        creds = (self.username, self.password) if self.password else None
        if scheme == "basic":
            if not creds:
                raise self._refused("asks for credentials and none were given")
            self._auth_header = requests.auth._basic_auth_str(*creds)
            return
        if scheme != "bearer" or not params.get("realm"):
            raise StageError(
                f"registry {self.registry} asked for unsupported auth '{challenge[:80]}'",
                "use a registry with basic or bearer token auth",
            )
        query: list[tuple[str, str]] = [("service", params["service"])] if params.get("service") else []
        scopes = list(dict.fromkeys(([params["scope"]] if params.get("scope") else []) + self.scopes))
        query += [("scope", s) for s in scopes]

        def fetch() -> requests.Response:
            try:
                resp = requests.get(params["realm"], params=query, auth=creds, timeout=30)
            except requests.RequestException as exc:
                raise TransientError(f"token from {params['realm']}: {exc.__class__.__name__}") from exc
            if resp.status_code >= 500 or resp.status_code == 429:
                raise TransientError(f"token from {params['realm']}: HTTP {resp.status_code}")
            return resp

        resp = self._retry(fetch, "get a registry token")
        if resp.status_code in (401, 403):
            raise self._refused(f"token service refused the credentials (HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise StageError(
                f"registry {self.registry}: token service answered HTTP {resp.status_code}",
                "check the registry address",
            )
        body = resp.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise StageError(f"registry {self.registry}: the token service returned no token", "check the registry")
        gha.mask(token)
        self._auth_header = f"Bearer {token}"

    def _refused(self, problem: str) -> InputError:
        name = f"{self.input_prefix}password" if self.input_prefix else "password"
        return InputError(
            name,
            f"registry {self.registry} {problem}",
            "check the registry username and password secrets and their permissions",
        )

    def _retry(self, fn, what: str):
        return retry_or_raise(
            fn,
            what=what,
            message=f"registry {self.registry}: " + "{problem} after retries",
            fix="check that the registry is up and reachable, then re-run",
        )

    # -- requests -----------------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, what: str, ok: tuple[int, ...] = (200,), stream: bool = False, **kwargs
    ) -> requests.Response:
        """One API call with auth and retries. Statuses outside ``ok`` (and 401/403, 404) are
        returned to the caller only when listed; 5xx/429/connection errors are retried."""
        url = path if path.startswith("http") else self.url + path
        if (
            urllib.parse.urlsplit(url)[:2] != urllib.parse.urlsplit(self.url)[:2]
        ):  # a Link or Location naming another host
            raise StageError(
                f"registry {self.registry} sent {what} to another host ({urllib.parse.urlsplit(url).netloc[:80]})",
                "check the registry address; credentials are sent to that registry only",
            )
        data = kwargs.pop("data", None)

        def attempt() -> requests.Response:
            for _ in range(2):
                headers = dict(kwargs.get("headers") or {})
                if self._auth_header:
                    headers["Authorization"] = self._auth_header
                if hasattr(data, "seek"):
                    data.seek(0)
                try:
                    resp = self.session.request(
                        method,
                        url,
                        headers=headers,
                        data=data,
                        stream=stream,
                        timeout=300,
                        allow_redirects=True,
                        params=kwargs.get("params"),
                    )
                except requests.RequestException as exc:
                    raise TransientError(f"{what}: {exc.__class__.__name__}") from exc
                if (
                    resp.status_code == 401
                    and "WWW-Authenticate" in resp.headers
                    and not (self._auth_header and self._auth_header.startswith("Basic"))
                ):
                    self._authenticate(resp.headers["WWW-Authenticate"])
                    continue
                break
            if resp.status_code >= 500 or resp.status_code == 429:
                after = resp.headers.get("Retry-After")
                raise TransientError(
                    f"{what}: HTTP {resp.status_code}", retry_after=float(after) if after and after.isdigit() else None
                )
            if resp.status_code in (401, 403) and resp.status_code not in ok:
                raise self._refused(f"refused {what} (HTTP {resp.status_code})")
            if resp.status_code not in ok:
                raise StageError(
                    f"registry {self.registry}: {what} answered HTTP {resp.status_code}: {resp.text[:200]}",
                    "check the image reference",
                )
            return resp

        return self._retry(attempt, what)

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest from the header or '') of a manifest; 404 → None."""
        resp = self._manifest("GET", repo, reference, f"read manifest {repo}@{reference}")
        if resp.status_code == 404:
            return b"", "", ""
        media = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return resp.content, media, resp.headers.get("Docker-Content-Digest", "")

    def manifest_digest(self, repo: str, reference: str) -> str:
        resp = self._manifest("HEAD", repo, reference, f"check manifest {repo}:{reference}")
        return resp.headers.get("Docker-Content-Digest", "") if resp.status_code == 200 else ""

    def _manifest(self, method: str, repo: str, reference: str, what: str) -> requests.Response:
        """GET or HEAD a manifest in any of the types we copy; 200 or 404."""
        accept = {"Accept": ", ".join(MANIFEST_TYPES)}
        return self.request(method, f"/v2/{repo}/manifests/{reference}", what=what, ok=(200, 404), headers=accept)

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            what=f"put manifest {repo}:{reference}",
            ok=(201, 200),
            data=body,
            headers={"Content-Type": media_type},
        )
        return resp.headers.get("Docker-Content-Digest", "")

    def has_blob(self, repo: str, digest: str) -> bool:
        return (
            self.request(
                "HEAD", f"/v2/{repo}/blobs/{digest}", what=f"check blob {digest[:19]}", ok=(200, 404)
            ).status_code
            == 200
        )

    def tags(self, repo: str) -> list[str]:
        """Every tag of a repository (following Link pagination); [] when the repository does not exist."""
        found: list[str] = []
        path = f"/v2/{repo}/tags/list?n=1000"
        while path:
            resp = self.request("GET", path, what=f"list tags of {repo}", ok=(200, 404))
            if resp.status_code == 404:
                return found
            found += (resp.json() or {}).get("tags") or []
            link = resp.headers.get("Link", "")
            m = re.match(r"<([^>]+)>", link)
            path = urllib.parse.urljoin(self.url + "/", m.group(1)) if m else ""
        return found
