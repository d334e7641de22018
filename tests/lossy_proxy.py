"""A TCP proxy in front of the suite's redis-server that can lose a reply for real.

``arm(marker)``: the next request containing ``marker`` is forwarded and runs on the
server, and then its connection is cut instead of the reply arriving: the way a
dropped connection loses a reply, whatever client code (blocking or asyncio, any
redis-py internals) is reading it. A NOSCRIPT reply (nothing ran) is passed on, and
the reply to the EVAL that follows on the same connection is the one lost.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class LossyProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._armed: list[tuple[bytes, bool]] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.lost = 0  # replies dropped so far
        threading.Thread(target=self._accept, daemon=True, name="lossy-proxy").start()

    def arm(self, marker: bytes = b"EVAL", cut: bool = True) -> None:
        """Lose the reply to the next request that contains ``marker``: cut the connection
        (``cut``), or swallow the reply and keep the connection open (the client's read
        times out)."""
        with self._lock:
            self._armed.append((marker, cut))

    def close(self) -> None:
        _cut(self.listener)  # wakes the accepting thread
        with self._lock:
            for sock in self._sockets:
                _cut(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            doomed: list[bool] = []  # how to lose the next reply: cut (True) or swallow
            for pump, ends in (
                (self._requests, (client, upstream)),
                (self._replies, (upstream, client)),
            ):
                threading.Thread(target=pump, args=(*ends, doomed), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, doomed: list[bool]) -> None:
        while data := _recv(client):
            with self._lock:
                if self._armed and not doomed and self._armed[0][0] in data:
                    doomed.append(self._armed.pop(0)[1])  # before the request goes out
            try:
                upstream.sendall(data)
            except OSError:
                break
        _cut(upstream)

    def _replies(self, upstream: socket.socket, client: socket.socket, doomed: list[bool]) -> None:
        while data := _recv(upstream):
            if doomed and not data.startswith(b"-NOSCRIPT"):  # a NOSCRIPT reply ran nothing
                self.lost += 1
                if doomed.pop(0):
                    break  # the server answered; the client never hears it
                continue
            try:
                client.sendall(data)
            except OSError:
                break
        _cut(client)
        _cut(upstream)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
