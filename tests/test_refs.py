"""Self-references follow the rule of their commit (scripts/check_refs.py): on main every
``mlops-actions/mlops-actions/...`` reference says ``@v1``; in a release commit, the commit a
``vX.Y.Z`` tag points at, every one says ``@vX.Y.Z``, so that a caller who pins a reusable
workflow by that commit's SHA runs the stage actions of that same commit. The release workflow
(.github/workflows/release.yml, run under act in tests/act/test_release.py) makes the one from
the other with ``--set``; these tests hold the rules and the workflow's use of them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_refs.py"
sys.path.insert(0, str(ROOT / "scripts"))
import check_refs  # noqa: E402 - scripts/ is not a package

PIPELINE = ".github/workflows/ml-pipeline.yml"
SHA = "0123456789abcdef0123456789abcdef01234567"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd)


def git(*args, cwd):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def copy(dest: Path, *rels: str) -> Path:
    for rel in rels or ("action.yml", PIPELINE):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, dest / rel)
    return dest


def repo_at_main_rule(path: Path) -> Path:
    """A git repository with the pipeline and the root action, every reference @v1."""
    copy(path)
    assert run("--root", str(path), "--set", "v1").returncode == 0
    git("init", "--quiet", "--initial-branch=main", cwd=path)
    git("add", "--all", cwd=path)
    git("commit", "--quiet", "-m", "main", cwd=path)
    return path


# ---------------------------------------------------------------- this checkout


def test_every_self_reference_follows_the_rule_of_this_commit():
    proc = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_reusable_workflows_reference_the_stage_actions_by_full_path():
    ref, _ = check_refs.expected_ref(ROOT)
    text = (ROOT / PIPELINE).read_text()
    assert "uses: ./actions" not in text
    assert f"mlops-actions/mlops-actions/actions/train@{ref}" in text


def test_every_self_reference_is_in_a_file_the_check_covers():
    """The release commit rewrites the files check_refs.py knows; a self-reference anywhere else
    would keep main's @v1 in a release. Only the act fixtures (tests/: @v1 is what act maps to
    the working tree) and the CHANGELOG's history are left as they are."""
    proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    names = proc.stdout.splitlines() if proc.returncode == 0 else [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]
    covered = {str(p.relative_to(ROOT)) for p in check_refs.files(ROOT)}
    stray = []
    for name in names:
        path = ROOT / name
        if name.startswith(("tests/", ".venv/", ".git/")) or name == "CHANGELOG.md" or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        if check_refs.scan(data.decode("utf-8", errors="replace"), name) and name not in covered:
            stray.append(name)
    assert not stray, f"self-references outside check_refs.GLOBS: {stray}"


# ---------------------------------------------------------------- the rules


def test_a_stray_ref_is_caught_and_set_rewrites(tmp_path):
    ref, _ = check_refs.expected_ref(ROOT)
    copy(tmp_path)
    wf = tmp_path / PIPELINE
    wf.write_text(wf.read_text().replace(f"actions/train@{ref}", "actions/train@main", 1))
    proc = run("--root", str(tmp_path), "--ref", ref)
    assert proc.returncode == 1 and f"actions/train@main (expected @{ref})" in proc.stdout
    assert run("--root", str(tmp_path), "--set", "v2").returncode == 0
    assert run("--root", str(tmp_path), "--ref", "v2").returncode == 0


def test_main_rule_by_default(tmp_path):
    copy(tmp_path)
    run("--root", str(tmp_path), "--set", "v1")
    wf = tmp_path / PIPELINE
    wf.write_text(wf.read_text().replace("actions/gate@v1", "actions/gate@v1.0.0", 1))
    proc = run("--root", str(tmp_path))
    assert proc.returncode == 1 and "actions/gate@v1.0.0 (expected @v1)" in proc.stdout


def test_the_release_rule(tmp_path):
    copy(tmp_path)
    run("--root", str(tmp_path), "--set", "v1")
    proc = run("--root", str(tmp_path), "--release", "1.2.3")
    assert proc.returncode == 1 and "(expected @v1.2.3)" in proc.stdout
    assert "fix: python scripts/check_refs.py --set v1.2.3" in proc.stderr
    assert run("--root", str(tmp_path), "--set", "v1.2.3").returncode == 0
    for version in ("1.2.3", "v1.2.3"):
        assert run("--root", str(tmp_path), "--release", version).returncode == 0
    assert run("--root", str(tmp_path), "--ref", "v1").returncode == 1
    assert run("--root", str(tmp_path), "--release", "1.2.4").returncode == 1
    assert run("--root", str(tmp_path), "--release", "1.2").returncode == 2  # not a version
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run("--root", str(empty), "--release", "1.2.3")
    assert proc.returncode == 1 and "no self-reference" in proc.stdout


def test_set_rewrites_every_file_kind_and_the_presets_stay_in_step(tmp_path):
    """The flagship presets reference ml-pipeline.yml at the ref its stage actions carry, so a
    release commit (every reference rewritten) still passes gen_pipelines.py --check."""
    rels = ["scripts/gen_pipelines.py", PIPELINE, ".github/workflows/sentiment-pipeline.yml", ".github/workflows/rice-pipeline.yml"]
    copy(tmp_path, *rels)
    assert run("--root", str(tmp_path), "--set", "v1.2.3").returncode == 0
    preset = (tmp_path / rels[2]).read_text()
    assert "/.github/workflows/ml-pipeline.yml@v1.2.3" in preset and "@v1\n" not in preset
    proc = subprocess.run([sys.executable, str(tmp_path / rels[0]), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tmp_path / rels[2]).write_text(preset.replace("ml-pipeline.yml@v1.2.3", "ml-pipeline.yml@v1"))
    proc = subprocess.run([sys.executable, str(tmp_path / rels[0]), "--check"], capture_output=True, text=True)
    assert proc.returncode == 1 and "sentiment-pipeline.yml" in proc.stdout, proc.stdout


def test_a_ref_never_swallows_the_end_of_a_sentence(tmp_path):
    (tmp_path / "README.md").write_text("Use mlops-actions/mlops-actions@v1. Or mlops-actions/mlops-actions/actions/gate@v1, then.\n")
    assert [r.ref for r in check_refs.references(tmp_path)] == ["v1", "v1"]
    run("--root", str(tmp_path), "--set", "v1.2.3")
    assert (tmp_path / "README.md").read_text() == (
        "Use mlops-actions/mlops-actions@v1.2.3. Or mlops-actions/mlops-actions/actions/gate@v1.2.3, then.\n")


@pytest.mark.parametrize("version,out", [
    ("1.2.3", "tag=v1.2.3\nmajor=v1\nprerelease=false\n"),
    ("v2.0.0-rc.1", "tag=v2.0.0-rc.1\nmajor=v2\nprerelease=true\n"),
    ("10.20.30", "tag=v10.20.30\nmajor=v10\nprerelease=false\n"),
])
def test_describe(version, out):
    proc = run("--describe", version)
    assert proc.returncode == 0 and proc.stdout == out


@pytest.mark.parametrize("version", ["1.2", "01.2.3", "1.2.3+build", "v1.2.3\nmajor=v9", "latest", ""])
def test_describe_refuses_what_is_not_a_version(version):
    proc = run("--describe", version)
    assert proc.returncode == 2 and proc.stdout == ""  # stdout goes to $GITHUB_OUTPUT
    assert proc.stderr.startswith("::error::") and len(proc.stderr.splitlines()) == 1  # one line: no injected command


# ---------------------------------------------------------------- the rule follows the commit


def test_the_rule_follows_the_release_tag_on_head(tmp_path):
    repo = repo_at_main_rule(tmp_path / "repo")
    main = git("rev-parse", "HEAD", cwd=repo)
    assert run("--root", str(repo)).returncode == 0  # main: @v1
    git("tag", "v1.2.3", cwd=repo)  # tagging a main commit makes no release
    proc = run("--root", str(repo))
    assert proc.returncode == 1 and "(expected @v1.2.3)" in proc.stdout and "release commit of v1.2.3" in proc.stderr
    git("tag", "-d", "v1.2.3", cwd=repo)
    # the release commit, on top of main
    run("--root", str(repo), "--set", "v1.2.3")
    git("commit", "--quiet", "--all", "-m", "Release v1.2.3", cwd=repo)
    proc = run("--root", str(repo))
    assert proc.returncode == 1 and "(expected @v1)" in proc.stdout  # untagged: main's rule (merged into main by mistake)
    git("tag", "v1.2.3", cwd=repo)
    git("tag", "v1", cwd=repo)  # the major tag on the same commit changes nothing
    proc = run("--root", str(repo))
    assert proc.returncode == 0 and "HEAD is the release commit of v1.2.3" in proc.stderr
    git("tag", "v1.2.4", cwd=repo)
    proc = run("--root", str(repo))
    assert proc.returncode == 1 and "several release tags" in proc.stdout
    git("checkout", "--quiet", main, cwd=repo)
    assert run("--root", str(repo)).returncode == 0
    # a sub-folder of a checkout is not the checkout: the tags of HEAD do not apply to it
    sub = copy(repo / "sub")
    run("--root", str(sub), "--set", "v1")
    git("tag", "v9.9.9", cwd=repo)
    assert run("--root", str(sub)).returncode == 0


def test_a_checkout_of_the_major_tag_follows_the_release_it_points_at(tmp_path):
    """CI on the push that moved vX checks out vX alone: the release it names is the rule."""
    repo = repo_at_main_rule(tmp_path / "repo")
    run("--root", str(repo), "--set", "v1.2.3")
    git("commit", "--quiet", "--all", "-m", "Release v1.2.3", cwd=repo)
    git("tag", "v1", cwd=repo)
    proc = run("--root", str(repo))
    assert proc.returncode == 0 and "names release v1.2.3 (HEAD is v1)" in proc.stderr
    git("tag", "-d", "v1", cwd=repo)
    git("tag", "v2", cwd=repo)  # v2 on a v1.2.3 release: not its major, main's rule applies
    assert run("--root", str(repo)).returncode == 1
    wf = repo / PIPELINE
    wf.write_text(wf.read_text().replace("actions/gate@v1.2.3", "actions/gate@v1.2.2", 1))
    git("tag", "-d", "v2", cwd=repo)
    git("tag", "v1", cwd=repo)  # mixed references under vX: no release rule holds
    assert run("--root", str(repo)).returncode == 1


def test_an_unpacked_release_follows_its_own_references(tmp_path):
    copy(tmp_path)
    run("--root", str(tmp_path), "--set", "v1.2.3")
    proc = run("--root", str(tmp_path))
    assert proc.returncode == 0 and "names release v1.2.3" in proc.stderr


def test_pins_by_commit_are_allowed_in_docs_only_and_checked_against_their_tag(tmp_path):
    repo = repo_at_main_rule(tmp_path / "repo")
    pinned = f"uses: mlops-actions/mlops-actions/{PIPELINE}@{SHA} # v1.0.0"
    readme = repo / "README.md"
    readme.write_text(f"Pin by commit:\n\n    {pinned}\n")
    assert run("--root", str(repo)).returncode == 0  # v1.0.0 unknown here: the form is checked
    run("--root", str(repo), "--set", "v1.2.3")
    assert pinned in readme.read_text()  # --set leaves a pin as it is
    run("--root", str(repo), "--set", "v1")
    readme.write_text(f"    uses: mlops-actions/mlops-actions/{PIPELINE}@{SHA}\n")
    proc = run("--root", str(repo))
    assert proc.returncode == 1 and "# vX.Y.Z" in proc.stdout
    readme.write_text(f"    {pinned}\n")
    wf = repo / PIPELINE
    wf.write_text(wf.read_text().replace("actions/gate@v1", f"actions/gate@{SHA}", 1))
    proc = run("--root", str(repo))
    assert proc.returncode == 1 and "by commit in a workflow" in proc.stdout
    git("checkout", "--quiet", "--", PIPELINE, cwd=repo)
    git("tag", "v1.0.0", cwd=repo)  # now v1.0.0 is known, and it is not SHA
    proc = run("--root", str(repo))
    assert proc.returncode == 1 and f"# v1.0.0 is {git('rev-parse', 'HEAD', cwd=repo)}, not {SHA}" in proc.stdout


def test_resolve_on_a_remote(tmp_path):
    origin = tmp_path / "origin.git"
    git("init", "--quiet", "--bare", str(origin), cwd=tmp_path)
    repo = repo_at_main_rule(tmp_path / "repo")
    git("remote", "add", "origin", str(origin), cwd=repo)
    run("--root", str(repo), "--set", "v1.2.3")
    git("commit", "--quiet", "--all", "-m", "Release v1.2.3", cwd=repo)
    proc = run("--root", str(repo), "--resolve", "origin")
    assert proc.returncode == 1 and "resolves to nothing on origin" in proc.stdout
    git("tag", "v1.2.3", cwd=repo)
    git("push", "--quiet", "origin", "refs/tags/v1.2.3", cwd=repo)
    proc = run("--root", str(repo), "--resolve", "origin")
    assert proc.returncode == 0, proc.stdout
    git("push", "--quiet", "origin", "HEAD:refs/heads/v1.2.3", cwd=repo)
    proc = run("--root", str(repo), "--resolve", "origin")
    assert proc.returncode == 1 and "ambiguous" in proc.stdout
    git("push", "--quiet", "origin", ":refs/heads/v1.2.3", cwd=repo)
    git("checkout", "--quiet", "HEAD^", cwd=repo)  # main: its @v1 resolves to nothing, not to HEAD
    assert run("--root", str(repo), "--resolve", "origin").returncode == 1


# ---------------------------------------------------------------- the release workflow


def test_the_release_workflow_makes_and_verifies_release_commits():
    wf = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as true
    assert on["workflow_dispatch"]["inputs"]["version"]["required"] is True
    assert on["push"]["tags"] == ["v*.*.*"]
    (job,) = wf["jobs"].values()
    # GITHUB_TOKEN only reads: it may not push a commit that changes .github/workflows; the pushes
    # use the release environment's RELEASE_TOKEN
    assert job["permissions"] == {"contents": "read"} and job["environment"] == "release"
    tokens = {step["env"]["TOKEN"] for step in job["steps"] if "TOKEN" in (step.get("env") or {})}
    assert tokens == {"${{ secrets.RELEASE_TOKEN }}"}
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["persist-credentials"] is False
    script = "\n".join(s.get("run", "") for s in steps)
    for call in ('--describe "$requested"', '--ref "$MAJOR"', '--set "$TAG"', '--release "$TAG"', "--resolve origin"):
        assert call in script, call
    for step in steps:
        for line in step.get("run", "").splitlines():
            if line.strip().startswith("git "):
                assert "TOKEN" not in line and "auth" not in line, f"credentials in git's argv: {line}"
        if "TOKEN" in (step.get("env") or {}):
            assert "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraheader" in step["run"], step["name"]
