"""The scoring server's process model: gunicorn's arbiter supervising pre-forked gthread workers.

What gunicorn gives, configured here from the environment (every value checked at start):

- ``WORKERS`` processes (default: the CPUs the container may use, at most 4); a worker that dies
  (SIGKILL, out of memory) is replaced at once, in the same metrics slot.
- SIGTERM (``docker stop``, a rolling update): the master closes the listening socket, every worker
  stops accepting and finishes its in-flight requests within ``GRACE_PERIOD`` seconds (default 25,
  under Kubernetes' 30 s termination grace), then the container exits 0.
- ``THREADS`` per worker (default ``MAX_CONCURRENCY`` + 16: the spare threads answer probes and
  refusals while the model is busy), ``KEEPALIVE`` seconds for an idle kept-alive connection,
  ``MAX_CONNECTIONS`` per worker (default 4096, under the file limit).

What this module adds to gunicorn's gthread worker (:class:`Worker`), measured against the
server it replaced (benchmarks/RESULTS.md):

- **A kept-alive client's next request is served by the same thread** when it arrives within 5 ms,
  and **a response leaves in one send** (headers and body), with the Date header formatted once a
  second and no forwarding-header checks (the server reads none): stock gthread sends headers and
  body apart and returns the connection to the poller after each response, and those hops and
  interpreter-lock handoffs cost more than a fast model's prediction.

- **A kept-alive ``POST /invocations`` skips gunicorn's per-request machinery** (:meth:`Worker.fast`):
  after a connection's first request, a plain one (exact request line, token header names, one
  Content-Length up to 1 MiB, no Transfer-Encoding, Expect or Upgrade) is read, handed to the app
  with the environ gunicorn would build and answered in one send, with gunicorn's limits and the
  same bytes (tests/unit/serving/test_worker.py compares them with ``FAST_PATH=0``); anything
  else goes back, unread, to gunicorn's parser. gunicorn's parser, environ and response objects
  held about two thirds of the interpreter time of a one-row ONNX prediction (the app 31 %): one
  worker's req/s doubles.

- **New connections spread evenly over the workers** (:class:`Balance`): a worker holding more
  open connections than another waits 2 ms before accepting, so the less loaded one takes it.
  Stock gunicorn lets whichever worker wakes first take each one; a few kept-alive clients then
  often land on one worker while another CPU idles.

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
- **A stuck prediction costs its worker, never the client.** A prediction running past
  ``PREDICT_TIMEOUT`` seconds (default 60, 0 = off) is answered 504 by the worker's watchdog
  (watchdog.py), which recycles the worker (:meth:`Worker.abandon`): it stops accepting, finishes its
  other requests within ``GRACE_PERIOD`` (not waiting for the stuck one) and exits, leaving the
  stuck thread behind (a Python thread cannot be stopped); the master starts a fresh worker, as
  for one that died. Stock gthread would wait for it until the master's heartbeat check killed it.

The model is loaded before a worker accepts (in the master before the fork for a native sklearn
model, whose pages are then shared). A model that cannot load stops the server with exit code 3
and one line naming the cause. Nothing is written to disk: heartbeats go to /dev/shm and gunicorn's
control socket is off, so a read-only root file system works.
"""

from __future__ import annotations

import email.utils
import errno
import functools
import io
import mmap
import os
import re
import resource
import select
import selectors
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from gunicorn import SERVER, SERVER_SOFTWARE, util
from gunicorn.app.base import BaseApplication
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser
from gunicorn.workers import gthread

from .settings import flag, whole

# name: (default, minimum); WORKERS' default depends on the CPUs, THREADS' on MAX_CONCURRENCY
SETTINGS = {
    "MAX_CONCURRENCY": (16, 1),
    "KEEPALIVE": (5, 1),
    "REQUEST_TIMEOUT": (30, 1),
    "GRACE_PERIOD": (25, 0),
    "MAX_CONNECTIONS": (4096, 16),
    "LOAD_TIMEOUT": (300, 10),
    "PREDICT_TIMEOUT": (60, 0),  # 0: off
}
SPARE_THREADS = 16  # threads beyond MAX_CONCURRENCY: probes and refusals (which read what they refuse)
NEXT_REQUEST_WAIT = 0.005  # seconds a thread waits for a kept-alive client's next request
BALANCE_WAIT = 0.002  # seconds a worker holding more connections than another waits before it accepts
FAST_HEAD = b"POST /invocations HTTP/1.1\r\n"  # the only request line the fast path serves (see Worker.fast)
FAST_BODY_LIMIT = 1 << 20  # larger bodies go through gunicorn's parser (the app's MAX_REQUEST_BYTES applies)
FAST_HOP = frozenset({b"TRANSFER-ENCODING", b"EXPECT", b"UPGRADE", b"HTTP2-SETTINGS", b"TE", b"TRAILER"})
# an RFC 9110 token without "_" (gunicorn drops names with "_"), and the bytes no header line may hold
_NAME = re.compile(rb"[!#$%&'*+.^`|~0-9A-Za-z-]+\Z")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def setting(name: str, env: Mapping[str, str] | None = None, default: int | None = None) -> int:
    """An integer setting of the table above from the environment, or one line naming it and the fix."""
    base, low = SETTINGS.get(name, (0, 1))
    return whole(name, env, default=base if default is None else default, low=low)


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


_DATE: list = [0, ""]


def _http_date(timestamp=None) -> str:
    """gunicorn's util.http_date, formatted once per second."""
    now = int(time.time() if timestamp is None else timestamp)
    if _DATE[0] != now:
        _DATE[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return _DATE[1]


class OneWriteResponse(wsgi.Response):
    """A response whose body comes in one piece of the announced length (every answer of the
    scoring server) leaves with its headers in one send: stock gunicorn sends the headers, then
    the body, and each send lets another thread take the interpreter lock."""

    headers_sent: bool  # gunicorn's, set in its __init__
    sent: int

    def write(self, arg):
        if (
            self.headers_sent
            or self.chunked
            or getattr(self, "_omits_body", True)
            or not isinstance(arg, bytes)
            or self.response_length != len(arg)
        ):
            return super().write(arg)
        lines = self.default_headers() + [f"{k}: {v}\r\n" for k, v in self.headers]
        util.write(self.sock, ("".join(lines) + "\r\n").encode("latin-1") + arg)
        self.headers_sent = True
        self.sent += len(arg)
        return None


class Balance:
    """Each worker's open connections, in memory the master shares with the workers it forks
    (indexed by the worker's slot, ``worker.slot``, which the server's pre_fork hook assigns; -1: not
    accepting). All workers share one listening socket and the kernel wakes them all for a new
    connection, so whichever is first takes it: with a few kept-alive clients (a load balancer's
    pool, wrk -c8 on 2 workers) one worker often held 7 of 8 connections while the other CPU idled
    (100-row req/s of one server varied 1.4× between runs). A worker holding more connections than another waits
    ``BALANCE_WAIT`` before accepting, so the less loaded one takes the connection; the wait is only
    in the accepting loop of the busier worker, never in a request."""

    def __init__(self, workers: int):
        self.workers = workers
        self._buf = mmap.mmap(-1, 8 * max(1, workers))
        self.counts = memoryview(self._buf).cast("q")
        for i in range(workers):
            self.counts[i] = -1

    def publish(self, slot: int, connections: int) -> None:
        if 0 <= slot < self.workers:
            self.counts[slot] = connections

    def busier(self, slot: int, connections: int) -> bool:
        """Whether another accepting worker holds fewer connections than ``connections``."""
        return any(0 <= self.counts[i] < connections for i in range(self.workers) if i != slot)


def _no_write(data: bytes) -> None:
    raise NotImplementedError("the fast path sends the body the app returns; WSGI write() is not supported")


class _Failing:
    """A request body whose client stalled: every read raises what the socket raised."""

    def __init__(self, exc: OSError):
        self.exc = exc

    def read(self, *args):
        raise self.exc

    readline = read


class Worker(gthread.ThreadWorker):
    """gthread, with new connections parked in the poller until they send bytes (see the module
    docstring). Relies on gthread's pending-connection list (gunicorn 23 or later); without it,
    accepts as stock gthread does."""

    fast_path = True  # FAST_PATH, set in the master by options() before the fork
    balance: Balance | None = None  # set in the master by options() before the fork
    alive: bool  # gunicorn's, set in its __init__

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stuck: set[socket.socket] = set()  # connections whose prediction the watchdog gave up on
        # the settings the fast path reads per request, read once (gunicorn's Config looks each one up);
        # 0: gunicorn's defaults
        cfg = self.cfg
        self.field_limit = cfg.limit_request_field_size or 8190
        self.fields_limit = cfg.limit_request_fields or 32768
        self.keepalive_on = bool(cfg.keepalive)
        self.multiprocess = cfg.workers > 1

    def init_process(self):
        # in this worker process only: every response through OneWriteResponse, and the Date
        # header formatted once a second, not per response
        wsgi.Response = OneWriteResponse
        util.http_date = _http_date
        super().init_process()

    def notify(self):
        super().notify()  # every turn of the main loop: publish this worker's connections too
        if self.balance is not None and self._accepting:
            self.balance.publish(getattr(self, "slot", -1), self.nr_conns)

    def set_accept_enabled(self, enabled):
        """On SIGTERM, also close this worker's copy of the listening socket (the master has closed
        its own): a new connection is refused at once, and the load balancer retries elsewhere,
        instead of waiting in the backlog until the drain ends."""
        super().set_accept_enabled(enabled)
        if self.balance is not None:
            self.balance.publish(getattr(self, "slot", -1), self.nr_conns if enabled else -1)
        if not enabled and not self.alive:
            for listener in self.sockets:
                listener.close()

    def abandon(self, sock: socket.socket | None, answer: Callable[[], object]) -> None:
        """The predict watchdog gave up on the request on ``sock`` (its thread is stuck): recycle this
        worker (see the module docstring). Called from the watchdog's thread, under the lock the
        request's own thread takes to learn that it was answered. In this order: the worker stops
        (a request the client sends after the 504 is answered with ``Connection: close``); ``answer()``
        sends the 504; then the connection is counted out in the main loop (queued before that
        connection can end, so counted once), which lets the drain end, never before the 504 left."""
        recycling = bool(self.alive)
        self.handle_exit(None, None)  # gunicorn's graceful stop, as on SIGTERM
        try:
            answer()
        finally:
            self.method_queue.defer(self._abandoned, sock, recycling)

    def _abandoned(self, sock: socket.socket | None, recycling: bool) -> None:  # main loop
        if sock is not None and sock not in self.stuck:
            self.stuck.add(sock)
            self.nr_conns -= 1  # the drain does not wait for it
        if recycling:
            self.log.warning(
                "Worker (pid:%s) recycling: a prediction is stuck past PREDICT_TIMEOUT; it accepts no more "
                "connections, finishes the others within GRACE_PERIOD (%ss) and exits",
                self.pid,
                self.cfg.graceful_timeout,
            )

    def finish_request(self, conn, fs):
        if conn.sock in self.stuck:  # the stuck prediction returned after all: count it out once
            self.stuck.discard(conn.sock)
            self.nr_conns += 1
        super().finish_request(conn, fs)

    def run(self):
        super().run()
        if self.stuck:
            # the stuck threads are the thread pool's, which the interpreter joins at exit: leave now
            self.log.info("Worker exiting (pid: %s), leaving %d stuck prediction(s)", self.pid, len(self.stuck))
            sys.stderr.flush()
            os._exit(0)

    def handle(self, conn):
        """Serve a kept-alive connection's next request in this thread when the client sends it at
        once (within ``NEXT_REQUEST_WAIT``): stock gthread hands the connection back to the poller
        after every response, and the hops (pool thread → main loop → poller → pool thread) cost
        more than a fast model's prediction."""
        while True:
            fast = self.fast_path and conn.initialized and type(conn.parser) is RequestParser
            keep = self.fast(conn) if fast else None
            if keep is None:
                keep = super().handle(conn)
            if keep is not True or not self.alive or conn.parser is None:
                return keep
            if not conn.parser.unreader.buf.getvalue():
                try:
                    ready, _, _ = select.select([conn.sock], [], [], NEXT_REQUEST_WAIT)
                except (OSError, ValueError):
                    return keep
                if not ready:
                    return keep

    def fast(self, conn) -> bool | None:
        """Serve a plain ``POST /invocations`` on a connection past its first request without
        gunicorn's per-request machinery (its parser, WSGI environ and response objects held about two
        thirds of the interpreter time of a one-row ONNX prediction). True: keep the connection; False: close
        it; None: not a request for this path, and every byte read is handed back to gunicorn's
        parser, which then serves or refuses it with its own rules and limits.

        Served here: the exact request line ``POST /invocations HTTP/1.1``, at most
        ``limit_request_fields`` header lines of at most ``limit_request_field_size`` bytes, each a
        token name (no "_"), a colon and a value without control bytes; a single decimal
        Content-Length up to ``FAST_BODY_LIMIT``; ``Connection`` keep-alive or close. Anything else
        (Transfer-Encoding, Expect, Upgrade, a folded or malformed line, a large body) is gunicorn's.
        The app sees the WSGI environ gunicorn would give it for these bytes."""
        unreader = conn.parser.unreader
        sock = conn.sock
        sock.setblocking(True)
        data = unreader.buf.getvalue()
        unreader.buf = io.BytesIO()
        field_limit = self.field_limit
        try:
            while True:
                end = data.find(b"\r\n\r\n")
                if end >= 0:
                    break
                if not FAST_HEAD.startswith(data[: len(FAST_HEAD)]) or len(data) > field_limit:
                    raise LookupError
                chunk = sock.recv(8192)
                if not chunk:
                    return False  # the client closed (a half-sent head is no request)
                data += chunk
            lines = data[:end].split(b"\r\n")
            if lines[0] != FAST_HEAD[:-2] or len(lines) > self.fields_limit:
                raise LookupError
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/invocations",
                "RAW_URI": "/invocations",
                "SCRIPT_NAME": "",
                "QUERY_STRING": "",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "SERVER_SOFTWARE": SERVER_SOFTWARE,
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": True,
                "wsgi.multiprocess": self.multiprocess,
                "wsgi.run_once": False,
                "wsgi.input_terminated": True,
                "gunicorn.socket": sock,
            }
            length, close = 0, False
            for line in lines[1:]:
                name, colon, value = line.partition(b":")
                if not colon or len(line) > field_limit or not _NAME.match(name) or _CONTROL.search(line):
                    raise LookupError
                name = name.upper()
                value = value.strip(b" \t")
                if name == b"CONTENT-LENGTH":
                    if "CONTENT_LENGTH" in environ or not value.isdigit():
                        raise LookupError
                    length = int(value)
                    key = "CONTENT_LENGTH"
                elif name == b"CONNECTION":
                    token = value.lower()
                    if token not in (b"keep-alive", b"close"):
                        raise LookupError
                    close = close or token == b"close"
                    key = "HTTP_CONNECTION"
                elif name in FAST_HOP:
                    raise LookupError
                else:
                    key = "CONTENT_TYPE" if name == b"CONTENT-TYPE" else "HTTP_" + name.decode().replace("-", "_")
                text = value.decode("latin-1")
                environ[key] = f"{environ[key]},{text}" if key in environ else text
            if length > FAST_BODY_LIMIT:
                raise LookupError
        except LookupError:  # not for this path: gunicorn reads the same bytes
            unreader.unread(data)
            return None
        except OSError:  # reset, or stalled past REQUEST_TIMEOUT
            return False
        try:
            rest = data[end + 4 :]
            stalled = None
            if len(rest) < length:
                chunks = [rest]
                got = len(rest)
                try:
                    while got < length:
                        chunk = sock.recv(max(65536, length - got))
                        if not chunk:
                            return False
                        chunks.append(chunk)
                        got += len(chunk)
                except StallingClient as exc:  # the app answers it (408), as it does reading from gunicorn
                    stalled = exc
                rest = b"".join(chunks)
            if len(rest) > length:
                unreader.unread(rest[length:])  # a pipelined next request
            environ["wsgi.input"] = io.BytesIO(rest[:length]) if stalled is None else _Failing(stalled)
            client, server = conn.client, conn.server
            if isinstance(client, tuple):
                environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
            if isinstance(server, tuple):
                environ["SERVER_NAME"], environ["SERVER_PORT"] = str(server[0]), str(server[1])

            self.nr += 1
            if self.nr >= self.max_requests and self.alive:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            full = len(self.keepalived_conns) >= self.max_keepalived
            close = close or not self.alive or not self.keepalive_on or full
            started: list = []

            def start_response(status, headers, exc_info=None):
                if exc_info and started:
                    raise exc_info[1].with_traceback(exc_info[2])
                started[:] = [status, headers]
                return _no_write  # the scoring app returns its body; raw bytes here would precede the headers

            result = self.wsgi(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            status, headers = started
            lines = []
            sized = False
            for key, value in headers:
                lower = key.lower()
                if util.is_hoppish(lower):
                    close = close or (lower == "connection" and value.lower() == "close")
                    continue
                sized = sized or lower == "content-length"
                lines.append(f"{key}: {value}\r\n")
            if not sized:
                lines.append(f"Content-Length: {len(body)}\r\n")
            connection = "close" if close else "keep-alive"
            head = f"HTTP/1.1 {status}\r\nServer: {SERVER}\r\nDate: {_http_date()}\r\nConnection: {connection}\r\n"
            sock.sendall((head + "".join(lines) + "\r\n").encode("latin-1") + body)
            return not close and stalled is None
        except OSError:  # the client went, or the watchdog answered this request (504) and closed it
            return False
        except Exception as exc:  # noqa: BLE001 - as gunicorn does: a 500 and the connection closed
            self.handle_error(None, sock, conn.client, exc)
            return False

    def accept(self, listener):
        if not hasattr(self, "pending_conns"):
            return super().accept(listener)
        if self.balance is not None and self.balance.busier(getattr(self, "slot", -1), self.nr_conns):
            time.sleep(BALANCE_WAIT)  # a less loaded worker takes it (then accept() finds none: EAGAIN)
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EMFILE, errno.ENFILE):
                return None
            raise
        self.nr_conns += 1
        if self.balance is not None:
            self.balance.publish(getattr(self, "slot", -1), self.nr_conns)
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
    """gunicorn's settings from the environment (settings.SettingError on a bad value)."""
    env = os.environ if env is None else env
    concurrency = setting("MAX_CONCURRENCY", env)
    threads = setting("THREADS", env, default=concurrency + SPARE_THREADS)
    TimedSocket.stall = float(setting("REQUEST_TIMEOUT", env))
    Worker.fast_path = flag("FAST_PATH", env, default=True)
    Worker.balance = Balance(workers) if workers > 1 else None
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
        # the server reads no forwarding header (no scheme, script name or path from a proxy): trust
        # none, and skip the per-request check of the peer against an allow list
        "forwarded_allow_ips": "*",
        "secure_scheme_headers": {},
        "forwarder_headers": "",
        "accesslog": None,  # the app writes its own access line (server.App): gunicorn's costs ~20 % of req/s
        "errorlog": "-",
        "loglevel": env.get("LOG_LEVEL", "info"),
        "proc_name": "mlops-serve",
    }


def run(settings: dict, load: Callable[[], Any], hooks: dict[str, Callable]) -> None:
    """Serve the WSGI app ``load()`` returns under gunicorn's arbiter; never returns."""
    Application({**settings, **hooks}, load).run()
    sys.exit(0)
