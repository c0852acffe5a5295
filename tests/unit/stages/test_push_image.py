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


# -- the registry build cache: build-push-action's syntax ------------------------------------------

def test_cache_entries_in_build_push_actions_syntax():
    from mlops_actions.stages.push_image import CacheRef, parse_cache

    got = parse_cache(["type=registry,ref=ghcr.io/acme/model:buildcache,mode=max", "",
                       "127.0.0.1:5000/acme/model:cache", " type=registry , ref=acme/m:c "], "cache-to")
    assert got == [CacheRef("ghcr.io/acme/model:buildcache", "max"), CacheRef("127.0.0.1:5000/acme/model:cache"),
                   CacheRef("acme/m:c")]
    assert got[0].stage("Builder") == "ghcr.io/acme/model:buildcache-builder"


@pytest.mark.parametrize("entry,problem", [
    ("type=gha,mode=max", "type=gha is not a cache the engine's builder can read"),
    ("type=local,src=/tmp/cache", "'src=/tmp/cache'"),
    ("type=registry,ref=ghcr.io/acme/model", "names no tag"),
    ("type=registry,ref=ghcr.io/acme/model:c,mode=all", "mode=all is not min or max"),
    ("type=registry,ref=Ghcr.io/Acme/Model:c", "not a valid image reference"),
    ("ref=acme/m:c,ignore-error", "'ignore-error'"),
])
def test_bad_cache_entry_is_one_line_naming_the_input(entry, problem):
    from mlops_actions.stages.push_image import parse_cache

    with pytest.raises(InputError) as err:
        parse_cache([entry], "cache-from")
    assert err.value.input_name == "cache-from" and problem in str(err.value), str(err.value)
    assert "type=registry,ref=" in str(err.value) or "lower case" in str(err.value) or "registry/name" in str(err.value)


def test_named_stages_of_a_dockerfile(tmp_path):
    from mlops_actions.stages.push_image import named_stages

    (tmp_path / "Dockerfile").write_text("ARG B=x\nFROM ${B} AS builder\nRUN true\nfrom --platform=$BUILDPLATFORM b AS Deps\n"
                                         "FROM scratch\nCOPY --from=builder / /\n")
    assert named_stages(tmp_path / "Dockerfile") == ["builder", "deps"]
