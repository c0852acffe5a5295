"""Real services on loopback for the demo and the tests: the Docker engine, a registry with
htpasswd auth, an MLflow tracking server (optionally with basic auth, the way DagsHub answers),
and the local stand-in for python:3.11-slim. Nothing here is a mock."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .paths import resource


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str, auth: tuple[str, str] | None = None) -> int | None:
    from .docker import http_status

    headers = {}
    if auth:
        import base64

        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return http_status(url, headers=headers, timeout=3)


def wait_for(
    url: str, ok: tuple[int, ...], timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _status(url) in ok:
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log and log.is_file() else ""
            raise RuntimeError(f"{url}: process exited with {proc.returncode}\n{tail}")
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer {ok} within {timeout:.0f}s")


def docker_ok() -> bool:
    try:
        import docker

        docker.from_env(timeout=10).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False


def ensure_dockerd(timeout: float = 60) -> bool:
    """True when an engine answers; starts dockerd (root, binary present) when none does."""
    if docker_ok():
        return True
    if not shutil.which("dockerd") or os.geteuid() != 0:
        return False
    with open("/tmp/mlops-dockerd.log", "ab") as log:
        proc = subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_ok():
            return True
        if proc.poll() is not None:  # died at start-up (an unprivileged container): no use waiting
            print(f"dockerd exited during start-up with code {proc.returncode} (log: /tmp/mlops-dockerd.log)")
            return False
        time.sleep(0.5)
    return False


def ensure_base_image(tag: str = "python:3.11-slim") -> None:
    subprocess.run(["bash", str(resource("scripts/local/base-image.sh")), tag], check=True)


@dataclass
class Service:
    url: str
    proc: subprocess.Popen
    root: Path
    env: dict = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_registry(root: Path, user: str, password: str, port: int | None = None) -> Service:
    """Debian's docker-registry (distribution 2.8) on 127.0.0.1 with htpasswd (bcrypt) auth."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    htpasswd = root / "htpasswd"
    # password on stdin (-i), never on a command line
    line = subprocess.run(
        ["htpasswd", "-niB", user], input=password + "\n", capture_output=True, text=True, check=True
    ).stdout.strip()
    htpasswd.write_text(line + "\n")
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
        f"auth: {{htpasswd: {{realm: mlops-local, path: {htpasswd}}}}}\n"
    )
    log = root / "registry.log"
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=open(log, "ab"),  # noqa: SIM115 - the server owns its log
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/v2/", (401,), 30, proc, log)
    return Service(url=url, proc=proc, root=root)


def start_mlflow(root: Path, port: int | None = None, admin_password: str | None = None) -> Service:
    """``mlflow server`` with a sqlite backend and a local artifact store; with ``admin_password``
    it runs ``--app-name basic-auth`` (no credentials → 401), as DagsHub's MLflow does."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = dict(os.environ)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        env.pop(var, None)
    # no GenAI job runner: it starts several huey consumer processes per server that nothing here uses
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--workers",
        "2",
    ]
    if admin_password:
        ini = root / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{root / 'auth.db'}\n"
            "admin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        env.update(
            MLFLOW_AUTH_CONFIG_PATH=str(ini),
            MLFLOW_AUTH_ADMIN_PASSWORD=admin_password,
            MLFLOW_FLASK_SERVER_SECRET_KEY=os.urandom(16).hex(),
        )
        cmd += ["--app-name", "basic-auth"]
    log = root / "mlflow.log"
    proc = subprocess.Popen(
        cmd,
        stdout=open(log, "ab"),  # noqa: SIM115 - the server owns its log
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/health", (200, 401), 120, proc, log)
    return Service(url=url, proc=proc, root=root)


def git_origin(root: Path, branch: str = "main") -> tuple[Path, Path]:
    """A bare "origin" whose ``branch`` holds one commit, and a clone of it (what actions/checkout
    leaves): ``(root/origin.git, root/clone)``. Reuses both when they exist."""
    root = Path(root)
    origin, clone = root / "origin.git", root / "clone"

    def git(*args: str, cwd: Path = root) -> None:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)

    root.mkdir(parents=True, exist_ok=True)
    if not origin.exists():
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(origin))
        seed = root / "seed"
        git("init", "--quiet", f"--initial-branch={branch}", str(seed))
        (seed / "README.md").write_text("# adopter repository\n")
        git("add", "README.md", cwd=seed)
        git(
            "-c",
            "user.name=seed",
            "-c",
            "user.email=seed@example.invalid",
            "commit",
            "--quiet",
            "-m",
            "initial",
            cwd=seed,
        )
        git("push", "--quiet", str(origin), branch, cwd=seed)
        shutil.rmtree(seed)
    if not clone.exists():
        git("clone", "--quiet", str(origin), str(clone))
    return origin, clone
