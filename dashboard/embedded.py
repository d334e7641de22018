"""A private, throw-away redis-server: temp dir, free port, no persistence.

Used by the test suite and by ``redis-dashboard demo``. It never touches a server
that happens to be running: it always starts its own and stops it on exit.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM this server when the process that started it
    dies, even by SIGKILL, so a killed test run or demo never leaves a server behind.
    (The signal follows the starting *thread*: start servers from a long-lived one.)"""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):  # not Linux: stop() still cleans up normally
        pass


_PR_SET_PDEATHSIG = 1


class RedisServerNotFound(RuntimeError):
    """redis-server is not on PATH."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """Start ``redis-server`` on 127.0.0.1 with no persistence; stop it with :meth:`stop`."""

    def __init__(self, binary: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        found = binary or shutil.which("redis-server")
        if not found:
            raise RedisServerNotFound(
                "redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)"
            )
        self.binary = found
        self.extra_args = extra_args
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self._dir = tempfile.TemporaryDirectory(prefix="redis-dashboard-")
        for _attempt in range(5):
            self.port = free_port()
            args = [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", self._dir.name,
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(Path(self._dir.name) / "redis.log"),
                *self.extra_args,
            ]  # fmt: skip
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            if self._wait_ready(timeout):
                return self
            self._kill()
        raise RuntimeError(f"redis-server did not start; see {self._dir.name}/redis.log")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    return False  # exited: most likely the port was taken meanwhile
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:
                    time.sleep(0.005)
            return False
        finally:
            client.close()

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        self._kill()
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def in_ci() -> bool:
    """CI sets CI=true; there a missing redis-server is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
