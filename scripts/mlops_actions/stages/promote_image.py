"""Stage promote-image: copy an image by digest from a nonprod repository to a prod repository
(on the same or another registry) through the registry API, without rebuilding or re-pushing
through an engine. Blobs are mounted across repositories when the registry is the same, copied
otherwise; the manifest bytes are PUT unchanged, so the digest is preserved. Every tag is read
back and must resolve to the source digest."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field

from ..core import gha, images
from ..core.errors import InputError, StageError
from ..core.images import normalize_version
from ..core.registry import INDEX_TYPES, Registry, repository_path


@dataclass
class PromoteRequest:
    source: str
    target: str
    version: str = ""
    latest: bool = True
    extra_tags: list[str] = field(default_factory=list)
    source_username: str = ""
    source_password: str = ""
    target_username: str = ""
    target_password: str = ""


@dataclass
class PromoteResult:
    image: str
    digest: str
    tags: list[str]
    copied: int = 0
    mounted: int = 0
    present: int = 0

    def outputs(self) -> dict[str, object]:
        return {"image": self.image, "digest": self.digest, "tags": "\n".join(self.tags)}

    def summary(self, source: str) -> str:
        rows = [[f"`{t}`", f"`{self.digest}`"] for t in self.tags]
        return (
            f"### 🏷️ promote-image\n`{source}` → `{self.image}` ({self.copied} blobs copied, {self.mounted} "
            f"mounted, {self.present} present)\n\n" + gha.md_table(["tag", "digest"], rows)
        )


def plan(req: PromoteRequest) -> tuple[images.ImageRef, images.ImageRef, list[str]]:
    src = images.parse(req.source, "source")
    if not src.digest:
        raise InputError(
            "source", f"'{req.source}' is not pinned by digest", "pass name@sha256:... (push-image's image output)"
        )
    dst = images.parse(req.target, "target", allow_tag=False)
    tags: list[str] = []
    version = normalize_version(req.version)
    if version:
        tags.append(version)
    if req.latest:
        tags.append("latest")
    for t in req.extra_tags:
        tags.append(images.check_tag(t, "tags"))
    tags = list(dict.fromkeys(tags))
    if not tags:
        raise InputError(
            "version", "no tag to set (version empty, latest false, no tags)", "set version, latest or tags"
        )
    if (src.registry, repository_path(src)) == (dst.registry, repository_path(dst)):
        raise InputError("target", f"'{req.target}' is the source repository", "name the prod repository")
    return src, dst, tags


def promote(req: PromoteRequest) -> PromoteResult:
    src, dst, tags = plan(req)
    src_repo, dst_repo = repository_path(src), repository_path(dst)
    same = src.registry == dst.registry
    t_user, t_pass = req.target_username, req.target_password
    if same and not t_pass:
        t_user, t_pass = req.source_username, req.source_password
    source = Registry(
        src.registry,
        req.source_username,
        req.source_password,
        scopes=[f"repository:{src_repo}:pull"],
        input_prefix="source-",
    )
    target = Registry(
        dst.registry,
        t_user,
        t_pass,
        input_prefix="target-" if req.target_password or not same else "source-",
        scopes=[f"repository:{dst_repo}:pull,push"] + ([f"repository:{src_repo}:pull"] if same else []),
    )
    result = PromoteResult(image=f"{dst.name}@{src.digest}", digest=src.digest, tags=[])
    _copy_manifest(source, target, src_repo, dst_repo, src.digest, same, result, top=True)
    body, media, _ = source.get_manifest(src_repo, src.digest)
    for tag in tags:
        target.put_manifest(dst_repo, tag, body, media)
    for tag in tags:
        seen = target.manifest_digest(dst_repo, tag)
        if seen != src.digest:
            raise StageError(
                f"{dst.name}:{tag} resolves to {seen or 'nothing'}, not the source digest {src.digest}",
                "the target registry rewrote the manifest; promote to a registry that stores manifests unchanged",
            )
        result.tags.append(f"{dst.name}:{tag}")
    return result


def _copy_manifest(
    source: Registry,
    target: Registry,
    src_repo: str,
    dst_repo: str,
    digest: str,
    same: bool,
    result: PromoteResult,
    top: bool = False,
) -> None:
    body, media, _ = source.get_manifest(src_repo, digest)
    if not body:
        raise (
            InputError(
                "source", f"{source.registry}/{src_repo}@{digest} does not exist", "pass the image output of push-image"
            )
            if top
            else StageError(f"{src_repo}@{digest} lists a manifest the registry does not hold", "push the image again")
        )
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise StageError(
            f"the source manifest hashes to {actual}, not {digest}",
            "the source registry served other bytes; retry or check it",
        )
    manifest = json.loads(body)
    media = media or manifest.get("mediaType", "")
    if media in INDEX_TYPES:
        for child in manifest.get("manifests") or []:
            _copy_manifest(source, target, src_repo, dst_repo, child["digest"], same, result)
    else:
        blobs = [manifest["config"]] + list(manifest.get("layers") or [])
        for blob in blobs:
            _copy_blob(source, target, src_repo, dst_repo, blob["digest"], same, result)
    put = target.put_manifest(dst_repo, digest, body, media)
    if put and put != digest:
        raise StageError(
            f"the target stored the manifest as {put}, not {digest}",
            "promote to a registry that stores manifests unchanged",
        )


def _copy_blob(
    source: Registry, target: Registry, src_repo: str, dst_repo: str, digest: str, same: bool, result: PromoteResult
) -> None:
    if target.has_blob(dst_repo, digest):
        result.present += 1
        return
    if same:
        resp = target.request(
            "POST",
            f"/v2/{dst_repo}/blobs/uploads/",
            what=f"mount blob {digest[:19]}",
            ok=(201, 202),
            params={"mount": digest, "from": src_repo},
        )
        if resp.status_code == 201:
            result.mounted += 1
            return
        location = resp.headers.get("Location", "")
    else:
        location = target.request(
            "POST", f"/v2/{dst_repo}/blobs/uploads/", what="start blob upload", ok=(202,)
        ).headers.get("Location", "")
    if not location:
        raise StageError(
            f"registry {target.registry} started a blob upload without a Location",
            "promote to a registry that implements the OCI distribution API",
        )
    with tempfile.TemporaryFile() as tmp:
        resp = source.request("GET", f"/v2/{src_repo}/blobs/{digest}", what=f"read blob {digest[:19]}", stream=True)
        sha = hashlib.sha256()
        for chunk in resp.iter_content(1 << 20):
            sha.update(chunk)
            tmp.write(chunk)
        if "sha256:" + sha.hexdigest() != digest:
            raise StageError(
                f"blob {digest} read from the source does not match its digest",
                "retry; the source registry served corrupt data",
            )
        tmp.seek(0)
        url = location if location.startswith("http") else target.url + location
        sep = "&" if "?" in url else "?"
        target.request(
            "PUT",
            f"{url}{sep}digest={digest}",
            what=f"upload blob {digest[:19]}",
            ok=(201,),
            data=tmp,
            headers={"Content-Type": "application/octet-stream"},
        )
    result.copied += 1
