"""sha256 manifests in ``sha256sum`` format: write one for a directory, verify a directory against it.

A manifest lists the plain files of a folder and never follows a link: a symbolic link (or a
special file) anywhere in the folder is refused with one line naming the input
(:func:`mlops_actions.core.paths.tree_files`), so a verified folder holds exactly the listed bytes and
nothing that points out of it. The stage marker ``.mlops-output`` is not listed: it says which
stage wrote the folder, it is not part of what was delivered."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .modelinfo import file_sha256
from .paths import MARKER, read_text_input, tree_files

NAME = "MANIFEST.sha256"
MAX_BYTES = 50_000_000


def entries(directory: Path, input_name: str = "directory") -> dict[str, str]:
    directory = Path(directory)
    return {rel: file_sha256(directory / rel) for rel in tree_files(directory, input_name, skip=(NAME, MARKER))}


def write(directory: Path, input_name: str = "directory") -> Path:
    path = Path(directory) / NAME
    lines = [f"{digest}  {rel}\n" for rel, digest in entries(directory, input_name).items()]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def read(path: Path, input_name: str = "directory") -> dict[str, str]:
    path = Path(path)
    if path.is_symlink():
        raise InputError(
            input_name, f"'{path}' is a symbolic link; links are never followed", "regenerate it with fetch-artifacts"
        )
    text = read_text_input(path, input_name, f"a {NAME} written by fetch-artifacts", max_bytes=MAX_BYTES)
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InputError(
                input_name, f"{path} line {number} is not '<sha256>  <path>'", "regenerate it with fetch-artifacts"
            )
        parts = rel.split("/")
        if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
            raise InputError(
                input_name,
                f"{path} line {number} names '{rel[:80]}', not a plain relative path inside the folder",
                "regenerate it with fetch-artifacts",
            )
        result[rel] = digest
    return result


def verify(directory: Path, input_name: str = "source-dir") -> dict[str, str]:
    """Check every file against the manifest (and that no file is missing or extra)."""
    directory = Path(directory)
    path = directory / NAME
    if not directory.is_dir():
        raise InputError(input_name, f"'{directory}' is not a folder", "pass the path output of fetch-artifacts")
    if not path.is_file() and not path.is_symlink():
        raise InputError(
            input_name,
            f"'{directory}' has no {NAME}",
            "pass the path output of fetch-artifacts, which writes and verifies it",
        )
    expected = read(path, input_name)
    actual = entries(directory, input_name)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    if missing or extra or changed:
        parts = []
        if changed:
            parts.append(f"changed: {', '.join(changed[:3])}")
        if missing:
            parts.append(f"missing: {', '.join(missing[:3])}")
        if extra:
            parts.append(f"unlisted: {', '.join(extra[:3])}")
        raise InputError(
            input_name,
            f"files do not match {NAME} ({'; '.join(parts)})",
            "fetch the artifacts again; do not edit them after fetch-artifacts",
        )
    return expected
