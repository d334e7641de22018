"""Where the scan reads each shard from, and what must hold still while it does.

A **shard** is a primary and the data it serves (in a cluster: its hash slots),
with its replicas. The scan reads a shard from one node, its **source**: the
primary, or with ``scan_from`` = ``replica``/``auto`` one of its replicas, so that
primaries serving traffic see no SCAN, EVALSHA_RO, TYPE or MEMORY from the scan
(they still answer INFO and, in a cluster, CLUSTER NODES: that is how a replica's
lag and the slot map are checked).

A SCAN cursor is only meaningful on the server that handed it out, and SCAN only
promises every key present for the whole walk, on that server. So a pass over a
source is trusted only if its :class:`Identity` at the end matches the one at the
start: same process (``run_id``), same role and primary, no full resync, and in a
cluster the same owner still serving every assigned slot, none of them migrating.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from dashboard.connection import is_cluster
from dashboard.inspect.errors import ERRORS
from dashboard.inspect.keyspace.scan import is_refusal
from dashboard.inspect.nodes import (
    PRIMARY,
    REPLICA,
    address_of,
    is_sentinel,
    node_client,
    pinned_client,
    replica_addresses,
    slot_owners,
)


class NoReplica(RuntimeError):
    """``scan_from=replica`` and the shard has no replica that answers."""


@dataclass(frozen=True)
class Shard:
    primary: str  # address
    slots: frozenset[int] | None  # None: not a cluster (the whole keyspace)
    replicas: tuple[str, ...] = ()  # known up front in a cluster; asked for otherwise


def plan(client: Any) -> list[Shard]:
    """The shards as the client knows them now (refresh the client first to re-learn)."""
    if is_cluster(client):
        owners = slot_owners(client)
        return [Shard(p, slots, tuple(reps)) for p, (slots, reps) in sorted(owners.items())]
    return [Shard(address_of(client), None)]


@dataclass
class Source:
    """The node a shard is read from, with its replication lag when it was chosen."""

    shard: Shard
    address: str
    role: str
    conn: Any
    reason: str
    lag_s: float | None = None
    lag_bytes: int | None = None
    owned: bool = field(default=False, repr=False)  # a client we made: close it

    def close(self) -> None:
        if self.owned:
            self.conn.close()

    def public(self) -> dict[str, Any]:
        return {
            "read_from": self.role,
            "primary": self.shard.primary,
            "lag_s": self.lag_s,
            "lag_bytes": self.lag_bytes,
            "source_reason": self.reason,
        }


def primary_client(client: Any, shard: Shard) -> tuple[Any, bool]:
    """``(client of the shard's primary, whether we made it)``. A Sentinel-managed
    client is pinned to the primary: its pool would follow a failover mid-walk."""
    if is_cluster(client):
        return node_client(client, shard.primary), False
    if is_sentinel(client):
        return pinned_client(client, shard.primary), True
    return client, False


def choose(client: Any, shard: Shard, scan_from: str, max_lag_s: float) -> Source:
    """The source of ``shard``: ``primary``; ``replica`` (the healthiest reachable one,
    lagging or not; :class:`NoReplica` when none answers); ``auto`` (a healthy replica:
    link up, not syncing, acknowledged within ``max_lag_s``; else the primary)."""
    conn, owned = primary_client(client, shard)
    if scan_from == "primary":
        return Source(shard, shard.primary, PRIMARY, conn, "scan_from=primary", owned=owned)
    try:
        best, why = _best_replica(client, shard, conn, max_lag_s, strict=scan_from == "replica")
    except BaseException:
        if owned:
            conn.close()
        raise
    if best is not None:
        if owned:
            conn.close()
        return best
    if scan_from == "replica":
        if owned:
            conn.close()
        raise NoReplica(f"scan_from=replica: no replica of {shard.primary} answers ({why})")
    return Source(shard, shard.primary, PRIMARY, conn, f"scan_from=auto: {why}", owned=owned)


def _best_replica(
    client: Any, shard: Shard, primary: Any, max_lag_s: float, *, strict: bool
) -> tuple[Source | None, str]:
    """The replica to read from, or ``(None, why not)``."""
    info = primary.info("replication")
    offset = int(info.get("master_repl_offset", 0))
    seen = {}  # as the primary sees its replicas: "ip:port" -> (state, offset, lag s)
    for i in range(int(info.get("connected_slaves", 0))):
        r = info.get(f"slave{i}")
        if isinstance(r, dict):
            seen[f"{r['ip']}:{r['port']}"] = (r.get("state"), int(r["offset"]), r.get("lag"))
    if shard.slots is not None:  # a cluster: the slot map lists the replicas
        addresses = list(shard.replicas)
    else:
        addresses = replica_addresses(client, primary)
    if not addresses:
        return None, "the shard has no replica"
    candidates: list[tuple[tuple[int, float, int], Source]] = []
    problems = []
    for address in addresses:
        try:
            conn = pinned_client(primary, address, readonly=shard.slots is not None)
        except (ValueError, TypeError) as exc:
            problems.append(f"{address}: {exc}")
            continue
        try:
            mine = conn.info("replication")
        except ERRORS as exc:
            conn.close()
            problems.append(f"{address} does not answer ({type(exc).__name__})")
            continue
        state, acked, lag_s = seen.get(address, (None, None, None))
        if acked is None:
            acked = int(mine.get("slave_repl_offset", 0))
        lag_bytes = max(0, offset - acked)
        trouble = _unhealthy(mine, state, lag_s, max_lag_s)
        if trouble and (not strict or mine.get("role") != "slave"):  # never a primary
            conn.close()
            problems.append(f"{address} {trouble}")
            continue
        reason = f"scan_from={'replica' if strict else 'auto'}: " + (trouble or "healthy replica")
        source = Source(shard, address, REPLICA, conn, reason, lag_s, lag_bytes, owned=True)
        rank = (1 if trouble else 0, lag_s if lag_s is not None else 1e9, lag_bytes)
        candidates.append((rank, source))
    if not candidates:
        return None, "; ".join(problems) or "no replica answers"
    candidates.sort(key=lambda item: item[0])
    for _, spare in candidates[1:]:
        spare.close()
    return candidates[0][1], ""


def _unhealthy(mine: dict[str, Any], state: Any, lag_s: Any, max_lag_s: float) -> str | None:
    if mine.get("role") != "slave":
        return f"is not a replica (role {mine.get('role')})"
    if mine.get("master_link_status") != "up":
        return "has its replication link down"
    if int(mine.get("master_sync_in_progress", 0)):
        return "is syncing"
    if state is not None and state != "online":
        return f"is {state} for its primary"
    if lag_s is not None and float(lag_s) > max_lag_s:
        return f"lags {lag_s} s (more than {max_lag_s:g} s)"
    return None


# --- identity --------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What must not change while one node is walked (see the module docstring)."""

    run_id: str | None
    role: str | None
    master: str | None  # a replica's primary, host:port
    link: str | None  # a replica's master_link_status
    loaded: int | None  # rdb_last_load_keys_loaded: moves when a replica full-resyncs
    owner: str | None = None  # cluster: node id of the primary serving the slots
    owned: frozenset[int] | None = None  # cluster: the slots it serves, in its own view
    moving: frozenset[int] = frozenset()  # cluster: its slots migrating or importing


def identity(client: Any, source: Source) -> Identity:
    """The source's identity now (INFO; in a cluster also the owner's CLUSTER NODES).

    What the server refuses (ACL, fakeredis without INFO) stays unknown (None) and is
    not checked; MOVED/ASK replies still catch slots that move.
    """
    info = _refusable(source.conn.info) or {}
    master = None
    if info.get("role") == "slave":
        master = f"{info.get('master_host')}:{info.get('master_port')}"
    base = Identity(
        run_id=info.get("run_id"),
        role=info.get("role"),
        master=master,
        link=info.get("master_link_status"),
        loaded=info.get("rdb_last_load_keys_loaded"),
    )
    if source.shard.slots is None:
        return base
    nodes = _refusable(_cluster_nodes, source.conn)
    if nodes is None:
        return base
    owner = nodes["myself"]
    if "master" not in owner["flags"]:  # a replica: slots and migrations are in its primary's view
        nodes = _refusable(_cluster_nodes, node_client(client, owner["master_address"]))
        if nodes is None:
            return base
        owner = nodes["myself"]
    return replace(base, owner=owner["id"], owned=owner["slots"], moving=owner["moving"])


def _refusable(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, or None when the server refuses or lacks the command."""
    try:
        return fn(*args)
    except ERRORS as exc:
        if is_refusal(exc):
            return None
        raise


def _cluster_nodes(conn: Any) -> dict[str, dict[str, Any]]:
    """CLUSTER NODES as ``{"myself": line, node id: line}``; a line: id, address, flags,
    master id, master_address, slots (frozenset), moving (frozenset)."""
    raw = conn.execute_command("CLUSTER", "NODES")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    lines: dict[str, dict[str, Any]] = {}
    for row in text.splitlines():
        fields = row.split()
        if len(fields) < 8:
            continue
        slots: set[int] = set()
        moving: set[int] = set()
        for spec in fields[8:]:
            if spec.startswith("["):  # [slot->-id] migrating, [slot-<-id] importing
                moving.add(int(spec[1:].split("-", 1)[0]))
            else:
                first, _, last = spec.partition("-")
                slots.update(range(int(first), int(last or first) + 1))
        line = {
            "id": fields[0],
            "address": fields[1].split("@", 1)[0],
            "flags": fields[2].split(","),
            "master": fields[3],
            "slots": frozenset(slots),
            "moving": frozenset(moving),
        }
        lines[line["id"]] = line
        if "myself" in line["flags"]:
            lines["myself"] = line
    me = lines["myself"]
    if me["master"] != "-" and me["master"] in lines:
        me["master_address"] = lines[me["master"]]["address"]
    return lines


def migrating(ident: Identity, assigned: frozenset[int] | None) -> str | None:
    """Why a pass over ``assigned`` cannot start (or end) now: slots mid-migration, or
    not (yet) served by the source's shard (keys arriving mid-walk may be missed)."""
    if assigned is None:
        return None
    if ident.moving & assigned:
        return f"{len(ident.moving & assigned)} slot(s) migrating; waiting for the move to finish"
    if ident.owned is not None and not assigned <= ident.owned:
        return f"{len(assigned - ident.owned)} slot(s) not served by this shard (yet)"
    return None


def changed(before: Identity, after: Identity, assigned: frozenset[int] | None) -> str | None:
    """Why a pass over a source cannot be trusted (None: it can)."""
    if before.run_id != after.run_id:
        return "the node restarted (new run_id)"
    if before.role != after.role:
        return f"the node changed role ({before.role} -> {after.role})"
    if before.master != after.master:
        return f"the replica now follows {after.master}"
    if after.role == "slave" and after.link != "up":
        return "the replica's link to its primary is down"
    if before.loaded != after.loaded:
        return "the replica reloaded its dataset (full resync)"
    if assigned is None:
        return None
    if before.owner != after.owner:
        return "the shard has a new primary"
    return migrating(after, assigned)


def close_quietly(source: Source | None) -> None:
    if source is not None:
        with contextlib.suppress(Exception):
            source.close()
