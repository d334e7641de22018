"""The nodes behind a client, and how to keep up when they change.

* :func:`node_clients`: one plain client per node (a standalone server, the
  primary a Sentinel names, every node of a cluster), for readers that visit nodes.
* :func:`slot_owners`: a cluster's slot map as the client knows it, per primary.
* :func:`pinned_client`: a client on one fixed node, with the same credentials,
  timeouts, client name and command gate as the client it derives from (a SCAN
  cursor is only valid on the server that gave it, so a scan must not follow a
  pool that may switch servers); ``readonly`` sends ``READONLY`` on each new
  connection, which a cluster replica needs before it serves keyed reads.
* :func:`refresh_topology`: re-learn the node map after a failover or a slot move.
* :func:`is_topology_error`: whether an error means "the map changed, refresh and
  retry" rather than "this will keep failing" (auth, ACL, LOADING are not topology:
  treating every ConnectionError as a topology change would hide them).
"""

from __future__ import annotations

from typing import Any

import redis
from redis import exceptions as rx
from redis.connection import Connection, ConnectionPool, SSLConnection
from redis.sentinel import (
    MasterNotFoundError,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SlaveNotFoundError,
)

from dashboard import gate
from dashboard.connection import is_cluster

PRIMARY, REPLICA = "primary", "replica"
# Error replies that mean a node is not (or no longer) the right one to ask.
_TOPOLOGY_REPLIES = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY")
# ConnectionError subclasses that are not about the network or the node map.
_NOT_TOPOLOGY = (
    rx.AuthenticationError,
    rx.AuthorizationError,
    rx.BusyLoadingError,
    rx.MaxConnectionsError,
)


def is_sentinel(client: Any) -> bool:
    """True for a client whose pool asks Sentinels for the primary."""
    return isinstance(getattr(client, "connection_pool", None), SentinelConnectionPool)


def address_of(client: Any) -> str:
    """``host:port`` (or the socket path) a plain client connects to; for a
    Sentinel-managed client, the primary the Sentinels name now."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        host, port = pool.get_master_address()
        return f"{host}:{port}"
    kw = pool.connection_kwargs
    return str(kw.get("path") or f"{kw.get('host', '?')}:{kw.get('port', '?')}")


def node_clients(client: Any, *, replicas: bool = False) -> list[tuple[str, str, Any]]:
    """``(address, role, plain client)`` per node: one for standalone, each node of a cluster.

    A Sentinel-managed client is returned as is (it follows failovers); its address
    is the primary the Sentinels name.
    """
    if not is_cluster(client):
        try:
            address = address_of(client)
        except (MasterNotFoundError, rx.ConnectionError, rx.TimeoutError):
            address = f"{client.connection_pool.service_name} (no primary known)"
        return [(address, PRIMARY, client)]
    nodes = [(n, PRIMARY) for n in client.get_primaries()]
    if replicas:
        nodes += [(n, REPLICA) for n in client.get_replicas()]
    return [(n.name, role, client.get_redis_connection(n)) for n, role in nodes]


def slot_owners(client: Any) -> dict[str, tuple[frozenset[int], list[str]]]:
    """``{primary address: (its slots, [replica addresses])}`` from a cluster client's map."""
    slots: dict[str, set[int]] = {}
    replicas: dict[str, list[str]] = {}
    for slot, nodes in list(client.nodes_manager.slots_cache.items()):
        if not nodes:
            continue
        primary = nodes[0].name
        slots.setdefault(primary, set()).add(slot)
        replicas.setdefault(primary, [n.name for n in nodes[1:]])
    return {name: (frozenset(slots[name]), replicas[name]) for name in slots}


def node_client(client: Any, address: str) -> Any:
    """The cluster client's own plain client for the node at ``address``."""
    host, _, port = address.rpartition(":")
    node = client.get_node(host=host, port=int(port))
    if node is None:
        raise rx.ConnectionError(f"node {address} is not in the cluster's node map")
    return client.get_redis_connection(node)


def _readonly(connection: Any) -> None:
    connection.on_connect()
    connection.send_command("READONLY")
    if redis.client.str_if_bytes(connection.read_response()) != "OK":
        raise rx.ConnectionError("READONLY failed")


def _plain_class(cls: type) -> type:
    """The connection class for a fixed node: a Sentinel-managed class looks the
    primary up on every connect, so it is swapped for the plain one (gate kept)."""
    if not issubclass(cls, SentinelManagedConnection):
        return cls
    base = SSLConnection if issubclass(cls, SSLConnection) else Connection
    allow = getattr(cls, "_allow_writes", None)
    return base if allow is None else gate.guarded(base, allow)


def pinned_client(template: Any, address: str, *, readonly: bool = False) -> redis.Redis:
    """A client on the node at ``address`` built like ``template`` (close it when done)."""
    pool = template.connection_pool
    dropped = ("connection_pool", "host", "port", "path", "redis_connect_func")
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in dropped}
    if readonly:
        kwargs["redis_connect_func"] = _readonly
    host, _, port = address.rpartition(":")
    client = redis.Redis(
        connection_pool=ConnectionPool(
            connection_class=_plain_class(pool.connection_class),
            host=host,
            port=int(port),
            max_connections=pool.max_connections,
            **kwargs,
        )
    )
    client.auto_close_connection_pool = True  # close() drops its connections (reusable after)
    return client


def replica_addresses(client: Any, primary: Any) -> list[str]:
    """Replicas of a standalone primary: from the Sentinels when the client has them,
    else as the primary reports them (INFO replication)."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        return [f"{h}:{p}" for h, p in pool.sentinel_manager.discover_slaves(pool.service_name)]
    info = primary.info("replication")
    count = int(info.get("connected_slaves", 0))
    found = [info.get(f"slave{i}") for i in range(count)]
    return [f"{r['ip']}:{r['port']}" for r in found if isinstance(r, dict)]


def refresh_topology(client: Any) -> bool:
    """Re-learn where the data lives; True when the primaries changed.

    Cluster: re-read the slot map (``CLUSTER SLOTS``) from the first known node that
    answers; right after a failover that node may not have heard of it yet, so keep
    calling it while the errors go on (the scan retries with backoff).
    Sentinel: ask the Sentinels for the primary again; idle connections to a former
    primary are dropped so the next command reaches the new one. Standalone: nothing.
    Raises the underlying error when no node (or Sentinel) answers.
    """
    if is_cluster(client):
        before = {name: slots for name, (slots, _) in slot_owners(client).items()}
        client.nodes_manager.initialize()
        after = {name: slots for name, (slots, _) in slot_owners(client).items()}
        return before != after
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        before = pool.master_address
        return pool.get_master_address() != before and before is not None
    return False


def is_topology_error(exc: BaseException) -> bool:
    """Errors after which refreshing the node map and retrying can help.

    Yes: the connection dropped or timed out, the Sentinels know no primary yet,
    ``MOVED``/``ASK``/``CLUSTERDOWN``/``TRYAGAIN``/``MASTERDOWN``/``READONLY`` replies,
    a cluster client that reached no node. No: authentication, ACL (``NOPERM``),
    ``LOADING``, a full connection pool, any other reply.
    """
    if isinstance(exc, _NOT_TOPOLOGY):
        return False
    if isinstance(exc, (MasterNotFoundError, SlaveNotFoundError)):
        return True
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError)):
        return True
    if isinstance(exc, (rx.AskError, rx.TryAgainError, rx.ClusterDownError, rx.ReadOnlyError)):
        return True
    if isinstance(exc, rx.RedisClusterException):  # no node answered; a slot without owner
        return "cannot be connected" in str(exc) or "not covered" in str(exc)
    if isinstance(exc, rx.ResponseError):
        return str(exc).split(" ", 1)[0].upper() in _TOPOLOGY_REPLIES
    return False


def is_transient_error(exc: BaseException) -> bool:
    """A node that will answer soon (``LOADING`` its dataset after a restart)."""
    return isinstance(exc, rx.BusyLoadingError)
