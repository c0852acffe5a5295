#!/usr/bin/env python3
"""Keep every self-reference (``uses:`` of this repository's actions and workflows) on the right ref.

Reusable workflows and docs reference this repository's actions by full path and ref (a ``./``
path would resolve in the caller's repository). Which ref is right depends on the commit:

* main (and any branch): the major the branch develops, ``@v1`` (MAIN_REF);
* a release commit, the commit a ``vX.Y.Z`` tag points at: ``@vX.Y.Z``, its own tag. The release
  workflow (.github/workflows/release.yml) makes it on top of main with ``--set vX.Y.Z``, so that
  a caller who pins ``.../sentiment-pipeline.yml@<sha of vX.Y.Z>`` runs the stage actions of that
  same commit (a commit cannot name its own SHA; its version tag, never moved, is the next best).

Docs may also show a pin by commit, ``...@<40 hex> # vX.Y.Z``: allowed in Markdown only, never
rewritten, and checked against the local tag vX.Y.Z when there is one.

    python scripts/check_refs.py                  # the rule for this checkout: @vX.Y.Z when HEAD is
                                                  # tagged vX.Y.Z (a release commit), else @v1
    python scripts/check_refs.py --ref v2         # check against another ref
    python scripts/check_refs.py --release 1.2.3  # the release-commit rule: everything @v1.2.3
    python scripts/check_refs.py --set v1.2.3     # rewrite every reference (the release commit)
    python scripts/check_refs.py --list           # print every self-reference
    python scripts/check_refs.py --resolve origin # each reference resolves, on that remote, to HEAD
                                                  # (pins: to the commit of their version tag)
    python scripts/check_refs.py --describe 1.2.3 # tag=v1.2.3, major=v1, prerelease=false (for
                                                  # $GITHUB_OUTPUT in the release workflow)

Standard library only: the release workflow runs it on a bare runner.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPO = "mlops-actions/mlops-actions"
MAIN_REF = "v1"  # the major main develops; bump with `--set v2` when main starts v2
EXPECTED = MAIN_REF  # former name, kept for importers
# owner/name[/path]@ref; the path may hold the template's [[ ... ]] placeholders; a ref never ends
# with a dot (the end of a sentence)
REF_NAME = r"[A-Za-z0-9_\-/]+(?:\.[A-Za-z0-9_\-/]+)*"
REF_RE = re.compile(r"(mlops-actions/mlops-actions(?:/(?:[A-Za-z0-9_./-]|\[\[[^\]]*\]\])+)?)@(" + REF_NAME + ")")
PIN_RE = re.compile(r"^[0-9a-f]{40}$")
PIN_COMMENT_RE = re.compile(r"^\s*#\s*(v\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\b")
# a release version: vX.Y.Z or a pre-release vX.Y.Z-rc.1 (no build metadata: a ref has no '+')
VERSION_RE = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")
GLOBS = ("action.yml", "actions/*/action.yml", "actions/*/README.md", ".github/workflows/*.yml", "templates/**/*.j2",
         "README.md", "docs/**/*.md", "model_project/*/README.md")


@dataclass(frozen=True)
class Reference:
    path: str  # relative to the root
    line: int
    target: str  # owner/name[/path]
    ref: str
    pin_version: str | None = None  # "# vX.Y.Z" after a pin by commit

    @property
    def pinned(self) -> bool:
        return bool(PIN_RE.match(self.ref))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.target}@{self.ref}"


def parse_version(text: str) -> str:
    """``1.2.3`` / ``v1.2.3`` / ``v1.2.3-rc.1`` → the tag ``v1.2.3[-rc.1]``; ValueError otherwise."""
    m = VERSION_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{ascii(text)} is not a version X.Y.Z or X.Y.Z-pre (e.g. 1.2.3, 1.3.0-rc.1)")
    return "v" + text.strip().removeprefix("v")


def major_of(tag: str) -> str:
    return "v" + VERSION_RE.match(tag).group(1)


def is_prerelease(tag: str) -> bool:
    return VERSION_RE.match(tag).group(4) is not None


def files(root: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in GLOBS:
        found.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(found)


def scan(text: str, path: str = "") -> list[Reference]:
    """Every self-reference in ``text``."""
    refs = []
    for number, line in enumerate(text.splitlines(), start=1):
        for m in REF_RE.finditer(line):
            comment = PIN_COMMENT_RE.match(line[m.end():])
            refs.append(Reference(path, number, m.group(1), m.group(2), comment.group(1) if comment else None))
    return refs


def references(root: Path) -> list[Reference]:
    out = []
    for path in files(root):
        out += scan(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    return out


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _is_git_root(root: Path) -> bool:
    top = _git(root, "rev-parse", "--show-toplevel")
    return top is not None and Path(top).resolve() == root.resolve()


def _pin_problems(root: Path, ref: Reference) -> list[str]:
    if not ref.path.endswith(".md"):
        return [f"{ref}: a self-reference by commit in a workflow or action (a commit cannot name itself; "
                f"use the release ref)"]
    if not ref.pin_version:
        return [f"{ref}: a pin by commit says which release it is: '@<sha> # vX.Y.Z'"]
    if _is_git_root(root):
        tagged = _git(root, "rev-parse", "--verify", "--quiet", f"refs/tags/{ref.pin_version}^{{commit}}")
        if tagged and tagged != ref.ref:
            return [f"{ref}: # {ref.pin_version} is {tagged}, not {ref.ref}"]
    return []


def check(root: Path, ref: str) -> list[str]:
    """Problems: every self-reference must be ``@ref`` (pins by commit in docs aside)."""
    problems = []
    for r in references(root):
        if r.pinned:
            problems += _pin_problems(root, r)
        elif r.ref != ref:
            problems.append(f"{r} (expected @{ref})")
    return problems


def rewrite(root: Path, ref: str) -> list[Path]:
    """Point every self-reference at ``ref``; pins by commit stay as they are."""
    changed = []
    for path in files(root):
        text = path.read_text(encoding="utf-8")
        new = REF_RE.sub(lambda m: m.group(0) if PIN_RE.match(m.group(2)) else f"{m.group(1)}@{ref}", text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def head_tags(root: Path) -> set[str]:
    """The tags on HEAD when ``root`` is the top of a git checkout; CI that checked out a tag
    (GITHUB_REF_TYPE=tag, GITHUB_SHA = HEAD) counts too, fetched or not."""
    if not _is_git_root(root):
        return set()
    tags = set((_git(root, "tag", "--points-at", "HEAD") or "").split())
    if os.environ.get("GITHUB_REF_TYPE") == "tag" and os.environ.get("GITHUB_SHA") == _git(root, "rev-parse", "HEAD"):
        tags.add(os.environ.get("GITHUB_REF_NAME", ""))
    return tags


def head_release_tags(root: Path) -> list[str]:
    """The release tags (vX.Y.Z[-pre]) on HEAD."""
    return sorted(t for t in head_tags(root) if t.startswith("v") and VERSION_RE.match(t))


def expected_ref(root: Path) -> tuple[str, str]:
    """(ref, why) for this checkout: a release commit's own tag, else MAIN_REF."""
    tags = head_tags(root)
    releases = sorted(t for t in tags if t.startswith("v") and VERSION_RE.match(t))
    if len(releases) > 1:
        raise ValueError(f"HEAD carries several release tags ({', '.join(releases)}); a release commit has one")
    if releases:
        return releases[0], f"HEAD is the release commit of {releases[0]}"
    # a checkout of the major tag vX only (CI on the push that moved it), or an unpacked release
    # archive (no tags at all): a release commit of some vX.Y.Z, whose references say which
    majors = sorted(t for t in tags if re.fullmatch(r"v\d+", t))
    if majors or not _is_git_root(root):
        named = {r.ref for r in references(root) if not r.pinned}
        only = named.pop() if len(named) == 1 else ""
        if only.startswith("v") and VERSION_RE.match(only) and (not majors or major_of(only) in majors):
            where = f"HEAD is {', '.join(majors)}" if majors else "not a git checkout"
            return only, f"every reference names release {only} ({where})"
    return MAIN_REF, f"HEAD is not a release commit: main's rule, @{MAIN_REF}"


def remote_refs(root: Path, remote: str) -> dict[str, str]:
    """refname → commit on ``remote`` (annotated tags peeled)."""
    out = _git(root, "ls-remote", remote)
    if out is None:
        raise RuntimeError(f"git ls-remote {remote} failed in {root}")
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        if name.endswith("^{}"):
            refs[name[:-3]] = sha  # the peeled commit wins over the tag object
        else:
            refs.setdefault(name, sha)
    return refs


def resolve(root: Path, remote: str) -> tuple[list[str], int]:
    """(problems, count): each self-reference must resolve on ``remote`` the way GitHub resolves
    ``uses: owner/name/path@ref``, to HEAD of ``root``; a pin to the commit of its version tag."""
    head = _git(root, "rev-parse", "HEAD")
    if head is None:
        raise RuntimeError(f"{root} is not a git checkout")
    refs = remote_refs(root, remote)
    problems, count = [], 0
    for r in references(root):
        count += 1
        if r.pinned:
            want = refs.get(f"refs/tags/{r.pin_version}") if r.pin_version else None
            if want != r.ref:
                problems.append(f"{r}: # {r.pin_version} is {want or 'not a tag'} on {remote}")
            continue
        tag, branch = refs.get(f"refs/tags/{r.ref}"), refs.get(f"refs/heads/{r.ref}")
        if tag and branch:
            problems.append(f"{r}: ambiguous on {remote}, both a tag and a branch")
        elif (tag or branch) != head:
            problems.append(f"{r}: resolves to {tag or branch or 'nothing'} on {remote}, not to HEAD {head}")
    return problems, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--ref", help="check that every self-reference is @REF")
    mode.add_argument("--release", metavar="VERSION", help="check a release commit: every self-reference is @vVERSION")
    mode.add_argument("--set", dest="set_ref", metavar="REF", help="rewrite every self-reference to @REF")
    mode.add_argument("--list", action="store_true", help="print every self-reference")
    mode.add_argument("--resolve", metavar="REMOTE", help="check that each reference resolves on REMOTE to HEAD")
    mode.add_argument("--describe", metavar="VERSION", help="print tag=, major= and prerelease= of a release version")
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args(argv)
    root = args.root
    if args.describe is not None:
        try:
            tag = parse_version(args.describe)
        except ValueError as exc:
            print(f"::error::version {exc}", file=sys.stderr)  # never on stdout: that goes to $GITHUB_OUTPUT
            return 2
        print(f"tag={tag}\nmajor={major_of(tag)}\nprerelease={'true' if is_prerelease(tag) else 'false'}")
        return 0
    if args.list:
        for r in references(root):
            print(r)
        return 0
    if args.set_ref:
        if not re.fullmatch(REF_NAME, args.set_ref):
            ap.error(f"--set {args.set_ref}: not a ref")
        for path in rewrite(root, args.set_ref):
            print(f"rewrote {path.relative_to(root)}")
        return 0
    if args.resolve:
        problems, count = resolve(root, args.resolve)
        for line in problems:
            print(line)
        if not problems:
            print(f"ok: {count} self-references resolve on {args.resolve} to HEAD", file=sys.stderr)
        return 1 if problems else 0
    if args.release:
        try:
            ref = parse_version(args.release)
        except ValueError as exc:
            ap.error(f"--release: {exc}")
        why = f"the release commit of {ref}"
        if not references(root):
            print(f"no self-reference found under {root}: not this repository?")
            return 1
    elif args.ref:
        ref, why = args.ref, f"--ref {args.ref}"
    else:
        try:
            ref, why = expected_ref(root)
        except ValueError as exc:
            print(exc)
            return 1
    problems = check(root, ref)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} self-reference(s) not @{ref} ({why}); fix: python scripts/check_refs.py --set {ref}",
              file=sys.stderr)
        return 1
    print(f"ok: every self-reference is @{ref} ({why})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
