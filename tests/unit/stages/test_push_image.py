"""Image tags: the one tag scheme (latest only on the default branch) and the next release version."""

import pytest

from mlops_actions.core import images
from mlops_actions.core.errors import InputError
from mlops_actions.stages.push_image import next_version, compute_tags


def test_tags_on_default_branch():
    assert compute_tags("refs/heads/main", "0123456789abcdef", "main", "1.2.3", []) == ["latest", "main-0123456", "v1.2.3"]


def test_tags_on_feature_branch_and_pr_and_tag_ref():
    assert compute_tags("refs/heads/feat/x y", "abcdef0123", "main", "", []) == ["feat-x-y-abcdef0"]
    assert compute_tags("refs/pull/12/merge", "abcdef0123", "main", "", []) == ["pr-12-abcdef0"]
    assert compute_tags("refs/tags/v2.0.1", "abcdef0123", "main", "", []) == ["v2.0.1"]


def test_latest_only_on_the_default_branch():
    assert compute_tags("refs/heads/main", "abcdef0123", "trunk", "", []) == ["main-abcdef0"]
    assert compute_tags("refs/heads/trunk", "abcdef0123", "trunk", "", []) == ["latest", "trunk-abcdef0"]


def test_long_branch_tag_keeps_the_sha_and_fits():
    tag = compute_tags("refs/heads/" + "b" * 200 + "/.", "abcdef0123", "main", "", [])[0]
    assert len(tag) == 128 and tag.endswith("b-abcdef0")
    images.check_tag(tag, "tags")


@pytest.mark.parametrize("existing,bump,expected", [
    ([], "patch", "0.1.0"),
    (["latest", "main-abcdef0", "v1.2", "1.9.9"], "minor", "0.1.0"),
    (["v1.2.3", "v1.10.0", "v1.9.9", "v2.0.0-rc.1"], "patch", "1.10.1"),
    (["v1.2.3", "v1.10.0"], "minor", "1.11.0"),
    (["v1.2.3", "v1.10.0"], "major", "2.0.0"),
])
def test_next_version_after_the_highest_release(existing, bump, expected):
    assert next_version(existing, bump) == expected


def test_next_version_refuses_unknown_bump():
    with pytest.raises(InputError, match="'version-bump'"):
        next_version(["v1.0.0"], "huge")


def test_extra_tag_checked():
    with pytest.raises(InputError, match="'tags'"):
        compute_tags("", "abc1234", "main", "", ["bad tag"])
