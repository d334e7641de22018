"""The nodes behind a client: one for a standalone server, every node of a cluster."""

from __future__ import annotations

from typing import Any

from dashboard.connection import is_cluster


def node_clients(client: Any, *, replicas: bool = False) -> list[tuple[str, str, Any]]:
    """``(address, role, plain client)`` per node: one for standalone, each node of a cluster."""
    if not is_cluster(client):
        kw = client.connection_pool.connection_kwargs
        address = kw.get("path") or f"{kw.get('host', '?')}:{kw.get('port', '?')}"
        return [(str(address), "primary", client)]
    nodes = [(n, "primary") for n in client.get_primaries()]
    if replicas:
        nodes += [(n, "replica") for n in client.get_replicas()]
    return [(n.name, role, client.get_redis_connection(n)) for n, role in nodes]
