"""The dashboard's connection pools: they wait for a free connection instead of failing.

redis-py's default pool raises "Too many connections" the moment every connection is
in use, and that error is a ``ConnectionError``: twenty viewers of one page on a busy
server read "Redis unreachable" while Redis was fine. These pools block (bounded by
``wait_s`` and by the request's deadline, :mod:`dashboard.deadline`) and, when no
connection came free in time, raise :class:`PoolExhausted`, which is *not* a
connection error: pages say the dashboard is busy, never that Redis is down.

Pages share one pool sized to the web threads plus the background readers
(``Settings.pool_connections``), so a full pool is rare and short.
"""

from __future__ import annotations

import queue
from typing import Any

import redis
from redis.connection import BlockingConnectionPool
from redis.exceptions import RedisError
from redis.sentinel import SentinelConnectionPool

from dashboard import deadline

WAIT_S = 5.0


class PoolExhausted(RedisError):
    """Every connection of the dashboard's own pool stayed busy: a local limit."""


class DashboardPool(BlockingConnectionPool):
    """A blocking pool whose wait never outlasts the request's deadline."""

    def __init__(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, timeout=WAIT_S if timeout is None else timeout, **kwargs)

    @property
    def timeout(self) -> float | None:  # type: ignore[override]
        """The wait for a free connection: ``wait_s``, capped by the deadline."""
        return deadline.capped(self.wait_s, deadline.remaining())

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.wait_s = value

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        waited = self.timeout
        try:
            return super().get_connection(*args, **kwargs)
        except redis.ConnectionError as exc:
            if not isinstance(exc.__context__, queue.Empty):
                raise
            raise PoolExhausted(
                f"all {self.max_connections} of the dashboard's connections to Redis are in "
                f"use and none came free within {waited or 0:.3g} s: the dashboard is busy, "
                "which says nothing about Redis; retry, or raise --pool-size"
            ) from None


class SentinelDashboardPool(SentinelConnectionPool, DashboardPool):
    """The same for the primary of a Sentinel service (Sentinel's address lookup first,
    then the blocking, deadline-aware wait)."""


def redis_client(pool: DashboardPool) -> redis.Redis:
    """A client owning ``pool`` (closed with it)."""
    client = redis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


def borrow(pool: Any, command: str) -> Any:
    """A connection from ``pool`` for a caller that sends on it directly (give it back
    with ``pool.release``). redis-py < 5.3 wants the command's name to pick one."""
    try:
        return pool.get_connection()
    except TypeError:
        return pool.get_connection(command)
