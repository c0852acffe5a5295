"""The scoring server's process model: gunicorn's arbiter supervising pre-forked gthread workers.

What gunicorn gives, configured here from the environment (every value checked at start):

- ``WORKERS`` processes (default: the CPUs the container may use, at most 4); a worker that dies
  (SIGKILL, out of memory) is replaced at once, in the same metrics slot.
- SIGTERM (``docker stop``, a rolling update): the master closes the listening socket, every worker
  stops accepting and finishes its in-flight requests within ``GRACE_PERIOD`` seconds (default 25,
  under Kubernetes' 30 s termination grace), then the container exits 0.
- ``THREADS`` per worker (default ``MAX_CONCURRENCY`` + 4: the spare threads answer probes and
  refusals while the model is busy), ``KEEPALIVE`` seconds for an idle kept-alive connection,
  ``MAX_CONNECTIONS`` per worker (default 4096, under the file limit).

What this module adds to gunicorn's gthread worker (:class:`Worker`):

- **A new connection costs no thread until it sends bytes.** Stock gthread hands every accepted
  connection to a pool thread, which waits up to 5 s for its first bytes; a few thousand idle
  connections then hold every thread and real requests queue behind them. Here a new connection
  goes to the worker's poller first (gthread's own pending list, closed after ``KEEPALIVE`` s), as a
  kept-alive one already does.
- **A stopping worker refuses new connections at once** (it closes its listening socket) instead of
  leaving them in the backlog until its in-flight requests are done.
- **A stalled client gives its thread back.** Sockets block with a timeout, ``REQUEST_TIMEOUT``
  seconds (default 30) between bytes while a request is read or an answer written; stock gthread
  blocks without one, so a client that sends half a request holds a thread forever.

The model is loaded before a worker accepts (in the master before the fork for a native sklearn
model, whose pages are then shared). A model that cannot load stops the server with exit code 3
and one line naming the cause. Nothing is written to disk: heartbeats go to /dev/shm and gunicorn's
control socket is off, so a read-only root file system works.
"""

from __future__ import annotations

import errno
import functools
import os
import resource
import selectors
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers import gthread

# name: (default, minimum); WORKERS' default depends on the CPUs, THREADS' on MAX_CONCURRENCY
SETTINGS = {
    "MAX_CONCURRENCY": (16, 1),
    "KEEPALIVE": (5, 1),
    "REQUEST_TIMEOUT": (30, 1),
    "GRACE_PERIOD": (25, 0),
    "MAX_CONNECTIONS": (4096, 16),
    "LOAD_TIMEOUT": (300, 10),
}
SPARE_THREADS = 4


class SettingError(ValueError):
    pass


def setting(name: str, env: Mapping[str, str] | None = None, default: int | None = None) -> int:
    """An integer setting from the environment, or one line naming it and the fix."""
    values = os.environ if env is None else env
    base, low = SETTINGS.get(name, (0, 1))
    text = (values.get(name) or "").strip()
    if not text:
        return default if default is not None else base
    try:
        value = int(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a whole number; fix: set {name} to an integer >= {low}") from None
    if value < low:
        raise SettingError(f"{name}={value} is below {low}; fix: set {name} to an integer >= {low}")
    return value


class StallingClient(ConnectionResetError):
    """A client sent or read nothing for REQUEST_TIMEOUT seconds (gunicorn drops it quietly, as
    it does a reset connection)."""


class TimedSocket(socket.socket):
    """An accepted socket whose blocking mode has a timeout: gthread switches sockets between
    non-blocking (in the poller) and blocking (in a thread); blocking here means "at most
    ``stall`` seconds between bytes"."""

    stall = 30.0

    @classmethod
    def adopt(cls, sock: socket.socket) -> TimedSocket:
        return cls(sock.family, sock.type, sock.proto, fileno=sock.detach())

    def setblocking(self, flag: bool) -> None:
        self.settimeout(self.stall if flag else 0.0)

    def _timed(self, method: Callable, *args):
        try:
            return method(*args)
        except TimeoutError:
            raise StallingClient(errno.ECONNRESET, f"client stalled for {self.stall:g} s") from None

    def recv(self, *args):
        return self._timed(super().recv, *args)

    def recv_into(self, *args):
        return self._timed(super().recv_into, *args)

    def send(self, *args):
        return self._timed(super().send, *args)

    def sendall(self, *args):
        return self._timed(super().sendall, *args)


class Worker(gthread.ThreadWorker):
    """gthread, with new connections parked in the poller until they send bytes (see the module
    docstring). Relies on gthread's pending-connection list (gunicorn 23 or later); without it,
    accepts as stock gthread does."""

    def set_accept_enabled(self, enabled):
        """On SIGTERM, also close this worker's copy of the listening socket (the master has closed
        its own): a new connection is refused at once, and the load balancer retries elsewhere,
        instead of waiting in the backlog until the drain ends."""
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            for listener in self.sockets:
                listener.close()

    def accept(self, listener):
        if not hasattr(self, "pending_conns"):
            return super().accept(listener)
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EMFILE, errno.ENFILE):
                return None
            raise
        self.nr_conns += 1
        conn = gthread.TConn(self.cfg, TimedSocket.adopt(client), addr, listener.getsockname())
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, functools.partial(self.on_pending_socket_readable, conn))
        return None


class Application(BaseApplication):
    def __init__(self, options: dict, load: Callable[[], Any]):
        self.options = options
        self._load = load
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._load()


def file_limit() -> int:
    """Raise the open-file soft limit to the hard one (containerd's default soft limit is 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def options(port: int, workers: int, env: Mapping[str, str] | None = None) -> dict:
    """gunicorn's settings from the environment (SettingError on a bad value)."""
    env = os.environ if env is None else env
    concurrency = setting("MAX_CONCURRENCY", env)
    threads = setting("THREADS", env, default=concurrency + SPARE_THREADS)
    TimedSocket.stall = float(setting("REQUEST_TIMEOUT", env))
    connections = min(setting("MAX_CONNECTIONS", env), max(64, file_limit() // max(1, workers) - 64))
    shm = "/dev/shm"
    return {
        "bind": [f"0.0.0.0:{port}"],
        "workers": workers,
        "worker_class": Worker,
        "threads": threads,
        "worker_connections": connections,
        "keepalive": setting("KEEPALIVE", env),
        "graceful_timeout": setting("GRACE_PERIOD", env),
        # the master's heartbeat check; the gthread loop beats every second, so this only has to
        # outlast a model load in a worker (TensorFlow, a large pyfunc)
        "timeout": setting("LOAD_TIMEOUT", env),
        "backlog": 2048,
        "worker_tmp_dir": shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None,
        "control_socket_disable": True,
        "accesslog": "-" if env.get("ACCESS_LOG", "1") == "1" else None,
        "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
        "errorlog": "-",
        "loglevel": env.get("LOG_LEVEL", "info"),
        "proc_name": "mlops-serve",
    }


def run(settings: dict, load: Callable[[], Any], hooks: dict[str, Callable]) -> None:
    """Serve the WSGI app ``load()`` returns under gunicorn's arbiter; never returns."""
    Application({**settings, **hooks}, load).run()
    sys.exit(0)
