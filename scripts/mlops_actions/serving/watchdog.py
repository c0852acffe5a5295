"""``PREDICT_TIMEOUT``: a prediction that runs too long is answered at once, and its worker replaced.

A Python thread cannot be stopped, so a model whose ``predict()`` never returns would hold its
thread (and a ``MAX_CONCURRENCY`` slot) for as long as its process lives; a few such requests and
the worker has nothing left. One watchdog thread per worker process looks at the predictions in
flight; one running ``PREDICT_TIMEOUT`` seconds (default 60, 0 = off) is answered on the request's
own connection from the watchdog's thread: 504 ``DEADLINE_EXCEEDED`` (MLflow's error code for it,
which MLflow maps to 504), then the connection is closed. No ``Retry-After``: unlike the 503 of a
full worker, the same input would likely hang another worker. The worker is told to recycle itself
(supervisor.Worker.abandon): it stops accepting, finishes its other requests within
``GRACE_PERIOD`` and exits, leaving the stuck thread behind; gunicorn's master starts a fresh one.

Nothing is added to a prediction but two dictionary operations under a lock: the watchdog sleeps
until the earliest deadline in flight, or ``PREDICT_TIMEOUT`` seconds when none is (a prediction that
starts meanwhile is due no earlier than that). A prediction stuck in native code that holds the
interpreter lock freezes the whole worker, the watchdog with it: gunicorn's heartbeat check
(``LOAD_TIMEOUT``) kills such a worker.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import itertools
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

ABANDONED = "mlserve.abandoned"  # environ key: the watchdog answered this request, send nothing more


class Watchdog:
    """Predictions in flight in this worker, and the thread that answers those past ``seconds``.

    ``late(environ, thread_id)`` answers a late request (in the watchdog's thread); ``abandon(sock,
    answer)``, set by the worker once it runs, recycles the worker and calls ``answer()`` (``late``
    for that request) on the way. Both run with the watchdog's lock held, so :meth:`finish` of that
    request returns only after they have."""

    def __init__(self, seconds: int, late: Callable[[dict, int], None]):
        self.seconds = seconds
        self.late = late
        self.abandon: Callable[[Any, Callable[[], None]], None] | None = None
        self._lock = threading.Lock()
        self._running: dict[int, tuple[float, dict, int]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def start(self, environ: dict) -> int | None:
        """Watch a prediction about to run in this thread; the token to give :meth:`finish`."""
        if not self.seconds:
            return None
        token = next(self._ids)
        entry = (time.monotonic() + self.seconds, environ, threading.get_ident())
        with self._lock:
            if self._thread is None:  # started in the worker: a thread does not survive the fork
                self._thread = threading.Thread(target=self._run, name="predict-watchdog", daemon=True)
                self._thread.start()
            self._running[token] = entry
        return token

    def finish(self, token: int | None) -> bool:
        """The prediction returned: True, or False when the watchdog has answered it already."""
        if token is None:
            return True
        with self._lock:
            return self._running.pop(token, None) is not None

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            with self._lock:
                for token, (deadline, environ, ident) in list(self._running.items()):
                    if deadline <= now:
                        del self._running[token]
                        environ[ABANDONED] = True
                        answer = functools.partial(self.late, environ, ident)
                        try:
                            if self.abandon is None:
                                answer()
                            else:
                                self.abandon(environ.get("gunicorn.socket"), answer)
                        except Exception as exc:  # noqa: BLE001 - the watchdog must outlive any one answer
                            sys.stderr.write(f"predict watchdog: {exc.__class__.__name__}: {exc}\n")
                wake = min((entry[0] for entry in self._running.values()), default=now + self.seconds)
            time.sleep(max(0.0, wake - time.monotonic()) + 0.001)


def respond(sock, status: str, body: bytes, ctype: str) -> bool:
    """Write a whole HTTP/1.1 answer on ``sock`` without blocking, then shut the connection down
    (``Connection: close``; the stuck thread's own answer, should it ever come, then fails quietly).
    False when the client had gone."""
    if sock is None:
        return False
    head = (
        f"HTTP/1.1 {status}\r\nDate: {email.utils.formatdate(usegmt=True)}\r\nConnection: close\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    data = head.encode("latin-1") + body
    try:
        return sock.send(data, socket.MSG_DONTWAIT) == len(data)  # a few hundred bytes: the send buffer takes them
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def where(ident: int, depth: int = 4) -> str:
    """Where thread ``ident`` is now: its innermost ``depth`` frames, innermost first, on one line."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return "unknown"
    frames = traceback.extract_stack(frame)[-depth:]
    return " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))
