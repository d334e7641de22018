"""Production serving with gunicorn's threaded worker.

Why gunicorn ``gthread``: it is production-grade, and each request, including a
long-lived Server-Sent-Events stream (the pub/sub tail), holds one thread, so
several open tails and the ordinary pages run side by side. One worker process
only: scan jobs, tails and their bounded buffers live in that process's memory,
and a second worker would not see them. Scale with ``--threads``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from dashboard.config import Settings


class Server(BaseApplication):
    """gunicorn run from Python with our options (no config file, no argv)."""

    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            if name in self.cfg.settings:  # older gunicorn lacks some (control_socket_*)
                self.cfg.set(name, value)

    def load(self) -> Any:
        return self._factory()


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """The server settings we run with (documented in docs/settings.md)."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return {
        "bind": f"{host}:{settings.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": settings.threads,
        "timeout": 60,
        "graceful_timeout": 5,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "redis-dashboard",
        # gunicorn >= 24 opens a control socket in ~/.gunicorn shared by every instance;
        # several dashboards (tests, a demo beside a serve) must not fight over it.
        "control_socket_disable": True,
    }


def serve(factory: Callable[[], Any], settings: Settings, **options: Any) -> None:
    """Run the app made by ``factory`` until SIGINT/SIGTERM (``options`` override ours)."""
    Server(factory, {**gunicorn_options(settings), **options}).run()
