"""Where the repository's shared files are found at run time, and the file-system rules every
stage obeys, in one place.

**Nothing lost.** A stage writes only what it creates:

* An output folder (``render-dockerfile --output-dir``, ``fetch-artifacts --path``) is new, empty,
  or holds the marker file ``.mlops-output`` naming the same stage, which that stage writes into
  every folder it delivers. Anything else (a non-empty folder without the marker, another stage's
  folder, a file, a link) is refused with one line naming the input (:func:`claim_output`).
* The workspace root (``$GITHUB_WORKSPACE`` and the current directory), the git checkout root of
  either, and every ancestor of those are never outputs; nor is anything inside a ``.git`` or
  ``.github`` folder. An output never overlaps the stage's own inputs.
* Replacement is atomic (:func:`output_dir`): the new tree is written in a hidden sibling folder,
  then exchanged with the old one in one ``renameat2(RENAME_EXCHANGE)`` (or, where the kernel
  lacks it, two renames with the old tree restored on failure); the old tree is deleted only once
  the new one is in place. A failure leaves the old folder as it was and removes the sibling.
* A single output file (``open-pr --body-file``) is new or carries its stage's marker text
  (:func:`claim_output_file`), and is written beside and renamed (:func:`write_file_atomic`).

**Links never lead out.** Inside a folder named by an input (a model folder, fetched artifacts,
a build context, a source folder, a repo path) a symbolic link, or anything that is not a plain
file or folder (a FIFO, a device), is refused with one line naming the input and the link; no
walk, hash, manifest or copy ever follows one (:func:`tree_files`, :func:`copy_files`). The folder
named by the input may itself be reached through a link: that path is the user's own choice.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

MARKER = ".mlops-output"


def root() -> Path:
    """The mlops-actions checkout: $MLOPS_ACTIONS_ROOT, or the tree this package sits in."""
    env = os.environ.get("MLOPS_ACTIONS_ROOT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3]  # scripts/mlops_actions/core/paths.py


def resource(relative: str) -> Path:
    return root() / relative


def read_text_input(path: Path, input_name: str, what: str, max_bytes: int = 1_000_000) -> str:
    """A small text file named by an input (a spec, a template, a Markdown section): refused with
    one line when it is missing, larger than ``max_bytes``, binary (a NUL byte) or not UTF-8,
    before anything reads it whole."""
    from .errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(input_name, f"'{path}' not found", f"give the path of {what}")
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(
            input_name,
            f"'{path}' is {size / 1e6:.1f} MB, more than {max_bytes / 1e6:g} MB for {what}",
            f"give {what}, not a data or binary file",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            input_name, f"'{path}' cannot be read ({exc.strerror or exc.__class__.__name__})", f"give a readable {what}"
        ) from None
    if b"\0" in data:
        raise InputError(input_name, f"'{path}' is a binary file", f"give {what} (UTF-8 text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            input_name, f"'{path}' is not UTF-8 text (byte {exc.start})", f"save {what} as UTF-8"
        ) from None


# --- links never lead out ---------------------------------------------------------------------


def tree_files(directory: Path, input_name: str, skip: tuple[str, ...] = ()) -> list[str]:
    """The plain files below ``directory`` as sorted POSIX relative paths, walked without ever
    following a link. A symbolic link (to a file, a folder or nowhere, a loop included) or a
    special file anywhere inside is an InputError naming ``input_name`` and the entry; names in
    ``skip`` are left out at the top level only (e.g. the manifest and the output marker)."""
    from .errors import InputError

    directory = Path(directory)
    found: list[str] = []
    if not directory.is_dir():
        raise InputError(input_name, f"'{directory}' is not a folder", "give the path of an existing folder")
    pending: list[tuple[Path, str]] = [(directory, "")]  # iterative: no recursion limit on deep trees
    while pending:
        folder, prefix = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            raise InputError(
                input_name,
                f"cannot list '{folder}' ({exc.strerror or exc.__class__.__name__})",
                "give a readable folder",
            ) from None
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if not prefix and entry.name in skip:
                continue
            if entry.is_symlink():
                try:
                    target = os.readlink(entry.path)
                except OSError:
                    target = "?"
                raise InputError(
                    input_name,
                    f"'{rel}' in '{directory}' is a symbolic link (to '{target}'); links are never followed",
                    "replace the link with the file it points to, or remove it",
                )
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                pending.append((Path(entry.path), rel + "/"))
            elif stat.S_ISREG(mode):
                found.append(rel)
            else:
                raise InputError(
                    input_name,
                    f"'{rel}' in '{directory}' is not a regular file (a FIFO, socket or device)",
                    "keep only plain files and folders in it",
                )
    return sorted(found)


def copy_files(src: Path, dst: Path, relatives: list[str], input_name: str) -> None:
    """Copy the listed plain files from ``src`` into ``dst`` (created), never through a link: each
    source is checked again (a link or non-file is refused) and copied without following links."""
    from .errors import InputError

    src, dst = Path(src), Path(dst)
    for rel in relatives:
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InputError(
                input_name, f"'{rel}' is not a plain relative path", "regenerate the folder with fetch-artifacts"
            )
        source = src.joinpath(*parts)
        probe = src
        for part in parts:  # no component of the source may be a link
            probe = probe / part
            if probe.is_symlink():
                raise InputError(input_name, f"'{rel}' in '{src}' passes through a symbolic link", "remove the link")
        if not stat.S_ISREG(source.lstat().st_mode):
            raise InputError(
                input_name, f"'{rel}' in '{src}' is not a regular file", "keep only plain files and folders in it"
            )
        target = dst.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def refuse_links_under(base: Path, relative: str, input_name: str, where: str) -> None:
    """No existing component of ``base/relative`` (below ``base``) may be a symbolic link, and none
    but the last a file: a path inside a checkout must not lead out of it."""
    from .errors import InputError

    probe = Path(base)
    parts = relative.split("/")
    for number, part in enumerate(parts, start=1):
        probe = probe / part
        shown = probe.relative_to(base).as_posix()
        if probe.is_symlink():
            raise InputError(
                input_name,
                f"'{shown}' is a symbolic link on {where} (to '{os.readlink(probe)}'); links are never followed",
                "replace the link on that branch with a folder, or give another repo-path",
            )
        if not probe.exists():
            return
        if number < len(parts) and not probe.is_dir():
            raise InputError(
                input_name,
                f"'{shown}' is a file on {where}, not a folder",
                "give a repo-path whose parents are folders",
            )


# --- nothing lost -----------------------------------------------------------------------------


def _absolute(path: Path) -> Path:
    """The absolute, link-resolved form of a path that may not exist yet."""
    try:
        return Path(os.path.abspath(path)).resolve(strict=False)
    except (OSError, RuntimeError):  # a link loop in the parents
        return Path(os.path.abspath(path))


def _git_toplevel(path: Path) -> Path | None:
    probe = Path(path)
    while not probe.is_dir() and probe != probe.parent:
        probe = probe.parent
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=probe, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


def protected_roots(near: Path | None = None) -> dict[Path, str]:
    """Folders no stage may ever replace (nor any of their ancestors): the workspace root
    ($GITHUB_WORKSPACE, the current directory) and the git checkout root of each (and of ``near``)."""
    roots: dict[Path, str] = {}
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if workspace:
        roots[_absolute(Path(workspace))] = "the workspace root ($GITHUB_WORKSPACE)"
    roots.setdefault(_absolute(Path.cwd()), "the working directory")
    for start in [*list(roots), *([near] if near is not None else [])]:
        top = _git_toplevel(start)
        if top is not None:
            roots.setdefault(_absolute(top), "a git checkout root")
    return roots


def _marker_stage(folder: Path) -> str | None:
    """The stage named by the marker in ``folder`` ('' when the marker is unreadable, None without)."""
    marker = folder / MARKER
    if marker.is_symlink() or not marker.exists():
        return None
    if not marker.is_file() or marker.stat().st_size > 4096:
        return ""
    try:
        lines = marker.read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    return lines[0].strip() if lines else ""


def _check_place(path: Path, input_name: str, inputs: Mapping[str, Path | None] | None) -> Path:
    """Shared by folder and file outputs: never a root, an ancestor of one, inside .git/.github,
    a link, or overlapping an input. Returns the absolute path."""
    from .errors import InputError

    text = str(path)
    if not text.strip():
        raise InputError(input_name, "is empty", "give a new folder for the stage's output, e.g. build/out")
    if any(ord(c) < 32 for c in text):
        raise InputError(input_name, "contains control characters", "give a plain path")
    if path.is_symlink():
        raise InputError(
            input_name,
            f"'{path}' is a symbolic link; outputs are never written through links",
            "give a new folder, not a link",
        )
    absolute = _absolute(path)
    roots = protected_roots(absolute)
    # .git anywhere; .github as typed or below a workspace/checkout root (an organisation's own
    # ".github" repository is checked out at .../.github/.github, and its outputs are fine)
    parts = [*Path(os.path.abspath(path)).parts, *absolute.parts]
    names = [p for p in parts if p.lower() == ".git"]
    names += [p for p in (path.parts if not path.is_absolute() else ()) if p.lower() == ".github"]
    for root in roots:
        if root in absolute.parents:
            names += [p for p in absolute.relative_to(root).parts if p.lower() == ".github"]
    if names:
        raise InputError(
            input_name,
            f"'{path}' is or lies in a {names[0]} folder, which no stage writes",
            "give a path outside .git and .github, e.g. build/out",
        )
    for protected, what in roots.items():
        if absolute == protected or absolute in protected.parents:
            which = "is" if absolute == protected else "contains"
            raise InputError(
                input_name,
                f"'{path}' {which} {what} '{protected}', which a stage never replaces",
                "give a new folder below it, e.g. build/out",
            )
    for name, other in (inputs or {}).items():
        if other is None or not str(other).strip():
            continue
        theirs = _absolute(Path(other))
        if absolute == theirs or theirs in absolute.parents or absolute in theirs.parents:
            raise InputError(
                input_name,
                f"'{path}' overlaps input '{name}' ('{other}')",
                f"give an output folder outside '{name}', e.g. build/out",
            )
    return absolute


def claim_output(
    dest: str | os.PathLike[str], stage: str, input_name: str, inputs: Mapping[str, Path | None] | None = None
) -> Path:
    """Check that ``dest`` may become (or be replaced by) ``stage``'s output folder; see the module
    docstring for the rule. Returns ``dest`` as a Path; raises InputError naming ``input_name``."""
    from .errors import InputError

    path = Path(dest)
    try:
        return _claim_folder(path, stage, input_name, inputs)
    except OSError as exc:  # a name too long, a loop in the parents, no permission
        raise InputError(
            input_name,
            f"'{path}' cannot be used ({exc.strerror or exc.__class__.__name__})",
            "give a short path to a new folder the job can write",
        ) from None


def _claim_folder(path: Path, stage: str, input_name: str, inputs: Mapping[str, Path | None] | None) -> Path:
    from .errors import InputError

    _check_place(path, input_name, inputs)
    if path.exists() and not path.is_dir():
        raise InputError(
            input_name,
            f"'{path}' exists and is not a folder",
            "give a new folder for the output, or remove that file first",
        )
    if path.is_dir():
        try:
            occupied = any(True for _ in os.scandir(path))
        except OSError as exc:
            raise InputError(
                input_name, f"cannot list '{path}' ({exc.strerror})", "give a new folder the job can write"
            ) from None
        owner = _marker_stage(path)
        if occupied and owner != stage:
            if owner:
                raise InputError(
                    input_name,
                    f"'{path}' holds the output of {owner}, not of {stage}",
                    f"give {stage} a folder of its own, e.g. a new one",
                )
            raise InputError(
                input_name,
                f"'{path}' is a non-empty folder that {stage} did not write (no {MARKER} marker); it is never replaced",
                "give a new or empty folder, or delete this one first if its files are not needed",
            )
    return path


def _make_parents(folder: Path, input_name: str) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones created (innermost last)."""
    from .errors import InputError

    missing: list[Path] = []
    probe = folder
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    created: list[Path] = []
    try:
        for item in reversed(missing):
            item.mkdir()
            created.append(item)
    except OSError as exc:
        for item in reversed(created):
            with contextlib.suppress(OSError):
                item.rmdir()
        raise InputError(
            input_name,
            f"cannot create '{folder}' ({exc.strerror or exc.__class__.__name__})",
            "give a path whose parents are folders the job can write",
        ) from None
    if not folder.is_dir():
        raise InputError(
            input_name,
            f"'{folder}', where the output would go, is not a folder",
            "give a path whose parents are folders",
        )
    return created


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EINVAL)):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _swap(staging: Path, dest: Path) -> None:
    """Put ``staging`` in place of ``dest``; the old ``dest`` is removed only once the new one is in."""
    if not dest.exists():
        staging.rename(dest)
        return
    if _exchange(staging, dest):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the old tree
        return
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    dest.rename(old)
    try:
        staging.rename(dest)
    except OSError:
        old.rename(dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def output_dir(
    dest: str | os.PathLike[str], stage: str, input_name: str, inputs: Mapping[str, Path | None] | None = None
) -> Iterator[Path]:
    """``with output_dir(dest, stage, input) as staging:`` write the new tree into ``staging``; on a
    clean exit the stage's marker is added and the tree replaces ``dest`` atomically; on any
    failure ``dest`` is left as it was and nothing new remains (staging, created parents)."""
    from .errors import InputError

    path = claim_output(dest, stage, input_name, inputs)
    created = _make_parents(path.parent, input_name)
    staging = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        try:
            staging.mkdir()
        except OSError as exc:
            raise InputError(
                input_name,
                f"cannot write beside '{path}' ({exc.strerror or exc.__class__.__name__})",
                "give a path in a folder the job can write",
            ) from None
        yield staging
        (staging / MARKER).write_text(f"{stage}\n", encoding="utf-8")
        claim_output(path, stage, input_name, inputs)  # still ours (or new) at the moment of the swap
        _swap(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for item in reversed(created):
            with contextlib.suppress(OSError):
                item.rmdir()
        raise


def claim_output_file(path: str | os.PathLike[str], input_name: str, marker_text: str, stage: str) -> Path:
    """A single output file: new, or an earlier output of ``stage`` (it contains ``marker_text``);
    never a folder, a link, a root or inside .git/.github."""
    from .errors import InputError

    path = Path(path)
    try:
        _check_place(path, input_name, None)
        exists = path.exists()
    except OSError as exc:
        raise InputError(
            input_name,
            f"'{path}' cannot be used ({exc.strerror or exc.__class__.__name__})",
            "give a short path to a new file the job can write",
        ) from None
    if exists:
        if not path.is_file():
            raise InputError(input_name, f"'{path}' exists and is not a file", "give the path of a new file")
        try:
            head = path.read_bytes()[:1_000_000]
        except OSError as exc:
            raise InputError(
                input_name, f"cannot read '{path}' ({exc.strerror})", "give the path of a new file"
            ) from None
        if marker_text.encode() not in head:
            raise InputError(
                input_name,
                f"'{path}' is an existing file that {stage} did not write; it is never overwritten",
                "give the path of a new file, or delete this one first",
            )
    return path


def write_file_atomic(path: Path, text: str, input_name: str) -> None:
    """Write beside, then rename over: readers see the old file or the new one, never half."""

    path = Path(path)
    created = _make_parents(path.parent, input_name)
    tmp = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        for item in reversed(created):
            with contextlib.suppress(OSError):
                item.rmdir()
        raise
