"""Self-references stay on the release ref (scripts/check_refs.py)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_refs.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_every_self_reference_uses_the_release_ref():
    proc = run()
    assert proc.returncode == 0, proc.stdout


def test_the_reusable_workflows_reference_the_stage_actions_by_full_path():
    text = (ROOT / ".github/workflows/sentiment-pipeline.yml").read_text()
    assert "uses: ./actions" not in text
    assert "mlops-actions/mlops-actions/actions/train@v1" in text


def test_a_stray_ref_is_caught_and_set_rewrites(tmp_path):
    for rel in ("action.yml", ".github/workflows/sentiment-pipeline.yml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    wf = tmp_path / ".github/workflows/sentiment-pipeline.yml"
    wf.write_text(wf.read_text().replace("actions/train@v1", "actions/train@main", 1))
    proc = run("--root", str(tmp_path))
    assert proc.returncode == 1 and "actions/train@main (expected @v1)" in proc.stdout
    assert run("--root", str(tmp_path), "--set", "v2").returncode == 0
    assert run("--root", str(tmp_path), "--ref", "v2").returncode == 0
