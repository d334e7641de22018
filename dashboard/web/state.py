"""What one dashboard process holds: per target (one watched Redis) its settings, its
gated client and its observer; a :class:`Fleet` when it watches several."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_request_context, request

from dashboard import gate
from dashboard.config import Settings
from dashboard.connection import ConnectionOptions, connect
from dashboard.targets import Target

TARGET_ENVIRON = "dashboard.target"  # set by web.fleet.TargetPrefix from /t/<name>/...


@dataclass
class AppState:
    """Per-app singletons. The client and the observer are made on first use so a bad
    URL or a Redis that is down shows up as a message on the page, not as a crash at
    start-up."""

    settings: Settings
    target: Target | None = None
    label: str | None = None  # how the header names this Redis (default: its masked URL)
    extras: dict[str, Any] = field(default_factory=dict)
    _client: Any = None
    _observer: Any = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def client(self) -> Any:
        """The inspection client: every command passes the read-only gate."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    s = self.settings
                    url = s.url
                    options = ConnectionOptions(
                        pool_size=s.pool_connections,
                        socket_timeout=s.socket_timeout,
                        connect_timeout=s.connect_timeout,
                    )
                    client = connect(url, options)
                    self._client = gate.install(client, s.allow_writes)
        return self._client

    @property
    def observer(self) -> Any:
        """The one background reader of this Redis (started on first use)."""
        if self._observer is None:
            with self._lock:
                if self._observer is None:
                    from dashboard.observer import Observer

                    self._observer = Observer(
                        self.client,
                        self.settings,
                        name=self.name,
                        audit_config=self._audit_config(),
                    )
        return self._observer

    @property
    def name(self) -> str:
        return self.target.name if self.target is not None else "default"

    def _audit_config(self) -> Any:
        from dashboard.inspect.audit import load_config

        return load_config(self.settings.audit_config or None)

    def singleton(self, name: str, factory: Any) -> Any:
        """A per-app object made once (tail registries, ...)."""
        with self._lock:
            if name not in self.extras:
                self.extras[name] = factory()
            return self.extras[name]

    def close(self) -> None:
        """Stop the observer and close the client (tests, shutdown)."""
        with self._lock:
            if self._observer is not None:
                self._observer.close()
                self._observer = None
            if self._client is not None:
                self._client.close()
                self._client = None


class Fleet:
    """Every target of one dashboard, in the order given; the first is the default."""

    def __init__(self, states: list[AppState]) -> None:
        if not states:
            raise ValueError("a dashboard needs at least one target")
        self.states = {s.name: s for s in states}
        self.default = states[0]

    def __len__(self) -> int:
        return len(self.states)

    def get(self, name: str | None) -> AppState:
        return self.default if name is None else self.states[name]

    def close(self) -> None:
        for s in self.states.values():
            s.close()


def fleet() -> Fleet:
    """The current app's targets."""
    return current_app.extensions["redis_dashboard_fleet"]


def state() -> AppState:
    """The state of the target this request is for (``/t/<name>/...``; else the default)."""
    name = request.environ.get(TARGET_ENVIRON) if has_request_context() else None
    return fleet().get(name)
