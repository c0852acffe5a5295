"""Stage 3, open-pr: commit fetched artifacts into a repo path on one bot branch, push it and open
(or update) the pull request. Reruns are idempotent: same content → nothing pushed, the open PR is
reused, never duplicated.

What it never does (the stage rules of :mod:`mlops_actions.core.paths`):

* push to the base branch or the default branch: the bot branch must differ from both (``--base``,
  the repository's default branch from the API, the remote's HEAD, ``GITHUB_BASE_REF``), checked
  before the first push and again right before it;
* follow a link: the source folder is verified against its manifest, which refuses links, and only
  the listed plain files are copied; a repo-path that passes through a symbolic link on the bot
  branch (or the base) is refused, so nothing is written outside the checkout;
* replace what it did not deliver: the repo-path on the branch is new, or holds a
  ``MANIFEST.sha256`` (an earlier delivery of fetched artifacts); never inside ``.git``/``.github``;
* overwrite a file: ``--body-file`` is new or an earlier PR body (it carries the open-pr marker),
  and it is written beside and renamed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..core import gha, manifest, paths, trend
from ..core.errors import InputError, StageError, TransientError
from ..core.git import BOT_EMAIL, BOT_NAME, Git, remote_head, validate_branch
from ..core.inputs import safe_relative
from ..core.markdown import cell, human_size, metric_rows, order_metrics
from ..core.paths import read_text_input, resource
from ..core.retry import retry_or_raise
from ..core.run_record import RUN_FILE, RunRecord
from ..core.templating import render_template

MARKER = "<!-- mlops-actions:open-pr -->"
STAGE = "open-pr"
_REMOTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_PLOT_EXT = (".png", ".svg", ".jpg", ".jpeg", ".gif")


@dataclass
class PrRequest:
    source_dir: Path
    repo_path: str
    workdir: Path = Path(".")
    remote: str = "origin"
    branch: str = "mlops/model-update"
    base: str = ""
    title: str = ""
    commit_message: str = ""
    labels: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    draft: bool = False
    repository: str = ""
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    token: str = ""
    open_pull_request: bool = True
    template: Path | None = None
    body_file: Path | None = None
    extra_body: list[Path] = field(
        default_factory=list
    )  # Markdown files added under the body (e.g. a DVC metrics diff)
    assignees: list[str] = field(default_factory=list)
    author: str = ""  # "Display Name <email>"; empty: the committer
    committer: str = ""  # "Display Name <email>"; empty: github-actions[bot]
    delete_branch: bool = False  # no diff left: also delete the bot branch (create-pull-request's delete-branch)
    verdict: str = ""  # JSON {"gate": {...}, "data", "scan", "image", "health"}: the other stages' outputs
    metrics: list[str] = field(default_factory=list)  # names or globs shown first; autolog noise folded


# create-pull-request's pull-request-operation for each of ours (it has no "unchanged" or "pushed")
CPR_OPERATION = {"created": "created", "updated": "updated", "closed": "closed", "unchanged": "none", "pushed": "none"}


@dataclass
class PrResult:
    operation: str  # created, updated, closed, unchanged, or pushed (open-pull-request: false)
    branch: str
    head_sha: str = ""
    pr_number: int | None = None
    pr_url: str = ""
    body_file: str = ""
    rebased: bool = False  # the bot branch was rebuilt on the moved base
    branch_deleted: bool = False
    notes: list[str] = field(default_factory=list)  # what the job summary must say (kept branch, cut body)

    def outputs(self) -> dict[str, object]:
        number = str(self.pr_number or "")
        return {
            "pr-number": number,
            "pr-url": self.pr_url,
            "operation": self.operation,
            "head-sha": self.head_sha,
            "branch": self.branch,
            "body-file": self.body_file,
            # the names peter-evans/create-pull-request users know
            "pull-request-number": number,
            "pull-request-url": self.pr_url,
            "pull-request-operation": CPR_OPERATION.get(self.operation, "none"),
            "pull-request-head-sha": self.head_sha,
            "pull-request-branch": self.branch,
        }

    def summary(self) -> str:
        where = f"[#{self.pr_number}]({self.pr_url})" if self.pr_url else f"branch `{self.branch}`"
        text = f"### 🔀 open-pr\n{self.operation}: {where} at `{self.head_sha[:7]}`"
        if self.rebased:
            text += " (rebuilt on the moved base: it held only bot commits)"
        if self.branch_deleted:
            text += f"; branch `{self.branch}` deleted"
        return text + "".join(f"\n\n⚠️ {note}" for note in self.notes)


def validate(req: PrRequest) -> PrRequest:
    if req.open_pull_request and not req.token:
        raise InputError(
            "token",
            "no GitHub token given",
            "pass token: ${{ secrets.GITHUB_TOKEN }} (or a PAT / App token to trigger other workflows) with "
            "contents:write and pull-requests:write",
        )
    if req.open_pull_request and not _REPO_RE.match(req.repository or ""):
        raise InputError(
            "repository",
            f"'{req.repository}' is not owner/name",
            "leave it empty to use GITHUB_REPOSITORY or write owner/name",
        )
    req.repo_path = safe_relative(req.repo_path, "repo-path")
    if not req.repo_path:
        raise InputError(
            "repo-path",
            "is empty",
            "give the folder in the repository that receives the artifacts, e.g. models/sentiment",
        )
    protected = [p for p in req.repo_path.split("/") if p.lower() in (".git", ".github")]
    if protected:
        raise InputError(
            "repo-path",
            f"'{req.repo_path}' points into {protected[0]}",
            "give a folder of the working tree outside .git and .github, e.g. models/sentiment",
        )
    if not _REMOTE_RE.match(req.remote or ""):
        raise InputError(
            "remote", f"'{req.remote}' is not a git remote name", "leave it as origin, or name a configured remote"
        )
    req.branch = validate_branch(req.branch, "branch")
    if req.base:
        req.base = validate_branch(req.base, "base")
        if req.base == req.branch:
            raise InputError(
                "branch",
                f"'{req.branch}' is the base branch too",
                "use a dedicated bot branch such as mlops/model-update",
            )
    for label in req.labels:
        if len(label) > 50:
            raise InputError("labels", f"label '{label[:20]}…' is longer than 50 characters", "shorten it")
    for user in req.reviewers:
        if not re.match(r"^[A-Za-z0-9-]+(/[A-Za-z0-9_.-]+)?$", user):
            raise InputError(
                "reviewers", f"'{user}' is not a GitHub login or org/team", "list logins separated by commas"
            )
    for user in req.assignees:
        if not re.match(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$", user):
            raise InputError("assignees", f"'{user}' is not a GitHub login", "list logins separated by commas")
    verdict_rows(req.verdict)  # a bad verdict is refused before any push
    for name in ("committer", "author"):
        value = getattr(req, name)
        if value:
            parse_identity(value, name)
    src = Path(req.source_dir)
    if not src.is_dir():
        raise InputError("source-dir", f"'{src}' is not a directory", "pass the path output of fetch-artifacts")
    manifest.verify(src, "source-dir")
    for path in req.extra_body:
        read_extra(Path(path))
    if req.body_file:
        paths.claim_output_file(req.body_file, "body-file", MARKER, STAGE)
    if not (Path(req.workdir) / ".git").exists():
        raise InputError(
            "workdir", f"'{req.workdir}' is not a git checkout", "run actions/checkout before this step or set workdir"
        )
    return req


_IDENTITY = re.compile(r"^\s*([^<>\n]*?)\s*<([^<>\s@]+@[^<>\s@]+)>\s*$")


def parse_identity(value: str, input_name: str) -> tuple[str, str]:
    """``Display Name <email@address>`` (create-pull-request's format) as (name, email)."""
    found = _IDENTITY.match(value or "")
    if not found or not found.group(1):
        raise InputError(
            input_name, f"'{value}' is not 'Display Name <email>'", "write e.g. 'Jane Doe <jane@example.com>'"
        )
    return found.group(1), found.group(2)


def _identities(git: Git, req: PrRequest) -> str:
    """Set the commit author and committer; returns the committer email, which marks bot commits."""
    committer = parse_identity(req.committer, "committer") if req.committer else (BOT_NAME, BOT_EMAIL)
    author = parse_identity(req.author, "author") if req.author else committer
    git.env.update(
        GIT_AUTHOR_NAME=author[0], GIT_AUTHOR_EMAIL=author[1], GIT_COMMITTER_NAME=committer[0],
        GIT_COMMITTER_EMAIL=committer[1],
    )  # fmt: skip
    return committer[1]


GITHUB_BODY_LIMIT = 65_536  # characters GitHub accepts in a pull request body


def cut_body(body: str, where: str) -> tuple[str, bool]:
    """The body within GitHub's limit: whole lines, then a note saying how much was left out and
    where the whole body is."""
    if len(body) <= GITHUB_BODY_LIMIT:
        return body, False
    note = (
        f"\n\n---\n✂️ This body was cut to GitHub's {GITHUB_BODY_LIMIT:,}-character limit; "
        f"{{left:,}} characters did not fit. The whole body: {where}.\n"
    )
    room = GITHUB_BODY_LIMIT - len(note.format(left=len(body))) - 16
    kept = body[:room].rsplit("\n", 1)[0]
    return kept + note.format(left=len(body) - len(kept)), True


def check_branches(branch: str, base: str, defaults: dict[str, str]) -> None:
    """The one branch rule: the bot branch is never the base nor a default branch, so open-pr
    never pushes to either. ``defaults`` maps a default branch to where it was learnt."""
    if branch == base:
        raise InputError(
            "branch",
            f"'{branch}' is the base branch; open-pr never pushes to the base",
            "use a dedicated bot branch such as mlops/model-update",
        )
    for name, where in defaults.items():
        if name and branch == name:
            raise InputError(
                "branch",
                f"'{branch}' is the default branch ({where}); open-pr never pushes to it",
                "use a dedicated bot branch such as mlops/model-update",
            )


def _default_branches(git: Git, api) -> dict[str, str]:
    """Every default branch that can be learnt: the repository's (API), the remote's HEAD, and the
    pull request's base in a pull_request workflow."""
    found: dict[str, str] = {}
    if api is not None:
        name = api.default_branch()
        if name:
            found[name] = "the repository's default branch"
    head = remote_head(git)
    if head:
        found.setdefault(head, f"HEAD of {git.remote}")
    env_base = os.environ.get("GITHUB_BASE_REF") or ""
    if env_base:
        found.setdefault(env_base, "GITHUB_BASE_REF")
    return found


def open_pr(req: PrRequest, github_factory=None) -> PrResult:
    """Everything that can be refused is checked before the first push: inputs, the manifest, the
    template (rendered once with a placeholder head), the token and the repository (one API call)."""
    req = validate(req)
    if req.token:
        gha.mask(req.token)
    git = Git(Path(req.workdir), token=req.token or None, remote=req.remote)
    bot_email = _identities(git, req)
    git.remote_url()
    git.authenticate()
    api = _Api(req, github_factory) if req.open_pull_request else None
    if api is not None:
        api.repository()
    base = req.base or (api.default_branch() if api is not None else "") or _default_base(git)
    base = validate_branch(base, "base")
    check_branches(req.branch, base, _default_branches(git, api))
    render_body(req, git, base, "0" * 40, fetch_base=False)  # template errors surface before any push
    with gha.group(f"commit {req.source_dir} → {req.repo_path} on {req.branch} (base {base})"):
        for attempt in range(3):
            try:
                done = _commit_and_push(git, req, base, bot_email)
                break
            except _PushRace:
                if attempt == 2:
                    raise StageError(f"branch {req.branch} kept moving while pushing", "re-run the job") from None
    head_sha, pushed, differs = done.head, done.pushed, done.differs
    result = PrResult(operation="unchanged", branch=req.branch, head_sha=head_sha, rebased=done.rebased)
    if done.foreign:
        result.notes.append(
            f"`{req.branch}` has commits that are not the bot's ({done.foreign}): it was not rebased on `{base}`, "
            "the update went on top; if the pull request conflicts, rebase it by hand or delete the branch"
        )
        gha.warning(result.notes[-1])
    if not differs:
        gha.notice(f"{req.repo_path} on {base} already holds these artifacts: no pull request needed")
        if api is not None:
            pull = api.find_open(base)
            if pull is not None:  # create-pull-request's "closed": nothing left to review
                api.call(lambda: pull.edit(state="closed"), "close pull request")
                result.operation, result.pr_number, result.pr_url = "closed", pull.number, pull.html_url
        if req.delete_branch and done.branch_existed:
            if done.foreign:
                result.notes.append(f"`{req.branch}` was kept: it has commits that are not the bot's")
            else:
                git.network("push", "--porcelain", git.remote, "--delete", f"refs/heads/{req.branch}", what="delete")
                result.branch_deleted = True
        return result
    body = render_body(req, git, base, head_sha)
    if req.body_file:
        paths.claim_output_file(req.body_file, "body-file", MARKER, STAGE)
        paths.write_file_atomic(req.body_file, body, "body-file")
        result.body_file = str(req.body_file)
    if api is None:
        result.operation = "pushed" if pushed else "unchanged"
        return result
    run = gha.github_context().get("run_url", "")
    body, cut = cut_body(body, f"the body-file output of this step ({run})" if run else "this step's body-file")
    if cut:
        result.notes.append(f"the pull request body was cut to GitHub's {GITHUB_BODY_LIMIT:,}-character limit")
    with gha.group(f"pull request {req.repository}: {req.branch} → {base}"):
        api.upsert_pull(base, body, pushed, result)
    return result


class _PushRace(Exception):
    pass


def _default_base(git: Git) -> str:
    env_base = os.environ.get("GITHUB_BASE_REF") or ""
    if env_base:
        return env_base
    return remote_head(git) or "main"


@dataclass
class _Pushed:
    head: str  # the bot branch's head sha
    pushed: bool
    differs: bool  # the repo-path on the branch differs from base
    branch_existed: bool = False
    rebased: bool = False
    foreign: str = ""  # the first commit on the branch that is not the bot's (sha and author), if any


def _foreign_commit(git: Git, base_ref: str, branch_ref: str, bot_email: str) -> str:
    """The first commit on the bot branch (since base) whose committer is not the bot, as
    "<sha7> by <author>"; empty when every commit is the bot's."""
    log = git.out("log", "--format=%H%x09%ce%x09%an", f"{base_ref}..{branch_ref}")
    for line in log.splitlines():
        sha, email, author = (line.split("\t") + ["", ""])[:3]
        if email.lower() != bot_email.lower():
            return f"{sha[:7]} by {author}"
    return ""


def _commit_and_push(git: Git, req: PrRequest, base: str, bot_email: str = BOT_EMAIL) -> _Pushed:
    """Commit the artifacts on the bot branch and push it. A branch that holds only bot commits
    and lags behind base is rebuilt on base (one commit, pushed with a lease on its old head), so the
    pull request stays mergeable; one with anybody else's commit is never rewritten."""
    check_branches(req.branch, base, {})  # the push below targets req.branch only: never the base
    heads = git.remote_branches(base, req.branch)
    if base not in heads:
        raise InputError(
            "base", f"branch '{base}' does not exist on {git.remote}", "set base to an existing branch, e.g. main"
        )
    depth = ["--depth=1"] if git.is_shallow() else []
    refs = [f"+refs/heads/{base}:refs/remotes/{git.remote}/{base}"]
    if req.branch in heads:
        refs.append(f"+refs/heads/{req.branch}:refs/remotes/{git.remote}/{req.branch}")
    git.network("fetch", "--no-tags", *depth, git.remote, *refs, what="fetch")
    existed = req.branch in heads
    start = f"refs/remotes/{git.remote}/{req.branch if existed else base}"
    base_ref = f"refs/remotes/{git.remote}/{base}"
    rebased, foreign, lease = False, "", ""
    if existed and git.run("merge-base", "--is-ancestor", base_ref, start, check=False).returncode != 0:
        foreign = _foreign_commit(git, base_ref, start, bot_email)
        if not foreign:  # base moved on and the branch is all ours: rebuild it on base
            lease = git.out("rev-parse", start)
            start, rebased = base_ref, True
    tmp = Path(tempfile.mkdtemp(prefix="mlops-pr-"))
    tree = tmp / "tree"
    try:
        git.run("worktree", "add", "--detach", str(tree), start)
        where = f"branch {req.branch if existed and not rebased else base}"
        paths.refuse_links_under(tree, req.repo_path, "repo-path", where)
        target = tree / req.repo_path
        if target.exists():
            _check_delivery(target, req.repo_path, where)
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        listed = manifest.verify(req.source_dir, "source-dir")
        paths.copy_files(req.source_dir, target, [*listed, manifest.NAME], "source-dir")
        git.run("add", "--all", "--", req.repo_path, cwd=tree)
        changed = git.run("diff", "--cached", "--quiet", cwd=tree, check=False).returncode != 0
        differs = changed if rebased else None
        pushed = False
        if changed:
            message = req.commit_message or _default_commit_message(req)
            git.run("commit", "--quiet", "--no-verify", "-m", message, cwd=tree)
            head = git.out("rev-parse", "HEAD", cwd=tree)
            refspec = f"HEAD:refs/heads/{req.branch}"
            force = [f"--force-with-lease=refs/heads/{req.branch}:{lease}"] if lease else []
            proc = git.run("push", "--porcelain", *force, git.remote, refspec, cwd=tree, check=False)
            if proc.returncode != 0:
                err = proc.stderr + proc.stdout
                if "[rejected]" in err or "non-fast-forward" in err or "fetch first" in err or "stale info" in err:
                    raise _PushRace()
                git.network("push", *force, git.remote, f"{head}:refs/heads/{req.branch}", what="push")
            pushed = True
        head = git.out("rev-parse", "HEAD", cwd=tree)
        if differs is None:
            differs = _tree_of(git, head, req.repo_path) != _tree_of(git, base_ref, req.repo_path)
        return _Pushed(head, pushed, differs, existed, rebased and pushed, foreign)
    finally:
        git.run("worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _check_delivery(target: Path, repo_path: str, where: str) -> None:
    """The repo-path on the branch is replaced only when it holds an earlier delivery (a folder with
    a MANIFEST.sha256 as open-pr commits it); a file or a folder of other files is never replaced."""
    if not target.is_dir():
        raise InputError(
            "repo-path",
            f"'{repo_path}' on {where} is a file, not an artifacts folder",
            "give a new folder for the artifacts, e.g. models/sentiment",
        )
    marker = target / manifest.NAME
    if not marker.is_file() or marker.is_symlink():
        raise InputError(
            "repo-path",
            f"'{repo_path}' on {where} holds files that open-pr did not deliver (no {manifest.NAME}); "
            "it is never replaced",
            "give a new folder for the artifacts, e.g. models/sentiment",
        )


def _tree_of(git: Git, rev: str, path: str) -> str:
    proc = git.run("rev-parse", f"{rev}:{path}", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _default_commit_message(req: PrRequest) -> str:
    run = RunRecord.read(Path(req.source_dir))
    rid = run.run_id if run else ""
    return f"mlops: update {req.repo_path} from MLflow run {rid[:12]}".strip()


def _base_record(git: Git, base: str, repo_path: str) -> RunRecord | None:
    """The run record the base branch holds in ``repo_path`` (what the metrics are compared with);
    None when it holds none. One written by another version of the record is reported, not used."""
    proc = git.run("show", f"refs/remotes/{git.remote}/{base}:{repo_path}/{RUN_FILE}", check=False)
    if proc.returncode != 0:
        return None
    try:
        return RunRecord.loads(proc.stdout, f"{RUN_FILE} on {base}", "base")
    except InputError as exc:
        gha.warning(f"{exc.problem}: the pull request shows no metric deltas")
        return None


def split_params(params: dict) -> dict[str, dict[str, str]]:
    """The parameters a person set (short, no ``__``) apart from autologged estimator internals."""
    main: dict[str, str] = {}
    extra: dict[str, str] = {}
    for key, value in sorted(params.items()):
        short = "__" not in key and "\n" not in str(value) and len(str(value)) <= 80
        (main if short else extra)[key] = cell(value)
    return {"params": main, "extra_params": extra}


def read_extra(path: Path) -> str:
    """One extra-body file's Markdown, trimmed (a missing or non-text file is an InputError)."""
    return read_text_input(
        path, "extra-body", "a Markdown file written by an earlier step (e.g. the dvc action's metrics-diff-file)"
    ).strip()


def _link(text: str, url: str) -> str:
    return f"[{text}]({url})" if url.startswith(("https://", "http://")) else text


def _cells(given: dict, key: str) -> dict[str, str]:
    return {k: cell(v, 400) for k, v in (given.get(key) or {}).items()}


def verdict_rows(text: str) -> list[dict[str, str]]:
    """The verdict block's rows (icon, check, what it found) from the other stages' outputs, given
    as one JSON object with any of ``gate`` (the gate action's outputs), ``data`` (validate-data's
    and drift's), ``scan`` (the scan action's), ``image`` (push-image's) and ``health``
    (health-check's, shown on the image's row)."""
    if not text.strip():
        return []
    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError("verdict", f"is not JSON ({exc.msg} at {exc.pos})", "pass one JSON object") from None
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        example = '{"gate": ${{ toJSON(needs.gate.outputs) }}}'
        raise InputError("verdict", "is not a JSON object of objects", f"pass e.g. {example}")
    rows = []
    gate = _cells(given, "gate")
    if gate.get("promoted"):
        won = gate["promoted"] == "true"
        if gate.get("champion-value"):
            text = f"**{'beats' if won else 'does not beat'} the champion**: {gate.get('reason', '')}"
            if gate.get("delta"):
                text += f" (Δ {gate['delta']})"
        else:
            text = f"**{'first champion' if won else 'not promoted'}**: {gate.get('reason', '')}"
        links = [_link("challenger run", gate.get("run-url", ""))]
        if gate.get("champion-version"):
            links.append(_link(f"champion v{gate['champion-version']} run", gate.get("champion-run-url", "")))
        rows.append({"icon": "🏆" if won else "⏸️", "check": "gate", "text": text + " · " + " · ".join(links)})
    data = _cells(given, "data")
    if data.get("data-valid"):
        valid = data["data-valid"] == "true"
        text = "valid" if valid else f"**invalid**: {data.get('failures') or 'see the validate-data report'}"
        drift = data.get("drift-detected")
        if drift in ("true", "false"):
            text += "; drift detected" if drift == "true" else "; no drift against the reference"
        rows.append(
            {"icon": "✅" if valid and drift != "true" else "⚠️" if valid else "❌", "check": "data", "text": text}
        )
    scan = _cells(given, "scan")
    if scan.get("result"):
        ok = scan["result"] == "passed"
        found = scan.get("findings", "0")
        text = f"{scan['result']}: {scan.get('scanned', '?')} model file(s), {found} finding(s)"
        if found not in ("", "0"):
            text += f" (highest {scan.get('highest', '?')})"
        rows.append({"icon": "✅" if ok and found in ("", "0") else "⚠️" if ok else "❌", "check": "scan", "text": text})
    image = {**_cells(given, "image"), **_cells(given, "health")}
    if image.get("image") or image.get("digest"):
        text = f"`{image.get('image') or image.get('digest')}`"
        smoke = image.get("smoke", "")
        if smoke:
            text += f"; smoke test {smoke}"
        if image.get("healthy"):  # no latency: a rerun of the same image must propose the same body
            text += f"; health check {'passed' if image['healthy'] == 'true' else '**failed**'}"
        if image.get("challenger-agreement"):
            try:
                share = f"{float(image['challenger-agreement']) * 100:.1f} %"
            except ValueError:
                share = image["challenger-agreement"]
            previous = _cells(given, "gate").get("champion-version")
            who = f"the previous champion (v{previous}) beside it in shadow" if previous else "its challenger"
            text += f"; {who} agreed on {share} of the probe rows"
        good = image.get("healthy", "true") == "true" and not smoke.startswith("failed")
        rows.append({"icon": "✅" if good else "❌", "check": "image", "text": text})
    return rows


def render_body(req: PrRequest, git: Git, base: str, head_sha: str, fetch_base: bool = True) -> str:
    src = Path(req.source_dir)
    run = RunRecord.read(src) or RunRecord(run_id="")
    base_run = (_base_record(git, base, req.repo_path) if fetch_base else None) or RunRecord(run_id="")
    entries = manifest.read(src / manifest.NAME)
    files = [
        {"path": rel, "size": human_size((src / rel).stat().st_size), "sha256": digest}
        for rel, digest in entries.items()
    ]
    repo_url = f"{req.server_url.rstrip('/')}/{req.repository}" if req.repository else ""
    plots, trend_plot = [], None
    for rel in entries:
        if rel.lower().endswith(_PLOT_EXT):
            path = f"{req.repo_path}/{rel}"
            url = f"{repo_url}/blob/{head_sha}/{path}?raw=true" if repo_url else path
            if rel == trend.FILE:  # fetch-artifacts' plot of the deciding metric: under the verdict
                trend_plot = {"name": rel, "url": url}
            else:
                plots.append({"name": rel, "url": url})
    diffstat = (
        git.run(
            "diff", "--stat=100", f"refs/remotes/{git.remote}/{base}", head_sha, "--", req.repo_path, check=False
        ).stdout.strip()
        if fetch_base
        else ""
    )
    rows = {row["name"]: row for row in metric_rows(run.metrics, base_run.metrics)}
    shown, folded, unmatched = order_metrics(list(rows), req.metrics)
    if unmatched:
        gha.warning(
            f"open-pr: input 'metrics': {', '.join(unmatched)} matched no metric of the run "
            f"(it logged {len(run.metrics)}); check the names, or use a glob such as test_*"
        )
    context = {
        "marker": MARKER,
        "run": {"run_id": run.run_id, "run_name": run.run_name, "run_url": run.run_url},
        "metrics": [rows[n] for n in shown],
        "more_metrics": [rows[n] for n in folded],
        **split_params(run.params),
        "files": files,
        "plots": plots,
        "trend": trend_plot,
        "base": base,
        "branch": req.branch,
        "repo_path": req.repo_path,
        "github": gha.github_context() | {"run_number": os.environ.get("GITHUB_RUN_NUMBER", "")},
        "head_sha": head_sha,
        "diffstat": diffstat,
        "extra_body": [text for text in (read_extra(Path(p)) for p in req.extra_body) if text],
        "verdict": verdict_rows(req.verdict),
    }
    return render_template(req.template or resource("templates/pr_body.md.j2"), context, "template")


def _github(req: PrRequest):
    """A PyGithub client without its own retry layer: ``_transient`` below decides, once, what to
    retry and how long to wait (PyGithub's retry would also re-POST and stack with ours)."""
    from github import Auth, Github

    return Github(base_url=req.api_url.rstrip("/"), auth=Auth.Token(req.token), retry=None, timeout=30)


def _transient(exc) -> TransientError | None:
    """5xx, 429 and GitHub's rate-limit 403s are worth retrying (after Retry-After when given)."""
    status = getattr(exc, "status", 0) or 0
    headers = {k.lower(): v for k, v in (getattr(exc, "headers", None) or {}).items()}
    text = json.dumps(getattr(exc, "data", None) or {}).lower()
    after = headers.get("retry-after")
    rate_limited = status in (403, 429) and (
        after is not None or "rate limit" in text or headers.get("x-ratelimit-remaining") == "0"
    )
    if status >= 500 or rate_limited:
        delay = None
        if after is not None:
            try:
                delay = float(after)
            except ValueError:
                delay = None
        return TransientError(f"GitHub API answered HTTP {status}", retry_after=delay)
    return None


class _Api:
    """The GitHub REST calls of this stage, each retried on 5xx/rate limits, errors named."""

    def __init__(self, req: PrRequest, github_factory=None):
        self.req = req
        self.gh = (github_factory or _github)(req)
        self.owner = req.repository.split("/")[0]
        self._repo = None

    def call(self, fn, what: str):
        from github import GithubException

        def attempt():
            try:
                return fn()
            except GithubException as exc:
                transient = _transient(exc)
                if transient is not None:
                    raise transient from exc
                raise

        try:
            return retry_or_raise(
                attempt,
                what=f"GitHub API {what}",
                message="{problem} to " + what + " after retries",
                fix="re-run the job; GitHub may be degraded",
            )
        except GithubException as exc:
            raise _api_error(exc, what, self.req) from exc

    def repository(self):
        if self._repo is None:
            self._repo = self.call(lambda: self.gh.get_repo(self.req.repository), "get repository")
        return self._repo

    def default_branch(self) -> str:
        return self.repository().default_branch or ""

    def find_open(self, base: str):
        repo = self.repository()
        pulls = self.call(
            lambda: list(repo.get_pulls(state="open", head=f"{self.owner}:{self.req.branch}", base=base)),
            "list pull requests",
        )
        return pulls[0] if pulls else None

    def upsert_pull(self, base: str, body: str, pushed: bool, result: PrResult) -> None:
        req, repo = self.req, self.repository()
        title = req.title or f"mlops: update {req.repo_path}"
        pull = self.find_open(base)
        if pull is None:
            result.operation = "created"
            attempts = []

            def create():
                attempts.append(1)
                return repo.create_pull(title=title, body=body, base=base, head=req.branch, draft=req.draft)

            try:
                pull = self.call(create, "create pull request")
            except StageError as exc:
                # a 5xx after the write landed, or a concurrent run (422 "already exists"): adopt that PR
                pull = self.find_open(base)
                if pull is None:
                    raise
                if "HTTP 422" in exc.problem and len(attempts) == 1:  # another run opened it: ours updates it
                    result.operation = "updated" if pushed else "unchanged"
        if (pull.body or "") != body or pull.title != title:
            self.call(lambda: pull.edit(title=title, body=body), "update pull request")
            if result.operation != "created":
                result.operation = "updated"
        elif result.operation != "created":
            result.operation = "updated" if pushed else "unchanged"
        current = {label.name for label in pull.labels}
        missing = [label for label in req.labels if label not in current]
        if missing:
            self.call(lambda: pull.add_to_labels(*missing), "add labels")
        assigned = {user.login.lower() for user in (pull.assignees or [])}
        unassigned = [user for user in req.assignees if user.lower() not in assigned]
        if unassigned:
            self.call(lambda: pull.add_to_assignees(*unassigned), "add assignees")
        if req.reviewers and result.operation == "created":
            users = [r for r in req.reviewers if "/" not in r]
            teams = [r.split("/", 1)[1] for r in req.reviewers if "/" in r]
            self.call(lambda: pull.create_review_request(reviewers=users, team_reviewers=teams), "request reviewers")
        result.pr_number = pull.number
        result.pr_url = pull.html_url


def _api_error(exc, what: str, req: PrRequest) -> Exception:
    message = ""
    if isinstance(exc.data, dict):
        message = str(exc.data.get("message") or "")
        errors = exc.data.get("errors") or []
        if errors and isinstance(errors[0], dict) and errors[0].get("message"):
            message += f": {errors[0]['message']}"
    if exc.status == 401:
        return InputError(
            "token", f"GitHub answered 401 to {what} ({message or 'bad credentials'})", "pass a valid token"
        )
    if exc.status == 403:
        return InputError(
            "token",
            f"GitHub answered 403 to {what} ({message})",
            "grant the job permissions contents: write and pull-requests: write",
        )
    if exc.status == 404:
        return InputError(
            "repository",
            f"GitHub answered 404 to {what} for '{req.repository}'",
            "check the owner/name and that the token can see it",
        )
    return StageError(f"GitHub API {what} failed: HTTP {exc.status} {message}", "read the message above")
