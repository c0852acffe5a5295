"""Stage 5, push-image: build the context with the Docker engine, smoke-test the image, tag it and
push it. Nothing is tagged under the target name, and nothing pushed, unless the smoke test passed.

The build context holds plain files only: a symbolic link anywhere in it is refused naming
``context`` (see :mod:`mlops_actions.core.paths`), so no file of the runner can be sent to the engine
and baked into the image. ``smoke-timeout`` is a finite number of seconds above 0 (at most a day).

The built image's SBOM (``/sbom.cdx.json``, or where its ``io.github.mlops-actions.sbom`` label
points; written by render-dockerfile's template) is copied out of a container that is created but
never started, to ``$RUNNER_TEMP/mlops-sbom-<image id>.cdx.json`` (never inside the context): output
``sbom``, its top-level packages in the job summary. An image without one is no error.

A build cache that survives the runner: ``cache-from`` / ``cache-to`` in build-push-action's syntax
(``type=registry,ref=<name>:<tag>[,mode=min|max]``, or a bare ``<name>:<tag>``). The engine's own
builder, which the Docker SDK drives and every engine has, reads a registry cache as pulled images:
``ref`` holds the last final image, and with ``mode=max`` every named stage of the Dockerfile is kept
too, at ``<tag>-<stage>`` (``buildcache-builder`` for render-dockerfile's dependency stage). They are
pulled before the build (none yet, or unreadable: a notice, and the build runs without) and pushed
after the image was (a failed cache push is a warning: the image is out). A fresh runner then takes
the dependency layers from the registry and rebuilds only the model's."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core import gha, git, images, paths, sbom
from ..core.docker import ECR, MAX_WAIT, ecr_password, engine, invoke, login, login_registry, wait_for_endpoint
from ..core.errors import InputError, StageError, TransientError, positive_number, scrub
from ..core.images import SEMVER, normalize_version
from ..core.retry import retry_or_raise

CANDIDATE = "mlops-actions-candidate"
SBOM_LABEL = "io.github.mlops-actions.sbom"  # the image's SBOM path (render-dockerfile's images: /sbom.cdx.json)
SBOM_MAX_BYTES = 64 * 1024 * 1024


@dataclass
class PushRequest:
    context: Path
    image: str
    version: str = ""
    version_bump: str = ""
    extra_tags: list[str] = field(default_factory=list)
    registry: str = ""
    username: str = ""
    password: str = ""
    push: bool = True
    smoke_test: bool = True
    smoke_payload: Path | None = None
    smoke_timeout: float = 180.0
    default_branch: str = ""
    ref: str = ""
    sha: str = ""
    build_args: dict[str, str] = field(default_factory=dict)
    network: str = ""
    cache_from: list[str] = field(default_factory=list)
    cache_to: list[str] = field(default_factory=list)


@dataclass
class PushResult:
    image: str
    digest: str
    tags: list[str]
    image_id: str
    smoke: dict
    sbom: Sbom | None = None
    cache: BuildCache | None = None

    def outputs(self) -> dict[str, object]:
        return {
            "image": self.image,
            "digest": self.digest,
            "tags": "\n".join(self.tags),
            "image-id": self.image_id,
            "version": next((tag for tag in (full.rsplit(":", 1)[1] for full in self.tags) if SEMVER.match(tag)), ""),
            "sbom": str(self.sbom.path) if self.sbom and self.sbom.path else "",
            "cached-steps": str(self.cache.cached) if self.cache else "0",
            "smoke": smoke_line(self.smoke),
        }

    def summary(self) -> str:
        rows = [[f"`{t}`"] for t in self.tags]
        return (
            f"### 🚀 push-image\n{'pushed' if self.digest else 'built (not pushed)'} `{self.image}`\n\n"
            + gha.md_table(["tag"], rows)
            + f"\nSmoke test: {smoke_line(self.smoke, timings=True)}\n"
            + (self.cache.summary() if self.cache else "")
            + (self.sbom.summary() if self.sbom else "")
        )


@dataclass
class Sbom:
    """The image's SBOM, copied out of it: ``path`` (empty when the image has none, ``note`` says
    why), its top-level packages (name, version) and how many components it lists."""

    path: Path | None
    in_image: str = ""
    top_level: list[tuple[str, str]] = field(default_factory=list)
    components: int = 0
    note: str = ""

    def summary(self) -> str:
        if not self.path:
            return f"\nSBOM: none ({self.note})\n"
        head = (
            f"\nSBOM (CycloneDX JSON, `{self.in_image}` in the image, output `sbom`): {self.components} "
            f"components, {len(self.top_level)} top level\n\n"
        )
        rows = [[f"`{name}`", version] for name, version in self.top_level]
        return head + (gha.md_table(["top-level package", "version"], rows) if rows else "")


CACHE_TYPES = ("registry",)
CACHE_KEYS = ("type", "ref", "mode")


@dataclass(frozen=True)
class CacheRef:
    """One cache-from / cache-to entry: ``ref`` (name:tag) holds the final image; with mode=max each
    named stage too, at ``<ref>-<stage>``."""

    ref: str
    mode: str = "min"

    def stage(self, name: str) -> str:
        return f"{self.ref}-{name.lower()}"


def parse_cache(entries: list[str], input_name: str) -> list[CacheRef]:
    """build-push-action's cache syntax, the registry type: ``type=registry,ref=NAME:TAG[,mode=max]``
    or a bare ``NAME:TAG``. Anything else is refused naming the input and the fix."""
    fix = "write type=registry,ref=<registry>/<name>:buildcache (add ,mode=max to cache-to)"
    found: list[CacheRef] = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        fields = {"type": "registry", "ref": entry} if "=" not in entry else {}
        if not fields:
            for part in entry.split(","):
                key, sep, value = part.partition("=")
                key = key.strip().lower()
                if not sep or key not in CACHE_KEYS:
                    raise InputError(input_name, f"'{part.strip()}' in '{entry}' is not type, ref or mode", fix)
                fields[key] = value.strip()
        if fields.get("type", "") not in CACHE_TYPES:
            raise InputError(
                input_name,
                f"type={fields.get('type', '')} is not a cache the engine's builder can read (registry only)",
                fix,
            )
        ref = images.parse(fields.get("ref", ""), input_name, allow_tag=True)
        if not ref.tag or ref.digest:
            raise InputError(input_name, f"ref '{fields.get('ref', '')}' names no tag", fix)
        mode = fields.get("mode", "min").lower()
        if mode not in ("min", "max"):
            raise InputError(input_name, f"mode={mode} is not min or max", fix)
        found.append(CacheRef(f"{ref.name}:{ref.tag}", mode))
    return found


_STAGE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*\S+\s+AS\s+([A-Za-z][A-Za-z0-9_.-]*)\s*$", re.I | re.M)


def named_stages(dockerfile: Path) -> list[str]:
    """The Dockerfile's named stages (``FROM ... AS name``), first to last."""
    return list(dict.fromkeys(m.lower() for m in _STAGE.findall(dockerfile.read_text(encoding="utf-8"))))


@dataclass
class BuildCache:
    """What the build took from the registry cache and what it stored there."""

    pulled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    steps: int = 0
    cached: int = 0

    def summary(self) -> str:
        if not (self.pulled or self.missing or self.pushed):
            return ""
        lines = [f"\nBuild cache: {self.cached} of {self.steps} build steps from cache"]
        if self.pulled:
            lines.append(f"from {', '.join(f'`{r}`' for r in self.pulled)}")
        if self.missing:
            lines.append(f"(not in the registry yet: {', '.join(f'`{r}`' for r in self.missing)})")
        if self.pushed:
            lines.append(f"; stored for the next build: {', '.join(f'`{r}`' for r in self.pushed)}")
        return " ".join(lines) + "\n"


def pull_cache(client, caches: list[CacheRef], stages: list[str], secret: str) -> BuildCache:
    """Pull each cache image (the final one, and each named stage's), at the same time: the
    engine's builder reuses a layer only from an image it has. A cache not pushed yet, or
    unreadable, is a notice: the build runs without it."""
    from concurrent.futures import ThreadPoolExecutor

    refs = list(dict.fromkeys(ref for entry in caches for ref in [entry.ref] + [entry.stage(s) for s in stages]))
    with ThreadPoolExecutor(max_workers=min(4, len(refs) or 1)) as pool:
        outcomes = list(pool.map(lambda ref: _pull_cache_image(client, ref, secret), refs))
    cache = BuildCache()
    for ref, outcome in zip(refs, outcomes, strict=True):
        if outcome == "pulled":
            cache.pulled.append(ref)
        elif outcome == "missing":
            cache.missing.append(ref)
        else:
            gha.warning(f"push-image: cache-from {ref} could not be pulled ({outcome}); building without it")
    if cache.missing:
        gha.notice(f"push-image: no build cache at {', '.join(cache.missing)} yet: this build stores it (cache-to)")
    return cache


def _pull_cache_image(client, ref: str, secret: str) -> str:
    """'pulled', 'missing' (not in the registry yet) or the problem, scrubbed."""
    from docker.errors import APIError, ImageNotFound, NotFound

    name, tag = ref.rsplit(":", 1)
    try:
        images.check_tag(tag, "cache-from")
        retry_or_raise(functools.partial(_pull, client, name, tag, secret), what=f"pull {ref}", fix="none needed")
        return "pulled"
    except (NotFound, ImageNotFound):
        return "missing"
    except (APIError, StageError, InputError) as exc:
        text = scrub(str(exc), secret)
        return "missing" if "not found" in text.lower() or "manifest unknown" in text.lower() else text[:160]


def _pull(client, name: str, tag: str, secret: str) -> None:
    from docker.errors import APIError, ImageNotFound, NotFound

    try:
        for chunk in client.api.pull(name, tag=tag, stream=True, decode=True):
            if "error" in chunk:  # a failure after the pull started comes in the stream, not as a status
                raise APIError(str((chunk.get("errorDetail") or {}).get("message") or chunk["error"]))
    except (NotFound, ImageNotFound):
        raise
    except APIError as exc:
        text = scrub(str(exc), secret).lower()
        if "not found" in text or "manifest unknown" in text or "does not exist" in text:
            raise NotFound(text) from exc
        if exc.status_code and exc.status_code < 500 and exc.status_code != 429:
            raise StageError(f"pull {name}:{tag}: {text[:160]}", "check the cache ref and its pull permission") from exc
        raise TransientError(f"pull {name}:{tag}: {text[:160]}") from exc


def push_cache(
    client, caches: list[CacheRef], image_id: str, context: Path, req: PushRequest, cache: BuildCache
) -> None:
    """Store the cache: each ref gets the final image, and with mode=max each named stage (built
    again from the engine's own cache: every step hits). A failure is a warning: the image is out."""
    from docker.errors import APIError

    stages = named_stages(context / "Dockerfile")
    for entry in caches:
        targets = [(entry.ref, None)] + ([(entry.stage(s), s) for s in stages] if entry.mode == "max" else [])
        for ref, stage in targets:
            name, tag = ref.rsplit(":", 1)
            try:
                images.check_tag(tag, "cache-to")
                if stage is None:
                    client.images.get(image_id).tag(name, tag=tag)
                else:
                    build(
                        client,
                        context,
                        req.build_args,
                        req.network,
                        cache_from=cache.pulled,
                        target=stage,
                        tag=ref,
                        quiet=True,
                    )
                push_tag(client, name, tag, req.password)
                cache.pushed.append(ref)
            except (StageError, InputError, APIError) as exc:
                text = scrub(str(exc), req.password)[:200]
                gha.warning(f"push-image: cache-to {ref} was not stored ({text}); the image itself is pushed")


def branch_tag(branch: str, sha: str = "") -> str:
    """``<branch>-<sha7>`` with the branch sanitized to tag characters (and cut so the tag fits 128)."""
    suffix = f"-{sha[:7]}" if sha else ""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", branch).strip(".-")[: 128 - len(suffix)].rstrip(".-")
    return (tag or "branch") + suffix


def compute_tags(ref: str, sha: str, default_branch: str, version: str, extra: list[str]) -> list[str]:
    """The one tag scheme: ``latest`` only on the default branch, ``<branch>-<sha7>`` (pull requests
    ``pr-<n>-<sha7>``), ``vX.Y.Z`` (given, or from a vX.Y.Z tag ref), then the extra tags."""
    tags: list[str] = []
    if ref.startswith("refs/heads/"):
        branch = ref[len("refs/heads/") :]
        if branch == (default_branch or "main"):
            tags.append("latest")
        tags.append(branch_tag(branch, sha))
    elif ref.startswith("refs/pull/"):
        tags.append(branch_tag("pr-" + ref.split("/")[2], sha))
    elif ref.startswith("refs/tags/") and not version and SEMVER.match(ref[len("refs/tags/") :]):
        version = ref[len("refs/tags/") :]
    if version:
        tags.append(normalize_version(version))
    for t in extra:
        images.check_tag(t, "tags")
        tags.append(t)
    unique: list[str] = []
    for t in tags:
        if t not in unique:
            unique.append(t)
    return unique


BUMPS = ("patch", "minor", "major")
_RELEASE = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def release_versions(tags: list[str]) -> list[tuple[int, int, int]]:
    """The vX.Y.Z release tags among ``tags`` (pre-releases and other tags are not releases)."""
    return [tuple(int(g) for g in m.groups()) for m in map(_RELEASE.match, tags) if m]  # type: ignore[misc]


def next_version(existing: list[str], bump: str) -> str:
    """The next X.Y.Z after the highest vX.Y.Z in ``existing``; 0.1.0 when there is none."""
    if bump not in BUMPS:
        raise InputError(
            "version-bump", f"'{bump}' is not patch, minor or major", "write patch, minor or major, or leave it empty"
        )
    found = release_versions(existing)
    if not found:
        return "0.1.0"
    major, minor, patch = max(found)
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def existing_versions(ref: images.ImageRef, username: str, password: str, workdir: str | None = None) -> list[str]:
    """vX.Y.Z tags in the target repository (registry API) and in the checkout (git tags)."""
    from ..core.registry import Registry, repository_path

    repo = repository_path(ref)
    if ECR.match(ref.registry) and not password:
        username, password = ecr_password(ref.registry)
    tags = Registry(ref.registry, username, password, scopes=[f"repository:{repo}:pull"]).tags(repo)
    git_tags = git.output("-C", workdir or ".", "tag", "--list", "v*").split()
    return tags + git_tags


_STEP = re.compile(r"^Step \d+/\d+ : ")


def build(
    client,
    context: Path,
    build_args: dict[str, str],
    network: str,
    cache_from: list[str] | None = None,
    target: str = "",
    tag: str = "",
    quiet: bool = False,
    log: list[str] | None = None,
) -> tuple[str, str]:
    """Build ``context`` with the engine's builder, tagged ``tag`` (default: a scratch candidate
    tag); ``cache_from``: pulled images whose layers it may reuse; ``log`` collects the output."""
    from docker.errors import APIError, BuildError

    candidate = tag or f"{CANDIDATE}:{uuid.uuid4().hex[:12]}"
    log = [] if log is None else log
    kwargs = {
        "path": str(context),
        "tag": candidate,
        "rm": True,
        "forcerm": True,
        "pull": False,
        "decode": True,
        "buildargs": build_args or None,
    }
    if network:
        kwargs["network_mode"] = network
    if cache_from:
        kwargs["cache_from"] = cache_from
    if target:
        kwargs["target"] = target
    try:
        for chunk in client.api.build(**kwargs):
            if "stream" in chunk:
                line = chunk["stream"].rstrip()
                if line:
                    log.append(line)
                    if not quiet:
                        print(line, flush=True)
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                raise StageError(
                    f"docker build failed: {detail.strip().splitlines()[-1][:300]}", "read the build log above"
                )
    except (APIError, BuildError) as exc:
        raise StageError(f"docker build failed: {str(exc)[:300]}", "read the build log above") from exc
    image = client.images.get(candidate)
    return candidate, image.id


def sbom_file(image_id: str, context: Path) -> Path:
    """Where the SBOM copied out of ``image_id`` goes: RUNNER_TEMP (else the temporary folder),
    never inside the build context."""
    name = f"mlops-sbom-{image_id.split(':')[-1][:12]}.cdx.json"
    for folder in (os.environ.get("RUNNER_TEMP") or "", tempfile.gettempdir()):
        if not folder:
            continue
        where = Path(folder).resolve()
        if where != context.resolve() and context.resolve() not in where.parents:
            where.mkdir(parents=True, exist_ok=True)
            return where / name
    raise StageError(f"no folder outside the context {context} for the SBOM", "set RUNNER_TEMP or TMPDIR elsewhere")


def extract_sbom(client, image_tag: str, image_id: str, context: Path) -> Sbom:
    """Copy the image's SBOM (the path its io.github.mlops-actions.sbom label names, else
    /sbom.cdx.json) out of a created, never started, container of it. An image without one (its
    own Dockerfile, say) gives an Sbom without path and the reason: no failure."""
    from docker.errors import APIError, NotFound

    image = client.images.get(image_tag)
    inside = (image.labels or {}).get(SBOM_LABEL) or "/sbom.cdx.json"
    container = None
    try:
        container = client.containers.create(image_tag, entrypoint=["/nonexistent"], command=[], network_disabled=True)
        stream, stat = container.get_archive(inside)
        if int(stat.get("size") or 0) > SBOM_MAX_BYTES:
            return Sbom(None, inside, note=f"{inside} is over {SBOM_MAX_BYTES // 2**20} MiB")
        raw = b"".join(stream)
    except NotFound:
        return Sbom(None, inside, note=f"the image has no {inside}: not built from render-dockerfile's template?")
    except APIError as exc:
        return Sbom(None, inside, note=f"{inside} could not be read from the image: {str(exc)[:160]}")
    finally:
        if container is not None:
            with contextlib.suppress(Exception):  # scratch container, never started
                container.remove(force=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            handle = tar.extractfile(member) if member else None
            data = handle.read() if handle else b""
        bom = sbom.parse(data)
    except (tarfile.TarError, ValueError) as exc:
        gha.warning(f"push-image: the image's {inside} is not a CycloneDX JSON document ({exc.__class__.__name__})")
        return Sbom(None, inside, note=f"{inside} is not a CycloneDX JSON document")
    path = sbom_file(image_id, context)
    path.write_bytes(data)
    return Sbom(path, inside, sbom.top_level_packages(bom), len(bom.get("components") or []))


def smoke_line(smoke: dict, timings: bool = False) -> str:
    """The smoke test in one line. The ``smoke`` output (which the pull request's verdict shows)
    has no timings, so a rerun of the same image proposes the same body; the summary has them."""
    if not smoke:
        return "not run (smoke-test: false)"
    ready = f", ready in {smoke['ping_seconds']} s" if timings else ""
    if smoke.get("rows") is None:
        return f"passed: /ping and /version only (no input example){ready}"
    took = f" in {smoke['predict_ms']} ms" if timings else ""
    return f"passed: {smoke['rows']} example row(s) predicted{took}{ready}"


def smoke_test(client, image_tag: str, context: Path, payload_path: Path | None, timeout: float) -> dict:
    """Start the image, wait for /ping, POST the input example to /invocations, check the answer."""
    info = _model_info(context)
    payload_path = payload_path or (context / "model" / "serving_input_example.json")
    if not payload_path.is_file():
        payload_path = None
    container = client.containers.run(image_tag, detach=True, ports={"8080/tcp": ("127.0.0.1", None)})
    started = time.monotonic()
    result: dict = {"ping_seconds": None, "predictions": None}
    try:
        base = wait_for_endpoint(
            container,
            8080,
            "/ping",
            timeout,
            started,
            "smoke test: ",
            "check that the model loads; raise smoke-timeout for slow models",
        )
        result["ping_seconds"] = round(time.monotonic() - started, 2)
        version = _get_json(base + "/version")
        if info.get("model_sha256") and version.get("model_sha256") != info["model_sha256"]:
            raise StageError("smoke test: /version reports another model than the one built", "rebuild without cache")
        if payload_path is None:
            gha.warning(
                "smoke test: the model has no input example (serving_input_example.json); only /ping and /version "
                "were checked"
            )
            return result
        asked = time.monotonic()
        preds = invoke(
            base,
            payload_path.read_bytes(),
            60,
            container,
            "smoke test: ",
            "check that the input example matches the model's signature",
        )
        result["predictions"] = preds[:5]
        result["rows"] = len(preds)
        result["predict_ms"] = round((time.monotonic() - asked) * 1000)
        return result
    finally:
        with contextlib.suppress(Exception):  # cleanup must not mask the real error
            container.remove(force=True)


def _model_info(context: Path) -> dict:
    """The context's model-info.json (written by render-dockerfile); {} when there is none."""
    path = context / "model-info.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(paths.read_text_input(path, "context", "render-dockerfile's model-info.json"))
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise InputError(
            "context", f"'{path}' is not a JSON object", "pass the context output of render-dockerfile, unedited"
        )
    return info


def _get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def push_tag(client, name: str, tag: str, secret: str) -> str:
    def attempt() -> str:
        digest = ""
        for chunk in client.api.push(name, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                text = scrub((chunk.get("errorDetail") or {}).get("message") or chunk["error"], secret)
                if any(w in text.lower() for w in ("unauthorized", "denied", "authentication required")):
                    raise InputError(
                        "password",
                        f"registry refused the push of {name}:{tag} ({text[:120]})",
                        "check the credentials and their push permission",
                    )
                raise TransientError(f"push {name}:{tag}: {text[:160]}")
            aux = chunk.get("aux") or {}
            if aux.get("Digest"):
                digest = aux["Digest"]
        if not digest:
            raise TransientError(f"push {name}:{tag}: the registry reported no digest")
        return digest

    from docker.errors import APIError

    def guarded() -> str:
        try:
            return attempt()
        except APIError as exc:
            raise TransientError(f"push {name}:{tag}: {scrub(str(exc), secret)[:160]}") from exc

    return retry_or_raise(
        guarded, what=f"push {name}:{tag}", fix="check that the registry is up; nothing else was tagged remotely"
    )


@contextlib.contextmanager
def _image_lock(name: str):
    """Runs on one host (a self-hosted runner, act) that build, tag and push the same image name
    take turns: local tags are shared by the whole engine, so two interleaved runs could push a
    mix of each other's images under one set of tags. Across hosts the workflow's concurrency
    group does this job (and the digest check after the push catches a race)."""
    import fcntl
    import hashlib

    path = (
        Path(os.environ.get("RUNNER_TEMP") or "/tmp")
        / f"mlops-push-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
    )
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _untag(client, refs: list[str]) -> None:
    for full in refs:
        with contextlib.suppress(Exception):  # best effort: the tag may be gone already
            client.images.remove(full, noprune=True)


def push_image(req: PushRequest) -> PushResult:
    context = Path(req.context)
    if not (context / "Dockerfile").is_file():
        raise InputError("context", f"'{context}' has no Dockerfile", "pass the context output of render-dockerfile")
    paths.tree_files(context, "context")  # links never reach the engine
    req = replace(
        req,
        smoke_timeout=positive_number(
            req.smoke_timeout, "smoke-timeout", maximum=MAX_WAIT, unit="s", example="seconds"
        ),
    )
    _model_info(context)
    ref = images.parse(req.image, "image", allow_tag=False)
    version = normalize_version(req.version)
    bump = (req.version_bump or "").strip().lower()
    if bump and bump not in BUMPS:
        raise InputError(
            "version-bump",
            f"'{req.version_bump}' is not patch, minor or major",
            "write patch, minor or major, or leave it empty",
        )
    if bump and version:
        raise InputError(
            "version-bump",
            f"given together with version {version}",
            "set only one: version (exact) or version-bump (next after the highest vX.Y.Z)",
        )
    sha = req.sha or os.environ.get("GITHUB_SHA") or git.output("rev-parse", "HEAD")
    git_ref = (
        req.ref
        or os.environ.get("GITHUB_REF")
        or (
            f"refs/heads/{git.output('rev-parse', '--abbrev-ref', 'HEAD')}"
            if git.output("rev-parse", "--abbrev-ref", "HEAD") not in ("", "HEAD")
            else ""
        )
    )
    if bump and not (git_ref.startswith("refs/tags/") and SEMVER.match(git_ref[len("refs/tags/") :])):
        with gha.group(f"next {bump} version of {ref.name}"):
            existing = existing_versions(ref, req.username, req.password)
            version = normalize_version(next_version(existing, bump))
            print(f"highest release: {max(release_versions(existing), default=None)} → {version}")
    tags = compute_tags(git_ref, sha, req.default_branch or git.event_default_branch(), version, req.extra_tags)
    if not tags:
        raise InputError("tags", "no tag could be computed (no ref, sha or version)", "set version or tags")
    if req.smoke_payload and not Path(req.smoke_payload).is_file():
        raise InputError(
            "smoke-payload",
            f"'{req.smoke_payload}' not found",
            "give a JSON request body file or leave it empty for the model's input example",
        )
    if req.password:
        gha.mask(req.password)
    client = engine()
    registry = login_registry(ref, req.registry)
    # bad cache input stops before the login and the build
    caches = parse_cache(req.cache_from, "cache-from"), parse_cache(req.cache_to, "cache-to")
    if req.push or req.cache_from:
        with gha.group(f"login to {registry}"):
            login(client, registry, req.username, req.password)
    with _image_lock(ref.name):
        return _build_tag_push(client, req, context, ref, tags, *caches)


def _build_tag_push(
    client, req: PushRequest, context: Path, ref, tags: list[str], cache_from: list[CacheRef], cache_to: list[CacheRef]
) -> PushResult:
    cache = BuildCache()
    if cache_from:
        with gha.group(f"pull the build cache ({', '.join(c.ref for c in cache_from)})"):
            cache = pull_cache(client, cache_from, named_stages(context / "Dockerfile"), req.password)
    log: list[str] = []
    with gha.group(f"docker build {context}"):
        candidate, image_id = build(client, context, req.build_args, req.network, cache_from=cache.pulled, log=log)
    cache.steps = sum(1 for line in log if _STEP.match(line))
    cache.cached = sum(1 for line in log if line.strip() == "---> Using cache")
    if cache_from or cache_to:
        print(f"build cache: {cache.cached} of {cache.steps} steps from cache", flush=True)
    try:
        bom = extract_sbom(client, candidate, image_id, context)
        print(f"SBOM: {bom.path} ({bom.components} components)" if bom.path else f"SBOM: none ({bom.note})")
        smoke: dict = {}
        if req.smoke_test:
            with gha.group("smoke test"):
                smoke = smoke_test(
                    client,
                    candidate,
                    context,
                    Path(req.smoke_payload) if req.smoke_payload else None,
                    req.smoke_timeout,
                )
                print(
                    f"smoke test passed: /ping after {smoke['ping_seconds']}s, predictions {smoke.get('predictions')}"
                )
        image = client.images.get(candidate)
        for t in tags:
            image.tag(ref.name, tag=t)
    finally:
        with contextlib.suppress(Exception):  # the candidate tag is scratch
            client.images.remove(candidate, noprune=True)
    full_tags = [f"{ref.name}:{t}" for t in tags]
    digest = ""
    if req.push:
        try:
            with gha.group(f"push {ref.name} ({', '.join(tags)})"):
                digests = {t: push_tag(client, ref.name, t, req.password) for t in tags}
            if len(set(digests.values())) != 1:
                raise StageError(
                    f"tags were pushed with different digests: {digests}", "re-run; another build raced this one"
                )
        except BaseException:
            _untag(client, full_tags)  # a failed push leaves no local tag that looks published
            raise
        digest = next(iter(digests.values()))
        if cache_to:
            with gha.group(f"store the build cache ({', '.join(c.ref for c in cache_to)})"):
                push_cache(client, cache_to, image_id, context, req, cache)
    elif cache_to:
        gha.notice("push-image: push is false, so cache-to stores nothing")
    return PushResult(
        image=f"{ref.name}@{digest}" if digest else f"{ref.name}:{tags[0]}",
        digest=digest,
        tags=full_tags,
        image_id=image_id,
        smoke=smoke,
        sbom=bom,
        cache=cache if (cache_from or cache_to) else None,
    )
