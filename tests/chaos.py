"""A TCP proxy in front of a real service that the fault tests can break on cue.

The service behind it stays real (MLflow, the registry); the proxy only decides what reaches it:
``down()`` closes the listening socket and every open connection, like a server that died (new
connections are refused); ``up()`` listens again on the same port; ``cut_after(n)`` lets ``n``
more bytes flow from the service to the client and then drops every connection and refuses new
ones, like a server that went away in the middle of a download or an upload."""

from __future__ import annotations

import socket
import threading


class ChaosProxy:
    def __init__(self, backend_host: str, backend_port: int):
        self.backend = (backend_host, backend_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._budget: int | None = None  # bytes still allowed from the backend; None = unlimited
        self.bytes_down = 0
        self.bytes_up = 0
        self.connections = 0

    # --- control -------------------------------------------------------------------------------
    def up(self) -> "ChaosProxy":
        with self._lock:
            self._budget = None
            if self._listener is not None:
                return self
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def cut_after(self, nbytes: int) -> None:
        with self._lock:
            self._budget = nbytes

    # --- plumbing ------------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.backend, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if downstream:
                    with self._lock:
                        budget = self._budget
                        if budget is not None:
                            data = data[:budget]
                            self._budget = budget - len(data)
                    if data:
                        dst.sendall(data)
                        self.bytes_down += len(data)
                    if budget is not None and self._budget == 0:
                        threading.Thread(target=self.down, daemon=True).start()
                        break
                else:
                    dst.sendall(data)
                    self.bytes_up += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
