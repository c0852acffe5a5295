"""The registry client's pure parts: where it connects and how it reads auth challenges."""

import pytest

from mlops_actions.core import images
from mlops_actions.core.registry import base_url, parse_challenge, repository_path


@pytest.mark.parametrize("registry,url", [
    ("127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("localhost:5000", "http://localhost:5000"),
    ("[::1]:5000", "http://[::1]:5000"),
    ("ghcr.io", "https://ghcr.io"),
    ("docker.io", "https://registry-1.docker.io"),
    ("10.0.0.5:5000", "https://10.0.0.5:5000"),
])
def test_base_url_is_https_except_loopback(registry, url):
    assert base_url(registry) == url


def test_insecure_registries_opt_in(monkeypatch):
    monkeypatch.setenv("MLOPS_INSECURE_REGISTRIES", "10.0.0.5:5000")
    assert base_url("10.0.0.5:5000") == "http://10.0.0.5:5000"


def test_docker_hub_official_images_live_under_library():
    assert repository_path(images.parse("python", "image")) == "library/python"
    assert repository_path(images.parse("ghcr.io/o/m", "image")) == "o/m"


def test_challenges():
    scheme, params = parse_challenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/m:pull"')
    assert scheme == "bearer" and params == {"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:o/m:pull"}
    assert parse_challenge('Basic realm="mlops-local"') == ("basic", {"realm": "mlops-local"})
