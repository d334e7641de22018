"""What one dashboard process holds: its settings and its gated Redis client."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from dashboard import gate
from dashboard.config import Settings
from dashboard.connection import ConnectionOptions, connect


@dataclass
class AppState:
    """Per-app singletons. The client is made on first use so a bad URL or a Redis
    that is down shows up as a message on the page, not as a crash at start-up."""

    settings: Settings
    extras: dict[str, Any] = field(default_factory=dict)
    _client: Any = None
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

    def singleton(self, name: str, factory: Any) -> Any:
        """A per-app object made once (scan jobs, tail registries, ...)."""
        with self._lock:
            if name not in self.extras:
                self.extras[name] = factory()
            return self.extras[name]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def state() -> AppState:
    """The current app's state."""
    return current_app.extensions["redis_dashboard"]
