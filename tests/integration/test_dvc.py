"""mlops dvc through the real CLI (``python -m mlops_actions dvc`` as the action runs it) on real git
repositories with real DVC: a local-directory remote and an S3 remote served by moto_server on
loopback. Data round trips byte for byte through a fresh clone; hashes match the .dvc files; the
sentiment project's pipeline reproduces and its metrics diff against a base branch shows the
change; bad input is one ::error:: line, exit 2, and nothing written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import SENTIMENT, git, sentiment_generator
from mlops_actions.core import local_services

pytest.importorskip("dvc", reason="the dvc extra is not installed")

MLOPS = [sys.executable, "-m", "mlops_actions"]
generate = sentiment_generator()
AWS = {"AWS_ACCESS_KEY_ID": "AKIAMLOPSTESTKEY", "AWS_SECRET_ACCESS_KEY": "mlops-test-secret-8d1f0c", "AWS_DEFAULT_REGION": "us-east-1"}


def run(args, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The CLI with the runner's files in a folder of their own (not in the repository under test)."""
    runner = cwd.parent / f"runner-{cwd.name}"
    runner.mkdir(exist_ok=True)
    for name in ("gh-output", "gh-summary"):
        (runner / name).unlink(missing_ok=True)
    full = dict(os.environ, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(runner / "gh-output"), GITHUB_STEP_SUMMARY=str(runner / "gh-summary"))
    for var in ("MLOPS_DEBUG", "RUNNER_DEBUG", *AWS):
        full.pop(var, None)
    full.update(env or {})
    return subprocess.run(MLOPS + ["dvc", *map(str, args)], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)


def outputs(cwd: Path) -> dict[str, str]:
    text = (cwd.parent / f"runner-{cwd.name}" / "gh-output").read_text(encoding="utf-8")
    out, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            name, delim = line.split("<<", 1)
            value = []
            for inner in lines:
                if inner == delim:
                    break
                value.append(inner)
            out[name] = "\n".join(value)
        else:
            name, value = line.split("=", 1)
            out[name] = value
    return out


def errors(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("::error")]


def ok(proc: subprocess.CompletedProcess, cwd: Path) -> dict[str, str]:
    assert proc.returncode == 0 and not errors(proc), proc.stdout + proc.stderr
    return outputs(cwd)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - DVC's content address


def commit_all(repo: Path, message: str) -> None:
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", message, cwd=repo)


def dvc_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    dvc_cli("init", "-q", cwd=path)
    commit_all(path, "dvc init")
    return path


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root (git internals and DVC's tmp aside) with its digest."""
    return {str(p.relative_to(root)): md5(p) for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.parts and "tmp" not in p.relative_to(root).parts[:2]}


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git + DVC repository with a CSV and a model folder to version."""
    root = new_repo(tmp_path / "repo")
    generate(root / "data" / "reviews.csv", rows=300, seed=3)
    (root / "models" / "sentiment").mkdir(parents=True)
    (root / "models" / "sentiment" / "model.pkl").write_bytes(os.urandom(4096))
    (root / "models" / "sentiment" / "MLmodel").write_text("flavors: {}\n")
    return root


def dvc_file_md5(path: Path) -> str:
    return yaml.safe_load(path.read_text())["outs"][0]["md5"]


# ------------------------------------------------------------------------------ local remote


def test_add_push_then_a_fresh_clone_pulls_identical_bytes(repo, tmp_path):
    store = tmp_path / "store"
    out = ok(run(["--operation", "add", "--paths", "data/reviews.csv\nmodels/sentiment"], repo), repo)
    hashes = json.loads(out["hashes"])
    assert out["changed"] == "true"
    assert hashes == {"data/reviews.csv": dvc_file_md5(repo / "data" / "reviews.csv.dvc"),
                      "models/sentiment": dvc_file_md5(repo / "models" / "sentiment.dvc")}
    assert hashes["data/reviews.csv"] == md5(repo / "data" / "reviews.csv") and hashes["models/sentiment"].endswith(".dir")
    assert "data/reviews.csv" in git("status", "--porcelain", "--ignored", cwd=repo)  # git-ignored by dvc add, not committed
    commit_all(repo, "track data and model")

    out = ok(run(["--operation", "push", "--remote", store], repo), repo)
    assert out["changed"] == "true" and out["remote"] == "mlops"
    assert ok(run(["--operation", "push", "--remote", store], repo), repo)["changed"] == "false"
    assert "remote" not in (repo / ".dvc" / "config").read_text()  # the remote input is not written to the config

    clone = tmp_path / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    assert not (clone / "data" / "reviews.csv").exists()
    out = ok(run(["--operation", "pull", "--remote", store], clone), clone)
    assert out["changed"] == "true" and json.loads(out["hashes"]) == hashes
    for rel in ("data/reviews.csv", "models/sentiment/model.pkl", "models/sentiment/MLmodel"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    assert ok(run(["--operation", "pull", "--remote", store], clone), clone)["changed"] == "false"
    status = ok(run(["--operation", "status", "--remote", store], clone), clone)
    assert status["changed"] == "false"


def test_readd_of_unchanged_data_is_not_a_change_but_an_edit_is(repo):
    first = ok(run(["--operation", "add", "--paths", "data/reviews.csv"], repo), repo)
    again = ok(run(["--operation", "add", "--paths", "data/reviews.csv"], repo), repo)
    assert first["changed"] == "true" and again["changed"] == "false" and again["hashes"] == first["hashes"]
    with open(repo / "data" / "reviews.csv", "a", encoding="utf-8") as fh:
        fh.write("a brand new review,5\n")
    status = ok(run(["--operation", "status"], repo), repo)
    assert status["changed"] == "true"
    edited = ok(run(["--operation", "add", "--paths", "data/reviews.csv"], repo), repo)
    assert edited["changed"] == "true"
    assert json.loads(edited["hashes"])["data/reviews.csv"] == md5(repo / "data" / "reviews.csv") == dvc_file_md5(repo / "data" / "reviews.csv.dvc")
    assert json.loads(edited["hashes"]) != json.loads(first["hashes"])


def test_commit_records_an_edited_output(repo):
    added = json.loads(ok(run(["--operation", "add", "--paths", "models/sentiment"], repo), repo)["hashes"])
    (repo / "models" / "sentiment" / "model.pkl").write_bytes(b"retrained")
    out = ok(run(["--operation", "commit", "--paths", "models/sentiment.dvc"], repo), repo)
    assert out["changed"] == "true"
    assert json.loads(out["hashes"])["models/sentiment"] == dvc_file_md5(repo / "models" / "sentiment.dvc") != added["models/sentiment"]
    assert ok(run(["--operation", "commit"], repo), repo)["changed"] == "false"


def test_default_remote_of_the_project_is_used(repo, tmp_path):
    dvc_cli("remote", "add", "-d", "storage", str(tmp_path / "default-store"), cwd=repo)
    ok(run(["--operation", "add", "--paths", "data/reviews.csv"], repo), repo)
    out = ok(run(["--operation", "push"], repo), repo)
    assert out["remote"] == "storage" and out["changed"] == "true"
    digest = md5(repo / "data" / "reviews.csv")
    assert (tmp_path / "default-store" / "files" / "md5" / digest[:2] / digest[2:]).is_file()


# ------------------------------------------------------------------ the sentiment DVC project


def test_sentiment_repro_and_metrics_diff_against_base(tmp_path):
    """get_data.py → dvc repro (prepare → train → evaluate) → metrics/eval.json; on a branch with a
    smaller C the metrics diff against main shows the change."""
    project = tmp_path / "sentiment"
    ignore = shutil.ignore_patterns("cache", "tmp", ".dvc-storage", "models", "prepared", "reviews.csv", "metrics", "dvc.lock", "__pycache__", "mlruns", "mlflow.db")
    shutil.copytree(SENTIMENT, project, ignore=ignore)
    git("init", "-q", "-b", "main", cwd=project)
    proc = subprocess.run([sys.executable, "get_data.py"], cwd=project, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "matches data/reviews.csv.dvc" in proc.stdout, proc.stdout + proc.stderr
    repro = dvc_cli("repro", cwd=project)
    ran = [line for line in repro.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'prepare':", "Running stage 'train':", "Running stage 'evaluate':"], repro.stdout
    metrics = json.loads((project / "metrics" / "eval.json").read_text())
    assert set(metrics) == {"accuracy", "f1", "n_test"} and metrics["accuracy"] > 0.85 and metrics["f1"] > 0.85
    assert (project / "metrics" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (project / "models" / "model.pkl").is_file()
    commit_all(project, "baseline")
    assert "metrics/eval.json" in git("ls-files", cwd=project).split()  # cache: false → in git, so the diff has a base

    git("checkout", "-q", "-b", "tune", cwd=project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["C"] = 0.001
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    repro = dvc_cli("repro", cwd=project)
    assert "Stage 'prepare' didn't change, skipping" in repro.stdout and "Running stage 'train':" in repro.stdout
    new = json.loads((project / "metrics" / "eval.json").read_text())
    assert new["accuracy"] != metrics["accuracy"]

    out = ok(run(["--operation", "metrics-diff", "--base", "main", "--metrics-diff-file", tmp_path / "diff.md"], project), project)
    table = (tmp_path / "diff.md").read_text()
    assert out["changed"] == "true" and out["metrics-diff-file"] == str(tmp_path / "diff.md") and out["metrics-diff"].strip() == table.strip()
    delta = new["accuracy"] - metrics["accuracy"]
    row = f"| `metrics/eval.json` | accuracy | {metrics['accuracy']:.4g} | {new['accuracy']:.4g} | {'▲' if delta > 0 else '▼'} {delta:+.4g} |"
    assert "### DVC metrics against `main`" in table and row in table, table
    assert "| `metrics/eval.json` | n_test | 269 | 269 | ＝ +0 |" in table
    summary = (tmp_path / "runner-sentiment" / "gh-summary").read_text()
    assert row in summary

    commit_all(project, "tune C")
    same = ok(run(["--operation", "metrics-diff", "--base", "HEAD"], project), project)
    assert same["changed"] == "false" and (project / ".mlops" / "dvc" / "metrics-diff.md").is_file()


def test_mlproject_defaults_agree_with_params_yaml():
    mlproject = yaml.safe_load((SENTIMENT / "MLproject").read_text())["entry_points"]["main"]["parameters"]
    params = yaml.safe_load((SENTIMENT / "params.yaml").read_text())
    defaults = {name: spec["default"] for name, spec in mlproject.items()}
    assert float(defaults["C"]) == params["train"]["C"]
    assert int(defaults["max_features"]) == params["train"]["max_features"]
    assert int(defaults["ngram_max"]) == params["train"]["ngram_max"]
    assert str(defaults["ensemble"]).lower() == str(params["train"]["ensemble"]).lower()
    assert float(defaults["test_size"]) == params["prepare"]["test_size"]
    assert int(defaults["seed"]) == params["prepare"]["seed"] == params["train"]["seed"]
    assert defaults["data"] == params["prepare"]["data"]
    dvc_file = yaml.safe_load((SENTIMENT / "data" / "reviews.csv.dvc").read_text())
    assert dvc_file["outs"][0]["path"] == "reviews.csv"


# ------------------------------------------------------------------------------- S3 (moto)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto_server on a free loopback port with one bucket; yields the endpoint URL."""
    import boto3

    port = local_services.free_port()
    server = Path(sys.executable).with_name("moto_server")
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket="mlops-data")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url, client
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_s3_remote_push_then_pull_in_a_fresh_clone(repo, tmp_path, s3):
    url, client = s3
    remote = "s3://mlops-data/sentiment"
    ok(run(["--operation", "add", "--paths", "data/reviews.csv,models/sentiment"], repo), repo)
    commit_all(repo, "track")
    proc = run(["--operation", "push", "--remote", remote, "--endpoint-url", url], repo, env=AWS)
    out = ok(proc, repo)
    assert out["changed"] == "true"
    assert f"::add-mask::{AWS['AWS_SECRET_ACCESS_KEY']}" in proc.stdout
    assert AWS["AWS_SECRET_ACCESS_KEY"] not in proc.stdout.replace(f"::add-mask::{AWS['AWS_SECRET_ACCESS_KEY']}", "") + proc.stderr
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="mlops-data", Prefix="sentiment/").get("Contents", [])]
    digest = md5(repo / "data" / "reviews.csv")
    assert f"sentiment/files/md5/{digest[:2]}/{digest[2:]}" in keys

    clone = tmp_path / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    out = ok(run(["--operation", "pull", "--remote", remote, "--endpoint-url", url], clone, env=AWS), clone)
    assert out["changed"] == "true"
    for rel in ("data/reviews.csv", "models/sentiment/model.pkl"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    assert ok(run(["--operation", "status", "--remote", remote, "--endpoint-url", url], clone, env=AWS), clone)["changed"] == "false"


def test_unreachable_remote_is_retried_then_fails_with_one_line(repo):
    ok(run(["--operation", "add", "--paths", "data/reviews.csv"], repo), repo)
    dead = f"http://127.0.0.1:{local_services.free_port()}"
    env = AWS | {"MLOPS_RETRY_ATTEMPTS": "2", "AWS_MAX_ATTEMPTS": "1"}
    proc = run(["--operation", "push", "--remote", "s3://mlops-data/x", "--endpoint-url", dead], repo, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [line] = errors(proc)
    assert "dvc push to mlops" in line and "after retries" in line
    assert "retry: dvc push to mlops failed" in proc.stderr and "attempt 2/2" in proc.stderr


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("args,input_name", [
    (["--operation", "publish"], "operation"),
    (["--operation", "add", "--paths", "../../etc"], "paths"),
    (["--operation", "add", "--paths", "data/missing.csv"], "paths"),
    (["--operation", "add"], "paths"),
    (["--operation", "pull", "--paths", "data/reviews.csv"], "paths"),
    (["--operation", "push", "--remote", "ftp://host/store"], "remote"),
    (["--operation", "push", "--remote", "s3://AKIA:secret@bucket/x"], "remote"),
    (["--operation", "push", "--remote", "nosuchremote"], "remote"),
    (["--operation", "push"], "remote"),
    (["--operation", "push", "--remote", "./store", "--endpoint-url", "ftp://x"], "endpoint-url"),
    (["--operation", "metrics-diff", "--base", "no-such-branch"], "base"),
    (["--operation", "add", "--paths", "data/reviews.csv", "--workdir", "{plain}"], "workdir"),
    (["--operation", "add", "--paths", "data/reviews.csv", "--workdir", "{gitonly}"], "workdir"),
], ids=["operation", "outside", "missing", "no-paths", "pull-untracked", "scheme", "url-credentials", "unknown-name",
        "no-remote", "endpoint", "base", "not-git", "not-dvc"])
def test_bad_input_exits_2_with_one_error_and_changes_nothing(repo, tmp_path, args, input_name):
    plain = tmp_path / "plain"
    plain.mkdir()
    gitonly = tmp_path / "gitonly"
    gitonly.mkdir()
    git("init", "-q", cwd=gitonly)
    args = [a.format(plain=plain, gitonly=gitonly) for a in args]
    before = {p: snapshot(p) for p in (repo, plain, gitonly)}
    proc = run(args, repo)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = errors(proc)
    assert len(lines) == 1 and f"input '{input_name}'" in lines[0] and "; fix: " in lines[0], proc.stdout
    assert "Traceback" not in proc.stderr and ":secret@" not in proc.stdout + proc.stderr
    assert {p: snapshot(p) for p in (repo, plain, gitonly)} == before
    assert not (repo / "data" / "reviews.csv.dvc").exists() and not (repo / ".mlops").exists()
