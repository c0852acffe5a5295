"""Image references (registry/repository:tag@digest) parsed and checked like the Docker engine does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InputError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    # host[:port]
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
    r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?)"  # [IPv6][:port]
)
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_REF = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>sha256:[a-f0-9]{{64}}))?$"
)
_TAG_RE = re.compile(rf"^{_TAG}$")
DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    registry: str  # "docker.io" when the reference names none
    repository: str  # path without registry, e.g. "library/python" or "owner/model"
    tag: str = ""
    digest: str = ""
    explicit_registry: bool = False

    @property
    def name(self) -> str:
        """The name as the engine tags and pushes it (registry omitted for Docker Hub)."""
        return f"{self.registry}/{self.repository}" if self.explicit_registry else self.repository


def parse(reference: str, input_name: str, allow_tag: bool = True) -> ImageRef:
    ref = (reference or "").strip()
    if not ref:
        raise InputError(input_name, "is empty", "give an image name such as ghcr.io/owner/model")
    m = _REF.match(ref)
    if not m:
        hint = (
            "use lower case"
            if ref.lower() != ref and _REF.match(ref.lower())
            else "use registry/name[:tag] with lower-case letters, digits and . _ - /"
        )
        raise InputError(input_name, f"'{ref}' is not a valid image reference", hint)
    domain, path = m.group("domain"), m.group("path")
    # Docker's rule: the first component names a registry only if it has '.' or ':' or is localhost.
    if domain and not ("." in domain or ":" in domain or domain == "localhost"):
        if domain != domain.lower():
            raise InputError(input_name, f"'{ref}' is not a valid image reference", "use lower case")
        domain, path = None, f"{domain}/{path}"
    return _finish(
        ref,
        (domain or DOCKER_HUB).lower(),
        path,
        m.group("tag"),
        m.group("digest"),
        bool(domain),
        input_name,
        allow_tag,
    )


def _finish(ref, registry, path, tag, digest, explicit, input_name, allow_tag) -> ImageRef:
    if not allow_tag and (tag or digest):
        raise InputError(
            input_name,
            f"'{ref}' carries a tag or digest",
            "give the name only; tags are computed from the tags/version inputs",
        )
    if len(path) > 255:
        raise InputError(input_name, "is longer than 255 characters", "use a shorter repository name")
    return ImageRef(registry=registry, repository=path, tag=tag or "", digest=digest or "", explicit_registry=explicit)


def check_tag(tag: str, input_name: str) -> str:
    if not _TAG_RE.match(tag or ""):
        raise InputError(
            input_name,
            f"'{tag}' is not a valid image tag",
            "use letters, digits, _ . - (max 128, not starting with . or -)",
        )
    return tag


SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")


def normalize_version(version: str, input_name: str = "version") -> str:
    version = (version or "").strip()
    if not version:
        return ""
    m = SEMVER.match(version)
    if not m:
        raise InputError(
            input_name,
            f"'{version}' is not semantic version X.Y.Z",
            "write e.g. 1.4.0 or v1.4.0 (pre-release: 1.4.0-rc.1)",
        )
    return "v" + version.lstrip("v")
