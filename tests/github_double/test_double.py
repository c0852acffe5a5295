"""The GitHub double, driven by real PyGithub calls, and proof that its contract check bites."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import requests
from github import BadCredentialsException, GithubException, GithubRetry, UnknownObjectException

from . import GitHubDouble, assert_no_violations, git_branches
from .fixture import github_api  # noqa: F401  (the fixture under test)

PULLS = "/repos/{owner}/{repo}/pulls"


@pytest.fixture
def repo(github_api: GitHubDouble):  # noqa: F811
    """acme/models with branches main, train/a, train/b, seen through a PyGithub client."""
    github_api.add_repo("acme/models", branches={"main", "train/a", "train/b"}, collaborators={"alice"})
    return github_api.client().get_repo("acme/models")


def test_get_repo_unknown_repo_and_bad_token(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    assert (repo.full_name, repo.default_branch, repo.private) == ("acme/models", "main", False)
    with pytest.raises(UnknownObjectException) as missing:
        github_api.client().get_repo("acme/nope")
    assert missing.value.status == 404 and missing.value.data["message"] == "Not Found"
    with pytest.raises(BadCredentialsException) as bad:
        github_api.client(token="ghp_wrong").get_repo("acme/models")
    assert bad.value.status == 401 and bad.value.data["message"] == "Bad credentials"


def test_pull_request_lifecycle(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    pr = repo.create_pull(title="Model v1", body="metrics", base="main", head="train/a", draft=True)
    repo.create_pull(title="Model v2", body="", base="main", head="train/b")
    assert (pr.number, pr.state, pr.draft, pr.head.label, pr.head.ref, pr.base.ref) == (
        1, "open", True, "acme:train/a", "train/a", "main",
    )  # fmt: skip
    assert pr.html_url == "https://github.com/acme/models/pull/1"
    assert pr.user.login == "mlops-bot"

    assert [p.number for p in repo.get_pulls(state="open", head="acme:train/a", base="main")] == [1]
    assert [p.number for p in repo.get_pulls(state="open", head="other:train/a")] == []
    assert [p.number for p in repo.get_pulls(head="train/a")] == [2, 1], "GitHub ignores head without owner:"

    pr.edit(title="Model v1 (retrained)", body="better metrics")
    pr.add_to_labels("model-update", "automated")
    pr.create_review_request(reviewers=["alice"])
    with pytest.raises(GithubException) as author:
        pr.create_review_request(reviewers=["mlops-bot"])
    assert author.value.status == 422 and "pull request author" in author.value.data["message"]

    again = repo.get_pull(1)
    assert (again.title, again.body) == ("Model v1 (retrained)", "better metrics")
    assert [label.name for label in again.labels] == ["model-update", "automated"]
    assert [user.login for user in again.requested_reviewers] == ["alice"]
    assert github_api.pulls["acme/models"][0].labels == ["model-update", "automated"]
    assert [r.status for r in github_api.requests if r.operation == "pulls/create"] == [201, 201]


def test_team_reviewers_only_for_the_repository_teams(github_api: GitHubDouble) -> None:  # noqa: F811
    github_api.add_repo("acme/teams", branches={"main", "train/a"}, teams={"ml-team"})
    github_api.add_repo("acme/no-teams", branches={"main", "train/a"})
    pr = github_api.client().get_repo("acme/teams").create_pull(title="t", body="", base="main", head="train/a")
    pr.create_review_request(reviewers=["alice"], team_reviewers=["ml-team"])
    again = github_api.client().get_repo("acme/teams").get_pull(pr.number)
    assert [t.slug for t in again.requested_teams] == ["ml-team"] and [u.login for u in again.requested_reviewers] == ["alice"]
    with pytest.raises(GithubException) as unknown:
        pr.create_review_request(team_reviewers=["other-team"])
    assert unknown.value.status == 422
    other = github_api.client().get_repo("acme/no-teams").create_pull(title="t", body="", base="main", head="train/a")
    with pytest.raises(GithubException) as unmodelled:
        other.create_review_request(team_reviewers=["ml-team"])
    assert unmodelled.value.status == 422


def test_duplicate_and_missing_branches_are_422(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    repo.create_pull(title="Model", body="", base="main", head="train/a")
    with pytest.raises(GithubException) as duplicate:
        repo.create_pull(title="Model", body="", base="main", head="train/a")
    assert duplicate.value.status == 422
    assert duplicate.value.data["message"] == "Validation Failed"
    assert duplicate.value.data["errors"] == [
        {"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for acme:train/a."}
    ]
    for base, head, field in (("release", "train/a", "base"), ("main", "train/zzz", "head")):
        with pytest.raises(GithubException) as invalid:
            repo.create_pull(title="Model", body="", base=base, head=head)
        assert invalid.value.data["errors"] == [{"resource": "PullRequest", "field": field, "code": "invalid"}]


def test_branches_from_a_bare_git_repository(tmp_path: Path) -> None:
    bare, work = tmp_path / "models.git", tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "--allow-empty", "-m", "base"], check=True)
    subprocess.run([*git, "-C", str(work), "push", "-q", str(bare), "main", "main:same"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "--allow-empty", "-m", "train"], check=True)
    subprocess.run([*git, "-C", str(work), "push", "-q", str(bare), "HEAD:train/1"], check=True)
    shas = git_branches(bare)
    assert set(shas) == {"main", "same", "train/1"}

    with GitHubDouble(branches_of=lambda owner, name: git_branches(bare)) as double:
        double.add_repo("acme/models")
        repo = double.client().get_repo("acme/models")
        pr = repo.create_pull(title="Model", body="", base="main", head="acme:train/1")
        assert (pr.head.sha, pr.base.sha) == (shas["train/1"], shas["main"])
        with pytest.raises(GithubException) as no_commits:
            repo.create_pull(title="Model", body="", base="main", head="same")
        assert no_commits.value.data["errors"][0]["message"] == "No commits between main and same"


def test_pagination_follows_link_headers(github_api: GitHubDouble) -> None:  # noqa: F811
    branches = {"main", *(f"train/{n}" for n in range(5))}
    github_api.add_repo("acme/models", branches=branches)
    repo = github_api.client(per_page=2).get_repo("acme/models")
    for n in range(5):
        repo.create_pull(title=f"Model {n}", body="", base="main", head=f"train/{n}")
    assert [p.number for p in repo.get_pulls(state="all", sort="created", direction="asc")] == [1, 2, 3, 4, 5]
    assert [r.query.get("page") for r in github_api.requests if r.operation == "pulls/list"] == [None, ["2"], ["3"]]


def test_5xx_faults_are_retried_by_pygithub_even_for_post(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    github_api.fail_next("POST", PULLS, status=502, times=2)
    pr = repo.create_pull(title="Model", body="", base="main", head="train/a")
    assert pr.number == 1
    assert [(r.status, r.fault) for r in github_api.requests if r.method == "POST"] == [
        (502, "502"), (502, "502"), (201, None),
    ]  # fmt: skip

    github_api.fail_next("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", status=503, times=5)
    impatient = github_api.client(retry=GithubRetry(total=2)).get_repo("acme/models")
    with pytest.raises(requests.exceptions.RetryError):  # exhausted retries surface as requests' error
        impatient.get_pull(1)
    with pytest.raises(GithubException) as no_retry:
        github_api.client(retry=None).get_repo("acme/models").get_pull(1)
    assert no_retry.value.status == 503 and no_retry.value.data["message"] == "Service Unavailable"


def test_failed_write_that_took_effect_retries_into_a_duplicate(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    github_api.fail_next("POST", PULLS, status=502, apply=True)
    with pytest.raises(GithubException) as duplicate:
        repo.create_pull(title="Model", body="", base="main", head="train/a")
    assert "already exists" in duplicate.value.data["errors"][0]["message"]
    assert len(github_api.pulls["acme/models"]) == 1


def test_secondary_rate_limit_waits_for_retry_after(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    github_api.rate_limit_next("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
    repo.create_pull(title="Model", body="", base="main", head="train/a")
    started = time.monotonic()
    assert repo.get_pull(1).number == 1
    assert time.monotonic() - started >= 1.0
    limited = [r for r in github_api.requests if r.fault == "403"]
    assert len(limited) == 1 and limited[0].operation == "pulls/get"


def test_create_race_gives_422_while_the_pull_request_exists(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    github_api.race_next("POST", PULLS)
    with pytest.raises(GithubException) as raced:
        repo.create_pull(title="Model", body="", base="main", head="train/a")
    assert raced.value.status == 422
    assert raced.value.data["errors"][0]["message"] == "A pull request already exists for acme:train/a."
    assert [(p.number, p.head, p.state) for p in github_api.pulls["acme/models"]] == [(1, "train/a", "open")]
    assert [p.number for p in repo.get_pulls(head="acme:train/a")] == [1]


def test_malformed_request_body_is_a_violation(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    answer = requests.post(
        f"{github_api.url}/repos/acme/models/pulls",
        json={"title": 5, "head": "train/a", "base": "main"},
        headers={"Authorization": f"Bearer {github_api.token}"},
        timeout=10,
    )
    assert answer.status_code == 422 and answer.json()["message"].startswith("Invalid request.")
    assert github_api.violations == [
        "POST /repos/acme/models/pulls: request body title: 5 is not of type 'string'"
    ]
    assert github_api.pulls["acme/models"] == []
    github_api.violations.clear()


def test_corrupted_response_is_a_violation(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    repo.create_pull(title="Model", body="", base="main", head="train/a")
    github_api.drop_field = "number"
    repo.get_pull(1)
    assert github_api.violations == [
        "GET /repos/acme/models/pulls/1: response 200 body <root>: 'number' is a required property"
    ]
    github_api.violations.clear()


def test_unimplemented_operations_are_violations(github_api: GitHubDouble, repo) -> None:  # noqa: F811
    auth = {"Authorization": f"token {github_api.token}"}
    assert requests.delete(f"{github_api.url}/repos/acme/models", headers=auth, timeout=10).status_code == 404
    assert requests.get(f"{github_api.url}/no/such/thing", headers=auth, timeout=10).status_code == 404
    assert github_api.violations == [
        "DELETE /repos/acme/models: unimplemented operation repos/delete",
        "GET /no/such/thing: unimplemented operation (not in GitHub's API description)",
    ]
    with pytest.raises(AssertionError, match=r"2 contract violation\(s\):\n  DELETE /repos/acme/models"):
        assert_no_violations(github_api)
    github_api.violations.clear()
