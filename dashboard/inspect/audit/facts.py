"""Server facts for the audit, gathered once, per node, and degraded gracefully.

Built on :mod:`dashboard.inspect.server.facts`: every source is a list of
:class:`NodeFact` (one per primary; address None on a standalone server), each
either available with data or unavailable with the reason (ACL refusal, unknown
command). Where a source has a usable fallback it is used (INFO memory refused:
CONFIG GET maxmemory*; no ACL on the server: CONFIG GET requirepass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dashboard.connection import is_cluster
from dashboard.inspect.errors import attempt
from dashboard.inspect.server import facts as server

from .findings import Skip

SLOWLOG_DEFAULT = 128


@dataclass
class NodeFact:
    address: str | None
    available: bool
    data: Any = None
    reason: str | None = None


@dataclass
class Facts:
    cluster: bool
    sources: dict[str, list[NodeFact]] = field(default_factory=dict)
    server_ms: int | None = None
    time_reason: str | None = None

    def nodes(self, source: str) -> list[NodeFact]:
        return self.sources.get(source, [])

    def usable(self, source: str, notes: list[str] | None = None) -> list[NodeFact]:
        """The nodes where ``source`` is available; :class:`Skip` when none is.

        Nodes that refused are described in ``notes`` (partial evidence).
        """
        nodes = self.nodes(source)
        good = [n for n in nodes if n.available]
        bad = sorted(
            {f"{n.address + ': ' if n.address else ''}{n.reason}" for n in nodes if not n.available}
        )
        if not good:
            raise Skip("; ".join(bad) or f"{source} was not gathered")
        if bad and notes is not None:
            notes.extend(bad)
        return good


def _split(envelope: dict[str, Any], cluster: bool) -> list[NodeFact]:
    if not cluster or not envelope["available"]:
        if envelope["available"]:
            return [NodeFact(None, True, envelope["data"])]
        return [NodeFact(None, False, reason=envelope["reason"])]
    return [
        NodeFact(address, env["available"], env.get("data"), env.get("reason"))
        for address, env in sorted(envelope["data"].items())
    ]


def _memory_fallback(client: Any, node: NodeFact, cluster: bool) -> NodeFact:
    """INFO memory refused: maxmemory and its policy from CONFIG GET, if allowed."""
    got = server.config_get(client, "maxmemory*")
    for fallback in _split(got, cluster):
        if fallback.address != node.address:
            continue
        if not fallback.available:
            return NodeFact(node.address, False, reason=f"{node.reason}; {fallback.reason}")
        data = fallback.data
        return NodeFact(
            node.address,
            True,
            {
                "maxmemory": int(data.get("maxmemory", 0) or 0),
                "maxmemory_policy": data.get("maxmemory-policy"),
                "source": "CONFIG GET",
            },
        )
    return node


def _acl_fallback(client: Any, node: NodeFact, cluster: bool) -> NodeFact:
    """A server without ACL (Redis < 6): the default user is open when requirepass is empty."""
    if "unknown command" not in (node.reason or ""):
        return node
    for fallback in _split(server.config_get(client, "requirepass"), cluster):
        if fallback.address == node.address:
            if not fallback.available:
                return NodeFact(node.address, False, reason=f"{node.reason}; {fallback.reason}")
            nopass = not fallback.data.get("requirepass")
            data = {"enabled": True, "nopass": nopass, "open_to_anyone": nopass}
            return NodeFact(node.address, True, {**data, "source": "CONFIG GET requirepass"})
    return node


def _merge(first: list[NodeFact], second: list[NodeFact]) -> list[NodeFact]:
    """INFO clients + INFO stats per node (both needed by connection-pressure)."""
    by_address = {n.address: n for n in second}
    out = []
    for node in first:
        other = by_address.get(node.address)
        if not node.available or other is None or not other.available:
            reason = node.reason or (other.reason if other else "no INFO stats")
            out.append(NodeFact(node.address, False, reason=reason))
        else:
            out.append(NodeFact(node.address, True, {**other.data, **node.data}))
    return out


def gather(client: Any, slowlog_entries: int = SLOWLOG_DEFAULT) -> Facts:
    """Every server fact the rules read; never raises for a refused command."""
    cluster = is_cluster(client)
    facts = Facts(cluster)
    src = facts.sources
    memory = _split(server.info(client, "memory"), cluster)
    src["info-memory"] = [
        n if n.available else _memory_fallback(client, n, cluster) for n in memory
    ]
    src["info-clients"] = _merge(
        _split(server.info(client, "clients"), cluster),
        _split(server.info(client, "stats"), cluster),
    )
    src["info-keyspace"] = _split(server.info(client, "keyspace"), cluster)
    src["commandstats"] = _split(server.commandstats(client), cluster)
    src["slowlog"] = _split(server.slowlog(client, slowlog_entries), cluster)
    src["acl"] = [
        n if n.available else _acl_fallback(client, n, cluster)
        for n in _split(server.acl_default_user(client), cluster)
    ]
    network = _split(server.config_get(client, "bind"), cluster)
    protected = _split(server.config_get(client, "protected-mode"), cluster)
    src["network"] = _merge(network, protected)
    now = attempt("TIME", client.time)
    if now["available"]:
        seconds, micros = now["data"]
        facts.server_ms = int(seconds) * 1000 + int(micros) // 1000
    else:
        facts.time_reason = now["reason"]
    return facts
