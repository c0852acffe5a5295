"""An in-memory GitHub REST API on a local port, checked against GitHub's OpenAPI description.

Every request is matched to its documented operation and validated (parameters and JSON body);
every response, including the double's own errors and injected faults, is validated against the
documented response for its status. Problems land in :attr:`GitHubDouble.violations`; the pytest
fixture and the context manager fail when that list is not empty at the end.

Modelled, with GitHub's semantics and error shapes: repositories (``repos/get``), pull requests
(``pulls/list``, ``pulls/create``, ``pulls/get``, ``pulls/update``), labels on pull requests
(``issues/add-labels``, unknown labels are created), assignees (``issues/add-assignees``: only
collaborators, others silently ignored as GitHub does) and review requests
(``pulls/request-reviewers``; team reviewers only for a repository created with ``teams``). Pull
requests are same-repository only (no forks). Like GitHub, ``GET .../pulls?head=`` filters only when the value is ``owner:branch``.
"""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from github import Auth, Github

from .spec import Contract, Operation, contract

DEFAULT_TOKEN = "ghs_double_token"
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {request_id}."
)
DOCS = "https://docs.github.com/rest"
RATE_LIMIT_DOCS = f"{DOCS}/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits"


def git_branches(bare_repo: str | Path) -> dict[str, str]:
    """Branch name -> commit sha of a (bare) git repository, from ``git for-each-ref``.

    Use as ``GitHubDouble(branches_of=lambda owner, repo: git_branches(path))``.
    """
    out = subprocess.run(
        ["git", "--git-dir", str(bare_repo), "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


@dataclass
class Pull:
    """Server-side state of one pull request."""

    number: int
    title: str
    body: str | None
    head: str
    base: str
    head_sha: str  # at creation; responses show the branch's current sha when it is known
    base_sha: str
    user: str
    draft: bool = False
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    requested_reviewers: list[str] = field(default_factory=list)
    requested_teams: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    closed_at: str | None = None


@dataclass
class Repo:
    """Server-side state of one repository; ``branches`` is used when no ``branches_of`` is given."""

    owner: str
    name: str
    id: int
    default_branch: str
    branches: Collection[str]
    collaborators: Collection[str] | None
    private: bool
    pulls: list[Pull] = field(default_factory=list)
    teams: Collection[str] | None = None  # slugs of the owner's teams with access; None: teams not modelled
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class Recorded:
    """One request as the double saw it, with the status it answered and the fault it injected."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: Any
    status: int
    operation: str | None
    fault: str | None = None


@dataclass
class _Fault:
    """A queued fault for the next ``times`` requests of one operation."""

    method: str
    template: str
    times: int
    kind: str  # "fail" (answer status/body/headers) or "race" (run the request twice, answer the second)
    status: int = 0
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    apply: bool = False


class _Reply(Exception):
    """Raised by handlers to answer with an error response."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class GitHubDouble:
    """A contract-checked GitHub REST API double; use as a context manager or ``start()``/``stop()``.

    ``tokens`` maps each accepted token to the login it authenticates as (anything else gets 401).
    ``branches_of(owner, repo)`` returns the existing branch names (a mapping name -> sha gives
    real shas); without it each repository's ``branches`` from :meth:`add_repo` is used.
    ``web_url`` is the base of ``html_url`` values (``{web_url}/owner/repo/pull/N``).
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, str] | None = None,
        branches_of: Callable[[str, str], Collection[str]] | None = None,
        web_url: str = "https://github.com",
        spec: Contract | None = None,
    ) -> None:
        self.tokens = dict(tokens or {DEFAULT_TOKEN: "mlops-bot"})
        self.branches_of = branches_of
        self.web_url = web_url.rstrip("/")
        self.contract = spec or contract()
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.drop_field: str | None = None  # corrupt responses: delete this key from every JSON object served
        self.repos: dict[str, Repo] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._handlers: dict[str, Callable[..., tuple[int, Any, dict[str, str]]]] = {
            "repos/get": self._get_repo,
            "pulls/list": self._list_pulls,
            "pulls/create": self._create_pull,
            "pulls/get": self._get_pull,
            "pulls/update": self._update_pull,
            "issues/add-labels": self._add_labels,
            "issues/add-assignees": self._add_assignees,
            "pulls/request-reviewers": self._request_reviewers,
        }

    # -- lifecycle and setup ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base URL (``Github(base_url=double.url)``)."""
        assert self._server, "double is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token(self) -> str:
        """The first accepted token."""
        return next(iter(self.tokens))

    @property
    def pulls(self) -> dict[str, list[Pull]]:
        """Pull requests per repository full name."""
        return {repo.full_name: repo.pulls for repo in self.repos.values()}

    def start(self) -> GitHubDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def handle_one(self) -> None:
                double._serve(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_one

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # quick stop()
        threading.Thread(target=serve, name="github-double", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GitHubDouble:
        return self.start()

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.stop()
        if exc_type is None:
            assert_no_violations(self)

    def add_repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        branches: Collection[str] = ("main",),
        collaborators: Collection[str] | None = None,
        private: bool = False,
        teams: Collection[str] | None = None,
    ) -> Repo:
        """Create a repository. ``collaborators=None`` lets anyone be requested as a reviewer."""
        owner, name = full_name.split("/")
        repo = Repo(owner, name, _stable_id(full_name), default_branch, branches, collaborators, private, teams=teams)
        self.repos[full_name.lower()] = repo
        return repo

    def env(self) -> dict[str, str]:
        """The variables a GitHub Actions step would see for this API (token of the first login)."""
        return {"GITHUB_API_URL": self.url, "GITHUB_SERVER_URL": self.web_url, "GITHUB_TOKEN": self.token}

    def client(self, token: str | None = None, **kwargs: Any) -> Github:
        """A PyGithub client for this double, without PyGithub's default 0.25 s/1 s request throttling."""
        kwargs.setdefault("seconds_between_requests", None)
        kwargs.setdefault("seconds_between_writes", None)
        return Github(base_url=self.url, auth=Auth.Token(token or self.token), **kwargs)

    # -- fault injection -------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        template: str,
        *,
        status: int = 502,
        times: int = 1,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        apply: bool = False,
    ) -> None:
        """Answer the next ``times`` requests for this operation with a GitHub-shaped error.

        ``template`` is the documented path, e.g. ``/repos/{owner}/{repo}/pulls``. With
        ``apply=True`` the request takes effect server-side before the error is returned (a
        gateway timeout after the write).
        """
        self.contract.operation(method, template)  # KeyError for an undocumented operation
        text = message or ("Server Error" if status in (500, 502) else HTTPStatus(status).phrase)
        self._faults.append(_Fault(method.upper(), template, times, "fail", status, text, dict(headers or {}), apply))

    def rate_limit_next(self, method: str, template: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer with GitHub's 403 secondary rate limit (``Retry-After`` header and its message)."""
        headers = {"Retry-After": str(retry_after)}
        self.fail_next(method, template, status=403, times=times, message=SECONDARY_RATE_LIMIT, headers=headers)

    def race_next(self, method: str, template: str, *, times: int = 1) -> None:
        """Run the next request twice server-side and answer the second run, as if another client
        did the same thing a moment earlier: ``POST .../pulls`` creates the pull request and the
        caller gets 422 "A pull request already exists"."""
        self.contract.operation(method, template)
        self._faults.append(_Fault(method.upper(), template, times, "race"))

    # -- request handling ------------------------------------------------------------------------

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        method, path, query = http.command, parts.path, parse_qs(parts.query, keep_blank_values=True)
        raw = http.rfile.read(int(http.headers.get("Content-Length") or 0))
        where = f"{method} {path}"
        with self._lock:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
                self.violations.append(f"{where}: request body is not JSON")
            try:
                status, reply, headers, op, fault = self._dispatch(method, path, query, body, raw, http.headers)
            except Exception as exc:  # a bug in the double must fail the test, not hang the client
                self.violations.append(f"{where}: the double crashed: {exc!r}\n{traceback.format_exc()}")
                status, reply, headers, op, fault = 500, _error("Server Error", DOCS, 500), {}, None, "crash"
            if self.drop_field:
                for item in reply if isinstance(reply, list) else [reply]:
                    if isinstance(item, dict):
                        item.pop(self.drop_field, None)
            problems = self.contract.check_response(op, status, headers, reply)
            self.violations += [f"{where}: response {status} {problem}" for problem in problems]
            self.requests.append(Recorded(method, path, query, body, status, op and op.operation_id, fault))
            headers = {**self._common_headers(), **headers}
        payload = json.dumps(reply).encode()
        http.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(payload))}.items():
            http.send_header(name, value)
        http.end_headers()
        http.wfile.write(payload)

    def _dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, raw: bytes, request_headers: Any
    ) -> tuple[int, Any, dict[str, str], Operation | None, str | None]:
        """Validate the request, apply a queued fault or run the operation: (status, body, headers, op, fault)."""
        where = f"{method} {path}"
        found = self.contract.match(method, path)
        if found is None:
            self.violations.append(f"{where}: unimplemented operation (not in GitHub's API description)")
            return 404, _error("Not Found", DOCS, 404), {}, None, None
        op, path_params = found
        self.violations += [f"{where}: {p}" for p in self.contract.check_parameters(op, path_params, query)]
        body_problems = self.contract.check_body(op, body, bool(raw))
        self.violations += [f"{where}: {p}" for p in body_problems]
        handler = self._handlers.get(op.operation_id)
        if handler is None:
            self.violations.append(f"{where}: unimplemented operation {op.operation_id}")
            return 404, _error("Not Found", _docs(op), 404), {}, op, None
        login = self._login(request_headers.get("Authorization", ""))
        if login is None:
            return 401, _error("Bad credentials", DOCS, 401), {}, op, None
        if body_problems:  # GitHub rejects a body that does not match its schema
            message = "Invalid request.\n\n" + "\n".join(body_problems)
            return 422, _error(message, _docs(op), 422), {}, op, None

        def call() -> tuple[int, Any, dict[str, str]]:
            return self._call(handler, op, login, path_params, query, body)

        fault = next((f for f in self._faults if f.times > 0 and (f.method, f.template) == (method, op.template)), None)
        if fault is None:
            return (*call(), op, None)
        fault.times -= 1
        if fault.kind == "race":
            call()
            return (*call(), op, "race")
        if fault.apply:
            call()
        message = fault.message.replace("{request_id}", f"DOUBLE:{len(self.requests):04X}")
        docs = RATE_LIMIT_DOCS if fault.status == 403 else DOCS
        return fault.status, _error(message, docs, fault.status), dict(fault.headers), op, str(fault.status)

    def _call(
        self, handler: Callable[..., Any], op: Operation, login: str, params: dict[str, str], query: Any, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        """Run an operation's handler on its repository (404 if missing or private to others)."""
        try:
            repo = self.repos.get(f"{params['owner']}/{params['repo']}".lower())
            if repo is None or (repo.private and login not in {repo.owner, *(repo.collaborators or ())}):
                raise _Reply(404, _error("Not Found", _docs(op), 404))
            return handler(repo=repo, login=login, params=params, query=query, body=body, op=op)
        except _Reply as reply:
            return reply.status, reply.body, {}

    def _login(self, authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        return self.tokens.get(token) if scheme.lower() in ("token", "bearer") else None

    def _common_headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Used": "1",
            "X-RateLimit-Resource": "core",
            "X-GitHub-Request-Id": f"DOUBLE:{len(self.requests):04X}",
        }

    # -- operations ------------------------------------------------------------------------------

    def _get_repo(self, repo: Repo, **_: Any) -> tuple[int, Any, dict[str, str]]:
        return 200, self._repository(repo, full=True), {}

    def _list_pulls(self, repo: Repo, query: dict[str, list[str]], **_: Any) -> tuple[int, Any, dict[str, str]]:
        arg = {name: values[-1] for name, values in query.items()}
        state, head, base = arg.get("state", "open"), arg.get("head", ""), arg.get("base")
        pulls = [p for p in repo.pulls if state == "all" or p.state == state]
        if ":" in head:  # GitHub ignores a head filter that is not "owner:branch"
            owner, branch = head.split(":", 1)
            pulls = [p for p in pulls if owner.lower() == repo.owner.lower() and p.head == branch]
        if base:
            pulls = [p for p in pulls if p.base == base]
        sort = arg.get("sort", "created")
        key = {"created": "created_at", "updated": "updated_at"}.get(sort)
        pulls.sort(key=lambda p: (getattr(p, key) if key else "", p.number))
        if arg.get("direction", "desc" if sort == "created" else "asc") == "desc":
            pulls.reverse()
        per_page, page = min(int(arg.get("per_page", 30)), 100), int(arg.get("page", 1))
        last = max(1, -(-len(pulls) // per_page))
        items = [self._pull(repo, p, simple=True) for p in pulls[(page - 1) * per_page : page * per_page]]
        rels = [("next", page + 1), ("last", last)] if page < last else []
        rels += [("prev", page - 1), ("first", 1)] if page > 1 else []
        here = f"{self.url}/repos/{repo.full_name}/pulls"
        link = ", ".join(f'<{here}?{urlencode({**arg, "page": n})}>; rel="{rel}"' for rel, n in rels)
        return 200, items, {"Link": link} if link else {}

    def _create_pull(self, repo: Repo, login: str, body: Any, op: Operation, **_: Any):
        body = body if isinstance(body, dict) else {}
        missing = [name for name in ("title", "head", "base") if not body.get(name)]
        if missing:
            _invalid(op, [{"resource": "PullRequest", "code": "missing_field", "field": name} for name in missing])
        branches = self._branches(repo)
        head_owner, _, head = body["head"].rpartition(":")
        base = body["base"]
        invalid = [
            {"resource": "PullRequest", "field": name, "code": "invalid"}
            for name, ok in (("base", base in branches), ("head", head in branches and head_owner in ("", repo.owner)))
            if not ok
        ]
        if invalid:
            _invalid(op, invalid)
        if any(p.state == "open" and p.head == head and p.base == base for p in repo.pulls):
            _invalid(op, [_custom(f"A pull request already exists for {repo.owner}:{head}.")])
        head_sha, base_sha = _sha(branches, head), _sha(branches, base)
        if head_sha == base_sha:
            _invalid(op, [_custom(f"No commits between {base} and {head}")])
        now = _now()
        pull = Pull(repo.next_number, body["title"], body.get("body"), head, base, head_sha, base_sha, login,
                    draft=bool(body.get("draft")), created_at=now, updated_at=now)  # fmt: skip
        repo.next_number += 1
        repo.pulls.append(pull)
        location = f"{self.url}/repos/{repo.full_name}/pulls/{pull.number}"
        return 201, self._pull(repo, pull), {"Location": location}

    def _get_pull(self, repo: Repo, params: dict[str, str], op: Operation, **_: Any):
        return 200, self._pull(repo, self._find(repo, params["pull_number"], op)), {}

    def _update_pull(self, repo: Repo, params: dict[str, str], body: Any, op: Operation, **_: Any):
        pull = self._find(repo, params["pull_number"], op)
        body = body if isinstance(body, dict) else {}
        if "base" in body and body["base"] not in self._branches(repo):
            _invalid(op, [{"resource": "PullRequest", "field": "base", "code": "invalid"}])
        for name in ("title", "body", "state", "base"):
            if name in body:
                setattr(pull, name, body[name])
        pull.updated_at = _now()
        pull.closed_at = pull.updated_at if pull.state == "closed" else None
        return 200, self._pull(repo, pull), {}

    def _add_labels(self, repo: Repo, params: dict[str, str], body: Any, op: Operation, **_: Any):
        pull = self._find(repo, params["issue_number"], op)
        items = body.get("labels", []) if isinstance(body, dict) else body or []
        for item in items:
            name = item["name"] if isinstance(item, dict) else item
            repo.labels.setdefault(name.lower(), self._label(repo, name))
            if name.lower() not in (n.lower() for n in pull.labels):
                pull.labels.append(repo.labels[name.lower()]["name"])
        pull.updated_at = _now()
        return 200, [repo.labels[name.lower()] for name in pull.labels], {}

    def _add_assignees(self, repo: Repo, params: dict[str, str], body: Any, op: Operation, **_: Any):
        """GitHub ignores logins that cannot be assigned (not collaborators) and answers 201 with the issue."""
        pull = self._find(repo, params["issue_number"], op)
        allowed = repo.collaborators
        for login in (body or {}).get("assignees", []) if isinstance(body, dict) else []:
            if (allowed is None or login in allowed or login == repo.owner) and login not in pull.assignees:
                pull.assignees.append(login)
        pull.updated_at = _now()
        return 201, self._issue(repo, pull), {}

    def _issue(self, repo: Repo, pull: Pull) -> dict[str, Any]:
        """The issue object of a pull request (what the issues endpoints answer for it)."""
        n, full = pull.number, repo.full_name
        value = self._rewrite(
            self.contract.example("issue"),
            ("octocat/Hello-World/issues/1347", f"{full}/issues/{n}"),
            ("octocat/Hello-World/pulls/1347", f"{full}/pulls/{n}"),
            ("octocat/Hello-World/pull/1347", f"{full}/pull/{n}"),
            ("octocat/Hello-World", full),
        )
        users = [self._user(login) for login in pull.assignees]
        value.update(
            id=_stable_id(f"{full}#{n}"), node_id=_node_id("Issue", f"{full}#{n}"), number=n, title=pull.title,
            body=pull.body, state=pull.state, user=self._user(pull.user),
            labels=[repo.labels[name.lower()] for name in pull.labels], assignee=users[0] if users else None,
            assignees=users, milestone=None, locked=False, comments=0, closed_at=pull.closed_at, closed_by=None,
            created_at=pull.created_at, updated_at=pull.updated_at, state_reason=None,
            author_association="OWNER" if pull.user == repo.owner else "COLLABORATOR",
        )  # fmt: skip
        value.pop("pinned_comment", None)
        return value

    def _request_reviewers(self, repo: Repo, params: dict[str, str], body: Any, op: Operation, **_: Any):
        pull = self._find(repo, params["pull_number"], op)
        body = body if isinstance(body, dict) else {}
        reviewers = body.get("reviewers", [])
        if pull.user in reviewers:
            raise _Reply(422, _error("Review cannot be requested from pull request author.", _docs(op), 422))
        allowed = repo.collaborators
        teams = body.get("team_reviewers") or []
        if (teams and (repo.teams is None or not set(teams) <= set(repo.teams))) or (
                allowed is not None and not set(reviewers) <= {repo.owner, *allowed}):
            message = (
                "Reviews may only be requested from collaborators. One or more of the users or teams you "
                f"specified is not a collaborator of the {repo.full_name} repository."
            )
            raise _Reply(422, _error(message, _docs(op), 422))
        pull.requested_reviewers += [r for r in reviewers if r not in pull.requested_reviewers]
        pull.requested_teams += [t for t in teams if t not in pull.requested_teams]
        pull.updated_at = _now()
        return 201, self._pull(repo, pull, simple=True), {}

    # -- helpers ---------------------------------------------------------------------------------

    def _find(self, repo: Repo, number: str, op: Operation) -> Pull:
        pull = next((p for p in repo.pulls if str(p.number) == number), None)
        if pull is None:
            raise _Reply(404, _error("Not Found", _docs(op), 404))
        return pull

    def _branches(self, repo: Repo) -> Collection[str]:
        return self.branches_of(repo.owner, repo.name) if self.branches_of else repo.branches

    def _rewrite(self, value: Any, *pairs: tuple[str, str]) -> Any:
        """Rebase the spec example's octocat/Hello-World URLs onto this double and repository."""
        text = json.dumps(value)
        for old, new in (*pairs, ("https://api.github.com", self.url), ("https://github.com", self.web_url)):
            text = text.replace(old, new)
        return json.loads(text)

    def _user(self, login: str) -> dict[str, Any]:
        example = self.contract.example("simple-user")
        user = self._rewrite(example, ('"octocat"', json.dumps(login)), ("/octocat", f"/{login}"))
        user.update(id=_stable_id(login), node_id=_node_id("User", login))
        return user

    def _team(self, repo: Repo, slug: str) -> dict[str, Any]:
        example = self.contract.example("pull-request")["requested_teams"][0]
        team = self._rewrite(example, ("orgs/github/teams/justice-league", f"orgs/{repo.owner}/teams/{slug}"))
        team.update(id=_stable_id(f"{repo.owner}/{slug}"), node_id=_node_id("Team", f"{repo.owner}/{slug}"), name=slug, slug=slug,
                    parent=None, type="organization")
        return team

    def _repository(self, repo: Repo, full: bool = False) -> dict[str, Any]:
        example = self.contract.example("full-repository" if full else "pull-request")
        example = example if full else example["base"]["repo"]
        value = self._rewrite(example, ("octocat/Hello-World", repo.full_name))
        for optional in ("parent", "source", "template_repository", "organization"):
            value.pop(optional, None)
        value.update(
            license=None,
            id=repo.id, node_id=_node_id("Repository", repo.full_name), name=repo.name, full_name=repo.full_name,
            owner=self._user(repo.owner), private=repo.private, fork=False, default_branch=repo.default_branch,
            visibility="private" if repo.private else "public",
            open_issues_count=sum(p.state == "open" for p in repo.pulls),
        )  # fmt: skip
        if full:
            value.update(has_discussions=False, open_issues=value["open_issues_count"])
        return value

    def _label(self, repo: Repo, name: str) -> dict[str, Any]:
        return {
            "id": _stable_id(f"{repo.full_name}#{name}"),
            "node_id": _node_id("Label", f"{repo.full_name}#{name}"),
            "url": f"{self.url}/repos/{repo.full_name}/labels/{quote(name)}",
            "name": name,
            "description": "",  # GitHub sends null, but pull-request-simple documents a string
            "color": "ededed",
            "default": False,
        }

    def _pull(self, repo: Repo, pull: Pull, simple: bool = False) -> dict[str, Any]:
        """A pull-request (or pull-request-simple) object from the spec's example and ``pull``."""
        example = self.contract.example("pull-request")
        n, full = pull.number, repo.full_name
        value = self._rewrite(
            example,
            ("octocat/Hello-World/pulls/1347", f"{full}/pulls/{n}"),
            ("octocat/Hello-World/pull/1347", f"{full}/pull/{n}"),
            ("octocat/Hello-World/issues/1347", f"{full}/issues/{n}"),
            ("6dcb09b5b57875f334f61aebed695e2e4193db5e", pull.head_sha),
            ("octocat/Hello-World", full),
        )
        ends, live = {}, self._branches(repo)
        for side, ref, sha in (("head", pull.head, pull.head_sha), ("base", pull.base, pull.base_sha)):
            sha = live[ref] if isinstance(live, Mapping) and ref in live else sha  # follows pushes, like GitHub
            ends[side] = {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha, "user": self._user(repo.owner),
                          "repo": self._repository(repo)}  # fmt: skip
        closed = pull.state == "closed"
        value.update(
            ends, id=_stable_id(f"{full}#{n}"), node_id=_node_id("PullRequest", f"{full}#{n}"), number=n,
            title=pull.title, body=pull.body, state=pull.state, draft=pull.draft, locked=False,
            active_lock_reason=None, user=self._user(pull.user),
            labels=[repo.labels[name.lower()] for name in pull.labels],
            requested_reviewers=[self._user(login) for login in pull.requested_reviewers], requested_teams=[self._team(repo, slug) for slug in pull.requested_teams],
            assignee=self._user(pull.assignees[0]) if pull.assignees else None,
            assignees=[self._user(login) for login in pull.assignees], milestone=None, auto_merge=None,
            author_association="OWNER" if pull.user == repo.owner else "COLLABORATOR",
            created_at=pull.created_at, updated_at=pull.updated_at, closed_at=pull.closed_at,
            merged_at=None, merge_commit_sha=None, merged=False, mergeable=None if closed else True,
            mergeable_state="unknown" if closed else "clean", merged_by=None, comments=0, review_comments=0,
            maintainer_can_modify=False,
        )  # fmt: skip
        if simple:
            return {k: v for k, v in value.items() if k in self.contract.schema_properties("pull-request-simple")}
        return value


def assert_no_violations(double: GitHubDouble) -> None:
    """Fail with every contract violation, one per line, if there are any."""
    if double.violations:
        lines = "\n  ".join(double.violations)
        raise AssertionError(f"GitHub double saw {len(double.violations)} contract violation(s):\n  {lines}")


def _error(message: str, docs: str, status: int) -> dict[str, Any]:
    return {"message": message, "documentation_url": docs, "status": str(status)}


def _invalid(op: Operation, errors: list[dict[str, Any]]) -> None:
    raise _Reply(422, {**_error("Validation Failed", _docs(op), 422), "errors": errors})


def _custom(message: str) -> dict[str, str]:
    return {"resource": "PullRequest", "code": "custom", "message": message}


def _docs(op: Operation) -> str:
    return op.spec.get("externalDocs", {}).get("url", DOCS)


def _sha(branches: Collection[str], name: str) -> str:
    if isinstance(branches, Mapping):
        return branches[name]
    return f"{zlib.crc32(name.encode()):08x}" * 5


def _stable_id(key: str) -> int:
    return zlib.crc32(key.lower().encode()) or 1


def _node_id(kind: str, key: str) -> str:
    return base64.b64encode(f"0:{kind}{_stable_id(key)}".encode()).decode()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
