"""The ``github_api`` pytest fixture: a started :class:`GitHubDouble` that fails its test on any
contract violation. Import it into a test module or conftest (``from github_double.fixture import
github_api``). The OpenAPI description is loaded once per process, so each start is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import GitHubDouble


@pytest.fixture
def github_api() -> Iterator[GitHubDouble]:
    """A fresh double (no repositories, token ``double.token``); teardown asserts no violations."""
    with GitHubDouble() as double:
        yield double
