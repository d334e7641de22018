"""``?db=N``: the key browser, key detail and key actions in another logical database.

The observer (and so every page served from it) watches the database in the target's
URL. On-demand pages can look into another one: this module parses ``db`` and keeps
one gated client per database asked for (at most ``MAX_CLIENTS`` per target).
"""

from __future__ import annotations

import threading
from typing import Any

from flask import abort, request

from dashboard import gate
from dashboard.connection import ConnectionOptions, connect, is_cluster
from dashboard.inspect.server.databases import MAX_DB, current_db, db_url
from dashboard.web.state import AppState, state

MAX_CLIENTS = 16


class DbClients:
    """Gated clients for other databases of one target, made on first use."""

    def __init__(self) -> None:
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()

    def get(self, target: AppState, db: int) -> Any:
        with self._lock:
            client = self._clients.get(db)
            if client is None:
                if len(self._clients) >= MAX_CLIENTS:
                    _, old = self._clients.popitem()
                    old.close()
                s = target.settings
                options = ConnectionOptions(
                    pool_size=s.pool_connections,
                    socket_timeout=s.socket_timeout,
                    connect_timeout=s.connect_timeout,
                )
                client = gate.install(connect(db_url(s.url, db), options), s.allow_writes)
                self._clients[db] = client
            return client


def selected_db() -> int | None:
    """The ``db`` query argument (None: the target's own database); 400 when invalid."""
    raw = request.values.get("db", "")
    if raw == "":
        return None
    if not raw.isdigit() or int(raw) >= MAX_DB:
        abort(
            400, description=f"db must be a database number (0 .. {MAX_DB - 1}), got {raw[:20]!r}"
        )
    db = int(raw)
    client = state().client
    if is_cluster(client) and db != 0:
        abort(400, description="a Redis Cluster has only database 0")
    return None if db == current_db(client) else db


def own_db() -> int:
    """The database the target's URL names (the one the observer watches)."""
    return current_db(state().client)


def client_for(db: int | None) -> Any:
    """The target's client for database ``db`` (its own client for None)."""
    if db is None:
        return state().client
    return state().singleton("db_clients", DbClients).get(state(), db)
