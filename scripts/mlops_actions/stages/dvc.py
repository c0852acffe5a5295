"""Stage dvc: version data and models with DVC next to the git history.

One operation per call on paths of a DVC project (``add``, ``commit``, ``push``, ``pull``,
``status``, ``metrics-diff``), against the project's default remote or one given as a name, a
local directory or an ``s3://`` URL (S3-compatible endpoints through ``endpoint-url``; credentials
only from the AWS_* environment, masked, never on a command line or in a file). With a ``base``
git revision the metrics of the workspace are compared with it (``dvc metrics diff``) and written
as a Markdown table.

DVC runs in-process through ``dvc.repo.Repo``; a remote given as an input is applied as an
in-memory config override, so nothing is written to ``.dvc/config``. Every input is checked before
DVC changes anything: a bad operation, path, remote or revision is an :class:`InputError`.
Transfers are retried on transient failures (connection refused or reset, timeouts, 5xx).
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from ..core import gha, git, markdown, paths
from ..core.errors import InputError, StageError, TransientError
from ..core.retry import retry_or_raise

OPERATIONS = ("add", "commit", "push", "pull", "status", "metrics-diff")
REMOTE_OPERATIONS = ("push", "pull")
SCHEMES = ("s3",)  # plus plain local directories
OVERRIDE_REMOTE = "mlops"  # name of the in-memory remote made from a URL or directory input
DEFAULT_DIFF_FILE = ".mlops/dvc/metrics-diff.md"
DIFF_MARKER = "<!-- mlops-actions:dvc metrics-diff -->"  # an earlier diff file, which a rerun may replace
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TRANSIENT_NAMES = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ClientOSError",
    "ConnectionError",
    "TimeoutError",
    "ConnectionRefusedError",
    "ConnectionResetError",
}
_TRANSIENT_TEXT = re.compile(
    r"\b(50[0-4]|SlowDown|InternalError|ServiceUnavailable|RequestTimeout|Connection (refused|reset))\b", re.I
)


@dataclass
class DvcRequest:
    operation: str
    paths: list[str] = field(default_factory=list)
    workdir: Path = Path(".")
    remote: str = ""
    endpoint_url: str = ""
    base: str = ""
    metrics_diff_file: Path | None = None
    jobs: int | None = None


@dataclass
class DvcResult:
    operation: str
    changed: bool = False
    hashes: dict[str, str] = field(default_factory=dict)
    remote: str = ""
    detail: str = ""
    metrics_diff: str = ""
    metrics_diff_file: str = ""

    def outputs(self) -> dict[str, object]:
        return {
            "changed": "true" if self.changed else "false",
            "hashes": json.dumps(self.hashes, sort_keys=True),
            "remote": self.remote,
            "metrics-diff": self.metrics_diff,
            "metrics-diff-file": self.metrics_diff_file,
        }

    def summary(self) -> str:
        rows = [[f"`{path}`", f"`{digest}`"] for path, digest in sorted(self.hashes.items())]
        return (
            f"### 🗃️ dvc {self.operation}\n{self.detail or 'done'}; changed: "
            f"**{'true' if self.changed else 'false'}**\n\n"
            + (gha.md_table(["path", "md5"], rows) if rows else "")
            + (f"\n{self.metrics_diff}" if self.metrics_diff else "")
        )


@dataclass
class _Plan:
    """A checked request: where the project is, which targets, which remote and its overrides."""

    root: Path
    workdir: Path
    targets: list[str]
    remote: str
    config: dict
    diff_file: Path | None


# ------------------------------------------------------------------------------------ validation


def find_root(workdir: Path) -> Path:
    """The DVC project holding ``workdir`` (the nearest folder with .dvc/ up to the git top level)."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise InputError(
            "workdir", f"'{workdir}' is not a directory", "set workdir to the checkout (or the DVC project inside it)"
        )
    top = git.run("rev-parse", "--show-toplevel", cwd=workdir)
    if top.returncode != 0:
        raise InputError(
            "workdir", f"'{workdir}' is not in a git repository", "run actions/checkout before this step or set workdir"
        )
    top_dir = Path(top.stdout.strip()).resolve()
    here = workdir.resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
        if folder == top_dir:
            break
    raise InputError(
        "workdir",
        f"'{workdir}' is not in a DVC project (no .dvc directory up to the git top level)",
        "run 'dvc init' (or 'dvc init --subdir' for a project folder) and commit .dvc/, or set workdir to the project",
    )


def target_of(path: str, workdir: Path, root: Path) -> Path:
    """An absolute path inside the project, refused when it climbs out, is in .git/.dvc or is empty."""
    text = (path or "").strip()
    if not text or any(ord(c) < 32 for c in text):
        raise InputError("paths", f"'{path}' is not a path", "give paths relative to workdir, one per line")
    full = (workdir / text).resolve()
    if full != root and root not in full.parents:
        raise InputError(
            "paths",
            f"'{path}' is outside the DVC project '{root}'",
            "give paths inside the project, relative to workdir, without '..'",
        )
    rel = full.relative_to(root)
    if rel.parts and rel.parts[0] in (".git", ".dvc"):
        raise InputError(
            "paths", f"'{path}' points into {rel.parts[0]}/", "give a data or model path of the working tree"
        )
    return full


def resolve_remote(value: str, configured: dict, default: str, endpoint_url: str, workdir: Path) -> tuple[str, dict]:
    """(remote name, config override) for a name, a directory or an s3:// URL; ('', {}) for none."""
    value = (value or "").strip()
    endpoint_url = (endpoint_url or "").strip()
    if endpoint_url:
        parts = urllib.parse.urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(
                "endpoint-url",
                f"'{endpoint_url}' is not an http(s) URL",
                "give the S3-compatible endpoint, e.g. https://minio.example.com:9000",
            )
        if parts.username or parts.password:
            raise InputError(
                "endpoint-url",
                "contains credentials",
                "pass credentials through AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            )
    if not value:
        if not default:
            return "", {}
        url = str((configured.get(default) or {}).get("url", ""))
        return default, _endpoint_override(default, url, endpoint_url)
    if "://" in value:
        parts = urllib.parse.urlsplit(value)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise InputError(
                "remote",
                f"scheme '{scheme}://' is not supported",
                "use s3://bucket/prefix, a local directory, or the name of a remote in .dvc/config",
            )
        if not parts.netloc:
            raise InputError("remote", f"'{value}' names no bucket", "write s3://bucket/prefix")
        if "@" in parts.netloc:
            raise InputError(
                "remote",
                "the URL contains credentials",
                "pass credentials through AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            )
        _need_plugin(scheme)
        override = {"url": value}
        if endpoint_url:
            override["endpointurl"] = endpoint_url
        return OVERRIDE_REMOTE, {"remote": {OVERRIDE_REMOTE: override}}
    if "/" in value or value.startswith(("~", ".")) or os.sep in value:
        directory = (workdir / os.path.expanduser(value)).resolve()
        if directory.exists() and not directory.is_dir():
            raise InputError("remote", f"'{value}' is a file, not a directory", "give a directory for the local remote")
        if endpoint_url:
            raise InputError(
                "endpoint-url", "is set for a local directory remote", "leave it empty, or use an s3:// remote"
            )
        return OVERRIDE_REMOTE, {"remote": {OVERRIDE_REMOTE: {"url": str(directory)}}}
    if not _NAME.match(value) or value not in configured:
        known = ", ".join(sorted(configured)) or "none"
        raise InputError(
            "remote",
            f"'{value}' is not a remote of this project (configured: {known})",
            "give a configured remote name, a directory (./dir or /abs/dir) or an s3://bucket/prefix URL",
        )
    url = str((configured.get(value) or {}).get("url", ""))
    return value, _endpoint_override(value, url, endpoint_url)


def _endpoint_override(name: str, url: str, endpoint_url: str) -> dict:
    if not endpoint_url:
        return {}
    if not url.startswith("s3://"):
        raise InputError(
            "endpoint-url", f"remote '{name}' is not an s3:// remote", "leave endpoint-url empty for this remote"
        )
    return {"remote": {name: {"endpointurl": endpoint_url}}}


def _need_plugin(scheme: str) -> None:
    try:
        __import__(f"dvc_{scheme}")
    except ImportError:
        raise InputError(
            "remote",
            f"{scheme}:// needs the dvc-{scheme} package",
            f"pip install 'mlops-actions[dvc]' (or dvc-{scheme})",
        ) from None


def _check_base(workdir: Path, base: str) -> str:
    base = base.strip()
    if base.startswith("-") or any(ord(c) < 32 for c in base):
        raise InputError("base", f"'{base}' is not a git revision", "give a branch, tag or commit, e.g. origin/main")
    if git.run("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", cwd=workdir).returncode != 0:
        shallow = git.run("rev-parse", "--is-shallow-repository", cwd=workdir).stdout.strip() == "true"
        fix = (
            "check out with fetch-depth: 0 (this clone is shallow)"
            if shallow
            else f"fetch it first (git fetch origin {base.split('/')[-1]}) or give an existing branch, tag or commit"
        )
        raise InputError("base", f"unknown git revision '{base}'", fix)
    return base


def _import_repo():
    try:
        from dvc.repo import Repo
    except ImportError:
        raise InputError("operation", "DVC is not installed", "pip install 'mlops-actions[dvc]'") from None
    return Repo


def plan(req: DvcRequest, repo_factory=None) -> _Plan:
    """Check everything and open nothing for writing: the returned plan is safe to run."""
    if req.operation not in OPERATIONS:
        raise InputError("operation", f"'{req.operation}' is not an operation", f"use one of {', '.join(OPERATIONS)}")
    root = find_root(Path(req.workdir))
    workdir = Path(req.workdir).resolve()
    if req.operation == "add" and not req.paths:
        raise InputError("paths", "is empty", "list the data or model files/folders to add, one per line")
    if req.jobs is not None and req.jobs < 1:
        raise InputError(
            "jobs", f"{req.jobs} is not a positive number", "give 1 or more parallel transfers, or leave it empty"
        )
    Repo = repo_factory or _import_repo()
    with Repo(str(root)) as repo:
        configured = dict(repo.config.get("remote") or {})
        default = str((repo.config.get("core") or {}).get("remote") or "")
        outs = {Path(out.fs_path).resolve() for out in repo.index.outs}
    targets = []
    for raw in req.paths:
        full = target_of(raw, workdir, root)
        if req.operation == "add":
            if not full.exists():
                raise InputError(
                    "paths", f"'{raw}' does not exist", "give an existing file or folder, relative to workdir"
                )
        else:
            dvc_file = full if full.suffix == ".dvc" else full.with_name(full.name + ".dvc")
            tracked = dvc_file.is_file() or any(
                full == out or out in full.parents or full in out.parents for out in outs
            )
            if not tracked:
                what = "does not exist" if not full.exists() else "is not tracked by DVC"
                raise InputError(
                    "paths",
                    f"'{raw}' {what} (no .dvc file, no dvc.yaml output)",
                    "give a path tracked by DVC (add it first with operation add), relative to workdir",
                )
        targets.append(os.path.relpath(full, root))
    name, override = resolve_remote(req.remote, configured, default, req.endpoint_url, workdir)
    if req.operation in REMOTE_OPERATIONS and not name:
        raise InputError(
            "remote",
            "no remote given and the project has no default remote",
            "set remote to a directory, an s3://bucket/prefix URL, or a remote name (dvc remote add -d NAME URL)",
        )
    if name and name != OVERRIDE_REMOTE:
        url = str((configured.get(name) or {}).get("url", ""))
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme and scheme not in SCHEMES:
            raise InputError(
                "remote",
                f"remote '{name}' uses '{scheme}://', which is not supported",
                "use an s3:// or local directory remote",
            )
        if scheme:
            _need_plugin(scheme)
    base = req.base
    if req.operation == "metrics-diff" and not base.strip():
        base = "HEAD"
    if base.strip():
        req.base = _check_base(workdir, base)
    diff_file = None
    if req.base:
        diff_file = Path(req.metrics_diff_file or DEFAULT_DIFF_FILE)
        if diff_file.exists() and diff_file.is_dir():
            raise InputError(
                "metrics-diff-file",
                f"'{diff_file}' is a directory",
                "give a file path, e.g. .mlops/dvc/metrics-diff.md",
            )
        paths.claim_output_file(
            diff_file, "metrics-diff-file", DIFF_MARKER, "dvc"
        )  # new or an earlier diff, never another file
    config = dict(override)
    if name:
        config = _merge(config, {"core": {"remote": name}})
    return _Plan(root=root, workdir=workdir, targets=targets, remote=name, config=config, diff_file=diff_file)


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


# ------------------------------------------------------------------------------------- operations


def tracked_hashes(repo, root: Path, workdir: Path, targets: list[str]) -> dict[str, str]:
    """{path relative to workdir: md5} of the outputs recorded in .dvc files and dvc.lock, limited
    to the targets (a folder target covers what is inside it; a .dvc file stands for its output)."""
    wanted = [(root / (t[:-4] if t.endswith(".dvc") else t)).resolve() for t in targets]
    hashes = {}
    for out in repo.index.outs:
        path = Path(out.fs_path).resolve()
        if wanted and not any(path == w or w in path.parents or path in w.parents for w in wanted):
            continue
        value = out.hash_info.value if out.hash_info else None
        if value:
            hashes[Path(os.path.relpath(path, workdir)).as_posix()] = value
    return hashes


def _transient(exc: BaseException | None) -> bool:
    from dvc.exceptions import DownloadError, UploadError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (UploadError, DownloadError, ConnectionError, TimeoutError)):
            return True
        if exc.__class__.__name__ in _TRANSIENT_NAMES or _TRANSIENT_TEXT.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _transfer(fn, what: str):
    """Run a remote transfer, retried on transient failures; DVC errors become one-line StageErrors."""
    from dvc.exceptions import DvcException

    def attempt():
        try:
            return fn()
        except Exception as exc:  # classified below
            if _transient(exc):
                raise TransientError(f"{what}: {_first_line(exc)}") from exc
            raise

    try:
        return retry_or_raise(
            attempt,
            what=what,
            message="{problem} (after retries)",
            fix="check the remote is reachable and the credentials (AWS_* env) are valid",
        )
    except DvcException as exc:
        raise StageError(f"{what} failed: {_first_line(exc)}", _fix_for(exc)) from exc


def _fix_for(exc: BaseException) -> str:
    text = str(exc).lower()
    if "missing" in text or "not found" in text:
        return "push the data from where it was added (operation push), or check the remote"
    if "access denied" in text or "forbidden" in text or "credentials" in text:
        return "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
    return "read the DVC message above"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:300]


def metrics_table(diff: dict) -> str:
    """``dvc metrics diff`` as Markdown: file, metric, base, workspace, change."""
    rows = []
    for path in sorted(diff):
        for name in sorted(diff[path]):
            entry = diff[path][name]
            old, new = entry.get("old"), entry.get("new")
            rows.append([f"`{path}`", name, markdown.number(old), markdown.number(new), markdown.delta(new, old)])
    if not rows:
        return "_No DVC metrics._\n"
    return gha.md_table(["file", "metric", "base", "workspace", "change"], rows)


def run(req: DvcRequest, repo_factory=None) -> DvcResult:
    p = plan(req, repo_factory)
    Repo = repo_factory or _import_repo()
    for var in CREDENTIAL_VARS:
        gha.mask(os.environ.get(var))
    result = DvcResult(operation=req.operation, remote=p.remote)
    jobs = {"jobs": req.jobs} if req.jobs else {}
    targets = p.targets or None
    with Repo(str(p.root), config=p.config or None) as repo:
        before = tracked_hashes(repo, p.root, p.workdir, p.targets)
        where = f" ({p.remote})" if p.remote else ""
        with gha.group(f"dvc {req.operation}{where} {' '.join(p.targets)}".rstrip()):
            if req.operation == "add":
                repo.add(p.targets)
                result.detail = f"added {len(p.targets)} path(s)"
            elif req.operation == "commit":
                commit_targets: list[str | None] = [*targets] if targets else [None]
                for target in commit_targets:
                    repo.commit(target, force=True)
                result.detail = "committed workspace changes"
            elif req.operation == "push":
                count = _transfer(lambda: repo.push(targets, remote=p.remote, **jobs), f"dvc push to {p.remote}")
                result.changed = bool(count)
                result.detail = f"{count} file(s) pushed to {p.remote}"
            elif req.operation == "pull":
                stats = _transfer(lambda: repo.pull(targets, remote=p.remote, **jobs), f"dvc pull from {p.remote}")
                touched = sum(len(stats.get(k) or []) for k in ("added", "modified", "deleted"))
                result.changed = bool(touched)
                result.detail = f"{touched} path(s) updated from {p.remote}"
            elif req.operation == "status":
                local = repo.status(targets)
                cloud = (
                    _transfer(
                        lambda: repo.status(targets, cloud=True, remote=p.remote, **jobs), f"dvc status of {p.remote}"
                    )
                    if p.remote
                    else {}
                )
                result.changed = bool(local or cloud)
                for path, state in sorted(local.items()):
                    gha.log(f"workspace: {path}: {state}")
                for path, state in sorted(cloud.items()):
                    gha.log(f"remote {p.remote}: {path}: {state}")
                result.detail = (
                    f"{len(local)} changed in the workspace, {len(cloud)} differ from {p.remote or 'no remote'}"
                )
    with Repo(str(p.root), config=p.config or None) as repo:
        result.hashes = tracked_hashes(repo, p.root, p.workdir, p.targets)
        if req.operation in ("add", "commit"):
            result.changed = result.hashes != before
            if not result.changed:
                result.detail = "unchanged: the recorded hashes already match the workspace"
        if p.diff_file is not None:
            diff = repo.metrics.diff(a_rev=req.base, b_rev="workspace", all=True).get("diff") or {}
            result.metrics_diff = (
                f"### DVC metrics against `{gha.md_inline(req.base)}`\n\n" + metrics_table(diff) + f"\n{DIFF_MARKER}\n"
            )
            paths.claim_output_file(p.diff_file, "metrics-diff-file", DIFF_MARKER, "dvc")
            paths.write_file_atomic(p.diff_file, result.metrics_diff, "metrics-diff-file")
            result.metrics_diff_file = str(p.diff_file)
            if req.operation == "metrics-diff":
                result.changed = any(e.get("old") != e.get("new") for m in diff.values() for e in m.values())
    return result
