"""``redis-dashboard demo``: a live dashboard in one command, nothing to set up.

1. A Redis: a private ``redis-server`` (temp dir, free port, no persistence, capped
   memory) when the binary is on PATH; otherwise fakeredis served over TCP from this
   process, labelled as such on every page (it has no INFO, MEMORY, OBJECT, CONFIG
   or SLOWLOG). With ``--url`` (and ``--allow-writes``) an existing Redis instead,
   written only under ``demo:`` names.
2. The dashboard under gunicorn, with writes enabled for the demo's own server. Its
   web process runs the shop and the traffic simulator (so the playground can steer
   them) and prints the URL once it listens.
3. Ctrl-C or SIGTERM: gunicorn stops its worker, then the Redis this command started
   is stopped and its temp dir removed. Nothing is left running.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from dashboard import __version__
from dashboard.config import Settings
from dashboard.connection import check_url, mask_url
from dashboard.demo.simulator import Knobs
from dashboard.demo.target import DemoTarget
from dashboard.embedded import EmbeddedRedis, RedisServerNotFound, free_port

EMBEDDED_ARGS = ("--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru")


class DemoError(RuntimeError):
    """The demo cannot start; the message is one line for the terminal."""


@dataclass
class Backend:
    """The Redis the demo runs on, and how to stop it.

    Only the process that started it stops it: gunicorn's workers are forked inside
    ``run()`` and leave it through the same ``finally`` when they exit.
    """

    target: DemoTarget
    _stop: list[Any] = field(default_factory=list)
    owner: int = field(default_factory=os.getpid)

    def stop(self) -> None:
        if os.getpid() != self.owner:
            return
        while self._stop:
            self._stop.pop()()


def start_backend(
    url: str | None = None, allow_writes: bool = False, *, binary: str | None = None
) -> Backend:
    """The demo's Redis: external (``url``), else redis-server, else fakeredis."""
    if url:
        check_url(url)
        if not allow_writes:
            raise DemoError(
                f"--url {mask_url(url)}: the demo writes demo data there (keys under demo:, "
                "limiters demo.*, locks {demo:*}); add --allow-writes to agree, or drop "
                "--url to run on a private server"
            )
        return Backend(DemoTarget(url, "external", writes=True))
    try:
        server = EmbeddedRedis(binary, extra_args=EMBEDDED_ARGS).start()
    except RedisServerNotFound:
        return fake_backend("redis-server is not on PATH")
    except (OSError, RuntimeError) as exc:
        return fake_backend(f"redis-server did not start ({exc})")
    pid = server.process.pid if server.process else None
    return Backend(DemoTarget(server.url, "redis-server", writes=True, pid=pid), [server.stop])


def fake_backend(why: str) -> Backend:
    """fakeredis served over TCP from this process (the stand-in for a missing redis-server)."""
    from fakeredis import TcpFakeServer

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis", server_version=(7, 2))
    thread = threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    note = (
        f"{why}: using fakeredis, an in-process stand-in. It has no INFO, MEMORY, OBJECT, "
        "CONFIG or SLOWLOG, so the panels and audit rules that need them say 'unavailable'. "
        "Install redis-server for the full demo."
    )
    url = f"redis://127.0.0.1:{port}/0"
    return Backend(DemoTarget(url, "fakeredis", writes=True, notes=(note,)), [stop])


def demo_app(settings: Settings, target: DemoTarget, knobs: Knobs | None, traffic: bool) -> Any:
    """The dashboard app of the demo (made in gunicorn's worker): shop and traffic on."""
    from dashboard.web import create_app
    from dashboard.web.playground import service

    app = create_app(settings)
    app.config["DEMO_TARGET"] = target
    app.config["DEMO_KNOBS"] = knobs
    if target.kind == "fakeredis":
        app.extensions["redis_dashboard"].label = f"fakeredis (stand-in) {mask_url(target.url)}"
    with app.app_context():
        playground = service()
        if traffic:
            playground.start_demo()
        else:
            playground.context().shop.start()
    return app


def demo_settings(base: Settings, target: DemoTarget) -> Settings:
    """The dashboard's settings: the demo's Redis, writes as the target allows."""
    return base.updated({"url": target.url, "allow_writes": target.writes})


def with_generated_login(settings: Settings) -> Settings:
    """Off loopback nobody gets in without a password: make one up and show it once."""
    return settings.updated({"username": "demo", "password": secrets.token_urlsafe(12)})


def banner(settings: Settings, target: DemoTarget) -> str:
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host  # noqa: S104
    base = f"http://{host}:{settings.port}"
    lines = [
        f"redis-dashboard {__version__} demo",
        f"  dashboard:  {base}/",
        f"  playground: {base}/playground",
        f"  redis:      {target.label}",
        *(f"  note:       {n}" for n in target.notes),
        *(
            [f"  login:      {settings.username} / {settings.password} (off loopback)"]
            if settings.password and not settings.loopback
            else []
        ),
        "  Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def run(base: Settings, url: str | None, knobs: Knobs | None, traffic: bool = True) -> None:
    """Start the Redis, serve the dashboard until SIGINT/SIGTERM, stop the Redis."""
    from dashboard.wsgi import serve

    backend = start_backend(url, allow_writes=base.allow_writes)
    try:
        target = backend.target
        settings = demo_settings(base, target)
        if not settings.loopback and not settings.username:
            if not target.owned:
                raise DemoError(
                    f"refusing to serve a Redis that is not the demo's own on {settings.host} "
                    "without authentication: set REDIS_DASHBOARD_USERNAME and "
                    "REDIS_DASHBOARD_PASSWORD (or bind to 127.0.0.1)"
                )
            settings = with_generated_login(settings)
        text = banner(settings, target)

        def when_ready(_server: Any) -> None:
            print(text, flush=True)

        serve(lambda: demo_app(settings, target, knobs, traffic), settings, when_ready=when_ready)
    finally:
        backend.stop()
