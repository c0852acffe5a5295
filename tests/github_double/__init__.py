"""A contract-checked double of the GitHub REST API for tests (see ``server.py``).

    with GitHubDouble() as gh:            # or the pytest fixture ``github_api`` from .fixture
        gh.add_repo("acme/models", branches={"main", "train/abc"})
        Github(base_url=gh.url, auth=Auth.Token(gh.token)) ...
"""

from .server import GitHubDouble, Pull, Recorded, Repo, assert_no_violations, git_branches
from .spec import Contract, contract

__all__ = ["Contract", "GitHubDouble", "Pull", "Recorded", "Repo", "assert_no_violations", "contract", "git_branches"]
