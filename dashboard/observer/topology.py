"""Following the server's shape: which errors mean "the topology moved", and how to
re-read it.

A cluster's slot map and a Sentinel's primary change under a running dashboard
(failover, resharding, restart). Errors that say so — a lost connection, a
timeout, CLUSTERDOWN, MOVED/ASK, TRYAGAIN, a slot not covered, a Sentinel that
names no primary — make the observer re-read the map before the next attempt.
Errors that do not — authentication, NOPERM, LOADING, a wrong type — are reported
as they are: re-reading the map would hide them (redis-py declined to catch every
ConnectionError for this reason).
"""

from __future__ import annotations

from typing import Any

import redis
from redis import exceptions as rx
from redis.sentinel import MasterNotFoundError, SentinelConnectionPool

from dashboard.connection import is_cluster

_TOPOLOGY_ERRORS: tuple[type[BaseException], ...] = (
    rx.ClusterDownError,
    rx.MovedError,
    rx.AskError,
    rx.TryAgainError,
    rx.SlotNotCoveredError,
    rx.ClusterError,
    MasterNotFoundError,
)
_NOT_TOPOLOGY: tuple[type[BaseException], ...] = (
    rx.AuthenticationError,
    rx.AuthorizationError,
    rx.NoPermissionError,
    rx.BusyLoadingError,
)


def means_topology_change(exc: BaseException) -> bool:
    """True when ``exc`` suggests the node map is out of date."""
    if isinstance(exc, _NOT_TOPOLOGY):
        return False
    if isinstance(exc, (*_TOPOLOGY_ERRORS, redis.ConnectionError, redis.TimeoutError, OSError)):
        return True
    if isinstance(exc, rx.RedisClusterException):
        return True
    text = str(exc)
    return text.startswith(("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "READONLY"))


def refresh_topology(client: Any) -> str | None:
    """Re-read the node map; returns what was done (None: nothing to do for this client).

    Cluster: the slot map from the start-up nodes and every node known (redis-py's
    ``nodes_manager.initialize``). Sentinel: ask the Sentinels for the primary; when
    it moved, idle connections are dropped and busy ones are not reused.
    """
    if is_cluster(client):
        client.nodes_manager.initialize()
        primaries = len(client.get_primaries())
        return f"cluster map re-read: {primaries} primaries"
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        before = pool.master_address
        host, port = pool.get_master_address()
        if before is not None and tuple(before) != (host, port):
            return f"Sentinel primary moved to {host}:{port}"
        return None
    return None
