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
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

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


class Managed:
    """``with Thing() as thing:`` starts it and stops it whatever happens."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedRedis(Managed):
    """Start ``redis-server`` on 127.0.0.1 with no persistence; stop it with :meth:`stop`.

    ``port``: a fixed port (0: a free one). ``config``: text written to
    ``redis.conf`` in the server's directory and passed first (Sentinel rewrites
    its own config file, so it needs one). ``sentinel``: run as a Sentinel.
    :meth:`kill` crashes the server but keeps its directory (cluster state,
    Sentinel config) so :meth:`restart` brings the same node back on the same port.
    """

    def __init__(
        self,
        binary: str | None = None,
        extra_args: tuple[str, ...] = (),
        *,
        port: int = 0,
        config: str | None = None,
        sentinel: bool = False,
    ) -> None:
        found = binary or shutil.which("redis-server")
        if not found:
            raise RedisServerNotFound(
                "redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)"
            )
        self.binary = found
        self.extra_args = extra_args
        self.port = port
        self._fixed_port = bool(port)
        self.config = config
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def directory(self) -> Path:
        """The server's private directory (log, cluster or Sentinel config)."""
        if self._dir is None:
            raise RuntimeError("the server was never started")
        return Path(self._dir.name)

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        for _attempt in range(5):
            self.launch()
            if self.wait_ready(timeout):
                return self
            self._kill()
        raise RuntimeError(f"redis-server did not start; see {self.directory}/redis.log")

    def launch(self) -> subprocess.Popen[bytes]:
        """Spawn the process without waiting for it (start many, then :meth:`wait_ready`)."""
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="redis-dashboard-")
        if not self._fixed_port:
            self.port = free_port()
        args = [self.binary]
        if self.config is not None:
            conf = self.directory / "redis.conf"
            if not conf.exists():  # a restarted Sentinel keeps what it rewrote
                conf.write_text(self.config)
            args.append(str(conf))
        if self.sentinel:
            args.append("--sentinel")
        else:
            args += ["--save", "", "--appendonly", "no"]
        args += [
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return self.process

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Crash the server (SIGKILL by default); its directory stays for :meth:`restart`."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            self.process.wait()

    def restart(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Bring a killed server back on the same port with the same directory."""
        self.kill()
        self._fixed_port = True
        deadline = time.monotonic() + timeout
        while True:  # the old socket may linger a moment
            self.launch()
            if self.wait_ready(max(0.5, deadline - time.monotonic())):
                return self
            self._kill()
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not restart; see {self.directory}/redis.log")
            time.sleep(0.1)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the server answers PING; False if it exited or timed out."""
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


def in_ci() -> bool:
    """CI sets CI=true; there a missing redis-server is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``predicate`` until it returns something truthy; errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (redis.RedisError, OSError, LookupError) as exc:
            last, value = exc, None
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


def admin_client(port: int) -> redis.Redis:
    """A plain client for one of our own servers (not gated: it sets them up)."""
    return redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=1)
