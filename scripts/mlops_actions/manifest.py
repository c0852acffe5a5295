"""sha256 manifests in ``sha256sum`` format: write one for a directory, verify a directory against it."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .modelinfo import file_sha256

NAME = "MANIFEST.sha256"


def entries(directory: Path) -> dict[str, str]:
    directory = Path(directory)
    return {
        p.relative_to(directory).as_posix(): file_sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != NAME
    }


def write(directory: Path) -> Path:
    path = Path(directory) / NAME
    lines = [f"{digest}  {rel}\n" for rel, digest in entries(directory).items()]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def read(path: Path) -> dict[str, str]:
    result: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise InputError("manifest", f"{path} line {number} is not '<sha256>  <path>'", "regenerate it with fetch-artifacts")
        result[rel] = digest
    return result


def verify(directory: Path, input_name: str = "source-dir") -> dict[str, str]:
    """Check every file against the manifest (and that no file is missing or extra)."""
    directory = Path(directory)
    path = directory / NAME
    if not path.is_file():
        raise InputError(input_name, f"'{directory}' has no {NAME}", "pass the path output of fetch-artifacts, which writes and verifies it")
    expected = read(path)
    actual = entries(directory)
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
