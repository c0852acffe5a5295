"""Thin, logged wrappers over the git command line (no shell, secrets only through env): the
:class:`Git` of a checkout with a remote, and :func:`run` / :func:`output` for one local command."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import urllib.parse
from pathlib import Path

from .errors import InputError, StageError, TransientError, scrub
from .retry import retry_or_raise

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
_BRANCH_OK = re.compile(r"^[A-Za-z0-9._/\-]+$")


class Git:
    def __init__(self, workdir: Path, token: str | None = None, remote: str = "origin"):
        self.workdir = Path(workdir)
        self.remote = remote
        self.env = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        self.env.setdefault("GIT_AUTHOR_NAME", BOT_NAME)
        self.env.setdefault("GIT_AUTHOR_EMAIL", BOT_EMAIL)
        self.env.setdefault("GIT_COMMITTER_NAME", BOT_NAME)
        self.env.setdefault("GIT_COMMITTER_EMAIL", BOT_EMAIL)
        self._token = token

    def run(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run git; with ``check`` a failure is a StageError carrying git's last message line."""
        try:
            proc = subprocess.run(["git", *args], cwd=cwd or self.workdir, env=self.env, capture_output=True, text=True)
        except OSError as exc:
            raise StageError(
                f"cannot run git {args[0]} in '{cwd or self.workdir}' ({exc.strerror or exc.__class__.__name__})",
                "install git on the runner and check workdir",
            ) from exc
        if check and proc.returncode != 0:
            err = scrub((proc.stderr or proc.stdout or "").strip(), self._token)
            last = err.splitlines()[-1][:300] if err else f"exit code {proc.returncode}"
            raise StageError(
                f"git {args[0]} failed: {last}", "read git's message; check the checkout (workdir) and the remote"
            )
        return proc

    def out(self, *args: str, cwd: Path | None = None) -> str:
        return self.run(*args, cwd=cwd).stdout.strip()

    def authenticate(self) -> None:
        """Send the token as an HTTP header for an https remote, via env (never argv, never a file)."""
        url = self.remote_url()
        if not self._token or not url.startswith("https://"):
            return
        parts = urllib.parse.urlsplit(url)
        prefix = f"https://{parts.hostname}/"
        basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
        count = int(self.env.get("GIT_CONFIG_COUNT", "0"))
        self.env.update(
            {
                f"GIT_CONFIG_KEY_{count}": f"http.{prefix}.extraheader",
                f"GIT_CONFIG_VALUE_{count}": "",  # reset any header persisted by actions/checkout
                f"GIT_CONFIG_KEY_{count + 1}": f"http.{prefix}.extraheader",
                f"GIT_CONFIG_VALUE_{count + 1}": f"AUTHORIZATION: basic {basic}",
                "GIT_CONFIG_COUNT": str(count + 2),
            }
        )

    def remote_url(self) -> str:
        proc = self.run("remote", "get-url", self.remote, check=False)
        if proc.returncode != 0:
            raise InputError(
                "remote",
                f"git remote '{self.remote}' is not configured in '{self.workdir}'",
                "check out the repository with actions/checkout first",
            )
        return proc.stdout.strip()

    def network(self, *args: str, what: str) -> subprocess.CompletedProcess:
        """A fetch/push/ls-remote with backoff on transient failures."""

        def attempt() -> subprocess.CompletedProcess:
            proc = self.run(*args, check=False)
            if proc.returncode != 0:
                err = scrub(proc.stderr.strip(), self._token)
                if _transient(err):
                    raise TransientError(f"git {what}: {err.splitlines()[-1] if err else 'failed'}")
                raise StageError(
                    f"git {what} failed: {err.splitlines()[-1] if err else proc.returncode}",
                    "check the remote and the token's contents:write permission",
                )
            return proc

        return retry_or_raise(attempt, what=f"git {what}", fix="re-run the job when the remote is reachable")

    def remote_branches(self, *names: str) -> dict[str, str]:
        proc = self.network("ls-remote", "--heads", self.remote, *[f"refs/heads/{n}" for n in names], what="ls-remote")
        found = {}
        for line in proc.stdout.splitlines():
            sha, _, ref = line.partition("\t")
            found[ref.removeprefix("refs/heads/")] = sha
        return found

    def is_shallow(self) -> bool:
        return self.out("rev-parse", "--is-shallow-repository") == "true"


def validate_branch(name: str, input_name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InputError(input_name, "is empty", "give a branch name such as mlops/model-update")
    bad = (
        not _BRANCH_OK.match(name)
        or name.startswith(("-", "/"))
        or name.endswith(("/", ".lock", "."))
        or ".." in name
        or "//" in name
        or "@{" in name
        or name in ("HEAD", "@")
        or name.startswith("refs/")
        or any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))
    )
    if bad:
        raise InputError(
            input_name,
            f"'{name}' is not a valid branch name",
            "use letters, digits and . _ - / only, e.g. mlops/model-update",
        )
    return name


def _transient(err: str) -> bool:
    markers = (
        "Could not resolve host",
        "Connection refused",
        "Connection timed out",
        "timed out",
        "The requested URL returned error: 5",
        "RPC failed",
        "early EOF",
        "Operation timed out",
        "unable to access",
        "remote end hung up",
    )
    return any(m in err for m in markers)


def remote_head(git: Git) -> str:
    """The branch the remote's HEAD points at ('' when it cannot be learnt)."""
    proc = git.run("ls-remote", "--symref", git.remote, "HEAD", check=False)
    m = re.search(r"ref: refs/heads/(\S+)\s+HEAD", proc.stdout or "")
    return m.group(1) if m else ""


def event_default_branch() -> str:
    """The repository's default branch as the workflow's event payload names it ('' outside Actions)."""
    path = os.environ.get("GITHUB_EVENT_PATH")
    if path and Path(path).is_file():
        try:
            event = json.loads(Path(path).read_text())
            return str((event.get("repository") or {}).get("default_branch") or "")
        except (OSError, ValueError):
            return ""
    return ""


def run(
    *args: str, cwd: str | os.PathLike[str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """One local git command (C locale, output captured, never raising on git's exit code); a git
    that cannot be started or times out is a CompletedProcess with return code 127 and empty output."""
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, LC_ALL="C")
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(["git", *args], 127, "", str(exc))


def output(*args: str, cwd: str | os.PathLike[str] | None = None) -> str:
    """The stripped stdout of one local git command, '' when it fails."""
    proc = run(*args, cwd=cwd)
    return proc.stdout.strip() if proc.returncode == 0 else ""
