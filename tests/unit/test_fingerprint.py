import subprocess

from mlops_actions.train import fingerprint


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_fingerprint_follows_committed_files_params_and_entry(tmp_path):
    _git("init", "-q", cwd=tmp_path)
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "train.py").write_text("print(1)\n")
    _git("add", ".", cwd=tmp_path)
    base = fingerprint(proj, "entry:main", {"C": "1"})
    assert fingerprint(proj, "entry:main", {"C": "1"}) == base
    assert fingerprint(proj, "entry:main", {"C": "2"}) != base
    assert fingerprint(proj, "entry:other", {"C": "1"}) != base
    (proj / "generated.csv").write_text("not tracked\n")  # untracked data does not count
    assert fingerprint(proj, "entry:main", {"C": "1"}) == base
    (proj / "train.py").write_text("print(2)\n")
    _git("add", ".", cwd=tmp_path)
    assert fingerprint(proj, "entry:main", {"C": "1"}) != base


def test_fingerprint_outside_git_hashes_files(tmp_path):
    (tmp_path / "a.py").write_text("x")
    first = fingerprint(tmp_path, "entry:main", {})
    (tmp_path / "a.py").write_text("y")
    assert fingerprint(tmp_path, "entry:main", {}) != first
