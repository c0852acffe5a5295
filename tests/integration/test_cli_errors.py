"""The bad-input matrix, through the real ``mlops`` console script: each case exits non-zero with
exactly one error line that names the input and the fix, and leaves nothing behind."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_actions.core.local_services import free_port

MLOPS = [sys.executable, "-m", "mlops_actions"]


def run(args, cwd, env=None, actions=True):
    full = dict(os.environ, MLOPS_RETRY_BASE_DELAY="0.05", MLOPS_RETRY_ATTEMPTS="2", **(env or {}))
    for var in ("GITHUB_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "REGISTRY_PASSWORD",
                "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "DAGSHUB_USER_TOKEN"):
        if not env or var not in env:
            full.pop(var, None)
    if actions:
        full.update(GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(cwd / "gh-output"), GITHUB_STEP_SUMMARY=str(cwd / "gh-summary"))
    return subprocess.run(MLOPS + list(args), cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def model_variants(fetched, tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    noloader = root / "noloader"  # a flavor no loader of ours knows, and no python_function section
    shutil.copytree(fetched.model_path, noloader)
    meta = yaml.safe_load((noloader / "MLmodel").read_text())
    meta["flavors"] = {"spark": meta["flavors"]["sklearn"]}
    (noloader / "MLmodel").write_text(yaml.safe_dump(meta))
    index = root / "index"
    shutil.copytree(fetched.model_path, index)
    (index / "requirements.txt").write_text("--extra-index-url https://pkgs.example.invalid/simple\nscikit-learn\n")
    localpath = root / "localpath"
    shutil.copytree(fetched.model_path, localpath)
    (localpath / "requirements.txt").write_text("/home/me/wheels/private-1.0-py3-none-any.whl\n")
    tampered = root / "tampered"
    shutil.copytree(fetched.path, tampered)
    (tampered / "mlops-run.json").write_text("{}")
    empty = root / "empty"
    empty.mkdir()
    binary = root / "binary.yaml"  # a binary file where text is expected
    binary.write_bytes(bytes(range(256)) * 8)
    huge = root / "huge.yaml"  # a data file passed where a small spec belongs
    huge.write_text("a: " + "x" * 2_000_000 + "\n")
    csv = root / "reviews.csv"
    csv.write_text("review_text,rating\n" + "".join(f"review number {i},{1 + i % 5}\n" for i in range(50)))
    return {"noloader": noloader, "index": index, "localpath": localpath, "tampered": tampered, "empty": empty, "good": fetched.path,
            "binary": binary, "huge": huge, "csv": csv}


CASES = [
    # (id, args, input named, extra env)
    ("params-no-equals", ["train", "--params", "epochs"], "params", {}),
    ("params-empty-key", ["train", "--params", "=3"], "params", {}),
    ("params-empty-value", ["train", "--params", "epochs="], "params", {}),
    ("params-duplicate", ["train", "--params", "a=1\na=2"], "params", {}),
    ("project-missing", ["train", "--project-path", "does/not/exist"], "project-path", {}),
    ("project-without-mlproject", ["train", "--project-path", "{empty}"], "project-path", {}),
    ("script-traversal", ["train", "--project-path", "{empty}", "--script", "../../etc/passwd"], "script", {}),
    ("tracking-scheme", ["train", "--tracking-uri", "ftp://host/x"], "tracking-uri", {}),
    ("tracking-password-in-uri", ["train", "--tracking-uri", "https://u:hunter2@host"], "tracking-uri", {}),
    ("tracking-unreachable", ["train", "--project-path", "{sentiment}", "--tracking-uri", "http://127.0.0.1:{port}"], "tracking-uri", {}),
    ("dagshub-bad-repo", ["train", "--dagshub-repo", "not-a-repo"], "dagshub-repo", {}),
    ("dagshub-no-credentials", ["train", "--dagshub-repo", "alice/rice"], "dagshub-repo", {}),
    ("tracking-401", ["train", "--project-path", "{sentiment}", "--tracking-uri", "{auth_url}"], "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD", {}),
    ("run-id-empty", ["fetch-artifacts", "--run-id", " ", "--tracking-uri", "{mlflow_url}"], "run-id", {}),
    ("run-id-unknown", ["fetch-artifacts", "--run-id", "0" * 32, "--tracking-uri", "{mlflow_url}", "--path", "out"], "run-id", {}),
    ("artifact-path-traversal", ["fetch-artifacts", "--run-id", "{run_id}", "--tracking-uri", "{mlflow_url}", "--artifact-path", "../../etc", "--path", "out"], "artifact-path", {}),
    ("manifest-mismatch", ["verify-manifest", "{tampered}"], "directory", {}),
    ("pr-no-token", ["open-pr", "--source-dir", "{good}", "--repo-path", "models/x", "--repository", "o/r"], "token", {}),
    ("pr-repo-path-traversal", ["open-pr", "--source-dir", "{good}", "--repo-path", "../../etc", "--repository", "o/r"], "repo-path", {"GITHUB_TOKEN": "t"}),
    ("pr-branch-metachar", ["open-pr", "--source-dir", "{good}", "--repo-path", "m", "--repository", "o/r", "--branch", "x; rm -rf /"], "branch", {"GITHUB_TOKEN": "t"}),
    ("pr-branch-space", ["open-pr", "--source-dir", "{good}", "--repo-path", "m", "--repository", "o/r", "--branch", "model update"], "branch", {"GITHUB_TOKEN": "t"}),
    ("pr-manifest-mismatch", ["open-pr", "--source-dir", "{tampered}", "--repo-path", "m", "--repository", "o/r"], "source-dir", {"GITHUB_TOKEN": "t"}),
    ("pr-bad-repository", ["open-pr", "--source-dir", "{good}", "--repo-path", "m", "--repository", "just-a-name"], "repository", {"GITHUB_TOKEN": "t"}),
    ("pr-not-a-checkout", ["open-pr", "--source-dir", "{good}", "--repo-path", "m", "--repository", "o/r", "--workdir", "{empty}"], "workdir", {"GITHUB_TOKEN": "t"}),
    ("render-no-mlmodel", ["render-dockerfile", "--model-dir", "{empty}", "--output-dir", "out"], "model-dir", {}),
    ("render-unsupported-flavor", ["render-dockerfile", "--model-dir", "{noloader}", "--output-dir", "out"], "model-dir", {}),
    ("render-extra-index-url", ["render-dockerfile", "--model-dir", "{index}", "--output-dir", "out"], "model-dir", {}),
    ("render-local-path-requirement", ["render-dockerfile", "--model-dir", "{localpath}", "--output-dir", "out"], "model-dir", {}),
    ("render-missing-template", ["render-dockerfile", "--model-dir", "{good}/model", "--template", "nope.tmpl", "--output-dir", "out"], "template", {}),
    ("render-bad-base-image", ["render-dockerfile", "--model-dir", "{good}/model", "--base-image", "Python:Latest!", "--output-dir", "out"], "base-image", {}),
    ("render-bad-port", ["render-dockerfile", "--model-dir", "{good}/model", "--port", "70000", "--output-dir", "out"], "port", {}),
    ("render-missing-ca", ["render-dockerfile", "--model-dir", "{good}/model", "--ca-bundle", "/no/ca.pem", "--output-dir", "out"], "ca-bundle", {}),
    ("validate-binary-spec", ["validate-data", "--data", "{csv}", "--spec", "{binary}", "--output-dir", "out"], "spec", {}),
    ("validate-huge-spec", ["validate-data", "--data", "{csv}", "--spec", "{huge}", "--output-dir", "out"], "spec", {}),
    ("validate-binary-data", ["validate-data", "--data", "{binary}", "--spec", "{sentiment}/data-spec.yaml", "--output-dir", "out"], "data", {}),
    ("drift-binary-reference", ["drift", "--reference", "{binary}", "--current", "{csv}", "--output-dir", "out"], "reference", {}),
    ("drift-columns-binary", ["drift", "--reference", "{csv}", "--current", "{csv}", "--columns", "{binary}", "--output-dir", "out"], "columns", {}),
    ("push-uppercase-image", ["push-image", "--context", "{ctx}", "--image", "127.0.0.1:5000/Acme/Model"], "image", {}),
    ("push-version-bump-unknown", ["push-image", "--context", "{ctx}", "--image", "127.0.0.1:5000/acme/model", "--version-bump", "huge"], "version-bump", {}),
    ("push-version-and-bump", ["push-image", "--context", "{ctx}", "--image", "127.0.0.1:5000/acme/model", "--version", "1.0.0", "--version-bump", "minor"], "version-bump", {}),
    ("gate-direction", ["gate", "--run-id", "{run_id}", "--model-name", "m", "--metric", "test_accuracy", "--direction", "upward", "--tracking-uri", "{mlflow_url}"], "direction", {}),
    ("gate-negative-margin", ["gate", "--run-id", "{run_id}", "--model-name", "m", "--metric", "test_accuracy", "--min-improvement", "-0.1", "--tracking-uri", "{mlflow_url}"], "min-improvement", {}),
    ("gate-unknown-metric", ["gate", "--run-id", "{run_id}", "--model-name", "m", "--metric", "auc_typo", "--tracking-uri", "{mlflow_url}"], "metric", {}),
    ("promote-not-by-digest", ["promote-image", "--source", "127.0.0.1:5000/acme/model:latest", "--target", "127.0.0.1:5000/acme/prod"], "source", {}),
    ("promote-target-with-tag", ["promote-image", "--source", "127.0.0.1:5000/acme/model@sha256:" + "0" * 64, "--target", "127.0.0.1:5000/acme/prod:v1"], "target", {}),
    ("health-bad-image", ["health-check", "--image", "Bad Image"], "image", {}),
    ("summary-not-json", ["summary", "--needs", "{{not json", "--output", "out/summary.json"], "needs", {}),
    ("summary-unknown-job", ["summary", "--needs", '{{"train": {{"result": "success"}}}}', "--reasons", "deploy=x", "--output", "out/summary.json"], "reasons", {}),
    ("dvc-unknown-operation", ["dvc", "--operation", "fly"], "operation", {}),
    ("dvc-not-a-repository", ["dvc", "--operation", "status", "--workdir", "{empty}"], "workdir", {}),
    ("push-upper-case-image", ["push-image", "--context", "{empty}", "--image", "ghcr.io/Acme/Model"], "context", {}),
    ("push-image-invalid", ["push-image", "--context", "{ctx}", "--image", "ghcr.io/acme/model name"], "image", {}),
    ("push-image-with-tag", ["push-image", "--context", "{ctx}", "--image", "ghcr.io/acme/model:latest"], "image", {}),
    ("push-version-not-semver", ["push-image", "--context", "{ctx}", "--image", "ghcr.io/acme/model", "--version", "1.2"], "version", {}),
    ("push-bad-extra-tag", ["push-image", "--context", "{ctx}", "--image", "ghcr.io/acme/model", "--version", "1.2.3", "--tags", "-bad"], "tags", {}),
    ("push-missing-payload", ["push-image", "--context", "{ctx}", "--image", "ghcr.io/acme/model", "--version", "1.2.3", "--smoke-payload", "nope.json"], "smoke-payload", {}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_named_nonzero_nothing_written(case, tmp_path, model_variants, mlflow_server, mlflow_auth_server, trained):
    _, args, input_name, env = case
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    values = {k: str(v) for k, v in model_variants.items()} | {
        "sentiment": str(Path(__file__).resolve().parents[2] / "model_project" / "sentiment"),
        "port": str(free_port()), "auth_url": mlflow_auth_server.url, "mlflow_url": mlflow_server.url,
        "run_id": trained.run_id, "ctx": str(ctx),
    }
    args = [a.format(**values) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run(args, tmp_path, env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1, proc.stdout
    assert f"input '{input_name}'" in errors[0] and "; fix: " in errors[0]
    assert "Traceback" not in proc.stderr
    after = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("gh-output", "gh-summary"))
    assert after == before  # nothing written: no output dir, no partial dir
    assert not (tmp_path / "gh-output").exists()  # no outputs for a failed step
    assert "❌" in (tmp_path / "gh-summary").read_text()


def test_secret_never_in_error_output(tmp_path, mlflow_auth_server):
    proc = run(["train", "--project-path", str(Path(__file__).resolve().parents[2] / "model_project" / "sentiment"),
                "--tracking-uri", mlflow_auth_server.url], tmp_path,
               env={"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "wrong-pass-123456"})
    assert proc.returncode == 2
    assert "::add-mask::wrong-pass-123456" in proc.stdout
    assert "wrong-pass-123456" not in proc.stdout.replace("::add-mask::wrong-pass-123456", "") + proc.stderr


def test_outside_actions_the_error_goes_to_stderr(tmp_path):
    proc = run(["train", "--params", "x"], tmp_path, actions=False)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: input 'params'")
    assert len(proc.stderr.strip().splitlines()) == 1
