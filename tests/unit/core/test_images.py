import pytest

from mlops_actions.core import images
from mlops_actions.core.errors import InputError
from mlops_actions.core.images import normalize_version


@pytest.mark.parametrize("ref,registry,repo,name", [
    ("python:3.11-slim", "docker.io", "python", "python"),
    ("owner/model", "docker.io", "owner/model", "owner/model"),
    ("ghcr.io/owner/model", "ghcr.io", "owner/model", "ghcr.io/owner/model"),
    ("localhost:5000/m", "localhost:5000", "m", "localhost:5000/m"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/m", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "team/m",
     "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/m"),
])
def test_parse(ref, registry, repo, name):
    parsed = images.parse(ref, "image")
    assert (parsed.registry, parsed.repository, parsed.name) == (registry, repo, name)


@pytest.mark.parametrize("ref,hint", [("ghcr.io/Owner/Model", "lower case"), ("a b", "registry/name"), ("x/", "registry/name"), ("", "image name")])
def test_parse_refuses(ref, hint):
    with pytest.raises(InputError) as err:
        images.parse(ref, "image")
    assert hint in err.value.line()


def test_tag_not_allowed_where_tags_are_computed():
    with pytest.raises(InputError, match="tag or digest"):
        images.parse("ghcr.io/o/m:latest", "image", allow_tag=False)


@pytest.mark.parametrize("bad", ["1.2", "latest", "v1.2.3.4", "01.2.3", "1.2.3+build"])
def test_version_must_be_semver(bad):
    with pytest.raises(InputError, match="'version'"):
        normalize_version(bad)


