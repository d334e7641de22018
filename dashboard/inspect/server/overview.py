"""Server facts: what INFO, CONFIG, SLOWLOG and ACL say about a Redis, degraded gracefully.

Every helper sends only read commands and never raises for a refused or missing
command: it returns an *envelope*, ``{"available": True, "data": ...}`` or
``{"available": False, "reason": "CONFIG GET refused by ACL (NOPERM)"}``. Managed
Redis services, ACL-restricted users and fakeredis all lack some commands, and a
dashboard panel should say so instead of failing. Only a server that cannot be
reached at all raises :class:`RedisUnavailable` (from :func:`server_overview`).

For a RedisCluster client the helpers run on every primary and return
``data = {"host:port": envelope}``; the overview aggregates over primaries and also
lists each node. Field names of the overview are documented in docs/overview.md.
"""

from __future__ import annotations

import re
from typing import Any

from redis.sentinel import SentinelConnectionPool

from dashboard.connection import is_cluster
from dashboard.inspect.errors import (
    CONNECTION_ERRORS,
    ERRORS,
    RedisUnavailable,
    attempt,
    available,
    describe_error,
    text,
    unavailable,
    unreachable,
)
from dashboard.inspect.nodes import node_clients
from dashboard.inspect.server.facts import config_get, parse_info
from dashboard.pool import borrow

# --- overview -------------------------------------------------------------------------
# Panel fields: name, key in the source, how a cluster combines its primaries, type, source
# ("info": INFO, "cluster": CLUSTER INFO, "config": CONFIG GET save). docs/overview.md
# documents every field; a test fails when one is missing there.
_Spec = tuple[str, str, str, type, str]
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_TABLE = {
    "server": """
        version redis_version same str info
        redis_mode redis_mode same str info
        os os same str info
        uptime_seconds uptime_in_seconds min int info
    """,
    "memory": """
        used used_memory sum int info
        peak used_memory_peak sum int info
        max maxmemory limit int info
        rss used_memory_rss sum int info
        policy maxmemory_policy same str info
        fragmentation_ratio mem_fragmentation_ratio max float info
    """,
    "clients": """
        connected connected_clients sum int info
        blocked blocked_clients sum int info
        maxclients maxclients sum int info
        rejected_connections rejected_connections sum int info
    """,
    "stats": """
        ops_per_sec instantaneous_ops_per_sec sum int info
        keyspace_hits keyspace_hits sum int info
        keyspace_misses keyspace_misses sum int info
        evicted_keys evicted_keys sum int info
        expired_keys expired_keys sum int info
        total_commands_processed total_commands_processed sum int info
        total_connections_received total_connections_received sum int info
    """,
    "persistence": """
        loading loading any bool info
        rdb_last_save_time rdb_last_save_time min int info
        rdb_changes_since_last_save rdb_changes_since_last_save sum int info
        rdb_bgsave_in_progress rdb_bgsave_in_progress any bool info
        rdb_last_bgsave_status rdb_last_bgsave_status worst str info
        aof_enabled aof_enabled all bool info
        aof_last_write_status aof_last_write_status worst str info
        save_schedule save same str config
    """,
    "replication": """
        role role same str info
        connected_replicas connected_slaves sum int info
        master_host master_host same str info
        master_port master_port same int info
        master_link_status master_link_status worst str info
        master_last_io_seconds_ago master_last_io_seconds_ago max int info
    """,
    "cluster": """
        enabled cluster_enabled all bool info
        state cluster_state worst str cluster
        slots_assigned cluster_slots_assigned max int cluster
        slots_ok cluster_slots_ok min int cluster
        slots_pfail cluster_slots_pfail max int cluster
        slots_fail cluster_slots_fail max int cluster
        known_nodes cluster_known_nodes max int cluster
        size cluster_size max int cluster
    """,
}
PANELS: dict[str, tuple[_Spec, ...]] = {
    panel: tuple(
        (field, key, how, _TYPES[kind], source)
        for field, key, how, kind, source in map(str.split, rows.strip().splitlines())
    )
    for panel, rows in _TABLE.items()
}
_GOOD = ("ok", "up")


def human_bytes(n: int | None) -> str | None:
    """``1536`` -> ``"1.5 KiB"`` (None stays None)."""
    if n is None:
        return None
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def human_duration(seconds: int | None) -> str | None:
    """``93784`` -> ``"1d 2h"``: the two largest units are enough for an uptime."""
    if seconds is None:
        return None
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def _convert(value: Any, kind: type) -> Any:
    if value is None or (value == "" and kind is not str):
        return None
    try:
        return bool(int(value)) if kind is bool else kind(value)
    except (TypeError, ValueError):
        return None


def _combine(how: str, kind: type, values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    if not values:
        return None
    if how in ("sum", "limit"):
        return 0 if how == "limit" and 0 in values else sum(values)
    if how in ("min", "max"):
        return min(values) if how == "min" else max(values)
    if how in ("any", "all"):
        return any(values) if how == "any" else all(values)
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return distinct[0]
    if how == "worst":
        return next(v for v in distinct if v not in _GOOD)
    return "mixed: " + ", ".join(map(str, distinct)) if kind is str else None


def _derive(name: str, panel: dict[str, Any], replicas: list[dict[str, Any]]) -> None:
    """Fields computed from others, after aggregation (so nodes and totals agree)."""
    if name == "server":
        panel["uptime_human"] = human_duration(panel["uptime_seconds"])
    elif name == "memory":
        for field in ("used", "peak", "max", "rss"):
            panel[f"{field}_human"] = human_bytes(panel[field])
        used, top = panel["used"], panel["max"]
        panel["used_percent_of_max"] = round(100 * used / top, 1) if used and top else None
    elif name == "stats":
        hits, misses = panel["keyspace_hits"], panel["keyspace_misses"]
        lookups = (hits or 0) + (misses or 0)
        panel["hit_ratio"] = round(hits / lookups, 4) if hits is not None and lookups else None
    elif name == "replication":
        panel["replicas"] = replicas


def _panel(name: str, sources: dict[str, dict[str, Any]], replicas: list[Any]) -> dict[str, Any]:
    main = sources["info"]
    panel: dict[str, Any] = {"available": main["available"], "reason": main.get("reason")}
    missing: dict[str, str] = {}
    for field, key, _how, kind, source in PANELS[name]:
        got = sources[source]
        panel[field] = _convert(got.get("data", {}).get(key), kind)
        if not got["available"] and main["available"]:
            missing[field] = got["reason"]
    _derive(name, panel, replicas if main["available"] else [])
    return {**panel, "unavailable": missing}


def _reasons(up: list[dict[str, Any]], panels: list[dict[str, Any]]) -> str | None:
    return None if up else "; ".join(sorted({str(p["reason"]) for p in panels}))


def _aggregate(name: str, panels: list[dict[str, Any]]) -> dict[str, Any]:
    """One panel for the whole cluster from the primaries' panels (rules in PANELS)."""
    up = [p for p in panels if p["available"]]
    panel: dict[str, Any] = {"available": bool(up), "reason": _reasons(up, panels)}
    for field, _key, how, kind, _source in PANELS[name]:
        panel[field] = _combine(how, kind, [p[field] for p in up])
    _derive(name, panel, [r for p in up for r in p.get("replicas", [])])
    missing = {f: why for p in up for f, why in p["unavailable"].items() if panel.get(f) is None}
    return {**panel, "unavailable": missing}


def _keyspace(conn: Any, main: dict[str, Any]) -> dict[str, Any]:
    dbs = [
        {"db": int(name[2:]), **{k: v.get(k) for k in ("keys", "expires", "avg_ttl")}}
        for name, v in main.get("data", {}).items()
        if re.fullmatch(r"db\d+", name) and isinstance(v, dict)
    ]
    panel = {"available": main["available"], "reason": main.get("reason"), "unavailable": {}}
    if not main["available"]:  # DBSIZE still counts the connected database
        size = attempt("DBSIZE", conn.dbsize)
        if size["available"]:
            db = int(conn.connection_pool.connection_kwargs.get("db") or 0)
            dbs = [{"db": db, "keys": size["data"], "expires": None, "avg_ttl": None}]
            reason = main["reason"]
            panel = {"available": True, "reason": f"only db {db} counted (DBSIZE); {reason}",
                     "unavailable": {"expires": reason, "avg_ttl_ms": reason}}  # fmt: skip
    return _merge_keyspace([{**panel, "dbs": dbs}])


def _merge_keyspace(panels: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum keys and expires per db over nodes; average TTL weighted by expiring keys."""
    up = [p for p in panels if p["available"]]
    merged: dict[int, dict[str, Any]] = {}
    for db in sorted((d for p in up for d in p["dbs"]), key=lambda d: d["db"]):
        into = merged.setdefault(db["db"], {"db": db["db"], "keys": 0, "expires": None, "w": 0})
        into["keys"] += db["keys"] or 0
        if db["expires"] is not None:
            into["expires"] = (into["expires"] or 0) + db["expires"]
            into["w"] += (db.get("avg_ttl", db.get("avg_ttl_ms")) or 0) * db["expires"]
    dbs = [
        {"db": d["db"], "keys": d["keys"], "expires": d["expires"],
         "avg_ttl_ms": d["w"] // d["expires"] if d["expires"] else None}
        for d in merged.values()
    ]  # fmt: skip
    return {
        "available": bool(up),
        "reason": panels[0]["reason"] if len(panels) == 1 else _reasons(up, panels),
        "dbs": dbs,
        "total_keys": sum(d["keys"] for d in dbs) if up else None,
        "total_expires": _combine("sum", int, [d["expires"] for d in dbs]),
        "unavailable": {f: why for p in up for f, why in p["unavailable"].items()},
    }


def _protocol(conn: Any) -> int:
    """The RESP version the client's pooled connections speak (redis-py's default varies)."""
    pool = conn.connection_pool
    connection = borrow(pool, "HELLO")
    try:
        return int(getattr(connection, "protocol", None) or 2)
    finally:
        pool.release(connection)


def _hello(conn: Any) -> dict[str, Any]:
    """HELLO names the server (fakeredis, KeyDB, ...) when INFO is missing.

    Always with the protocol version the connection already speaks: a bare HELLO is a
    switch to RESP2, which fakeredis applies to that pooled connection while redis-py
    keeps parsing RESP3, and every later reply on it is misread.
    """
    reply = conn.execute_command("HELLO", _protocol(conn))
    if isinstance(reply, list):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    return {text(k): text(v) for k, v in reply.items() if k not in (b"modules", "modules")}


def _node_overview(conn: Any) -> dict[str, Any]:
    """Everything about one node; RedisUnavailable if it cannot be reached at all."""
    try:
        main = available(parse_info(conn.info()))
    except CONNECTION_ERRORS as exc:
        raise unreachable(exc) from exc
    except ERRORS as exc:
        main = unavailable(describe_error("INFO", exc))
    data = main.get("data", {})
    sources = {"info": main, "config": config_get(conn, "save"), "cluster": available({})}
    if data.get("cluster_enabled") == 1:
        cmd = ("CLUSTER", "INFO")
        sources["cluster"] = attempt("CLUSTER INFO", lambda: parse_info(conn.execute_command(*cmd)))
    replicas = [
        {k: v for k, v in value.items() if k in ("ip", "port", "state", "offset", "lag")}
        for name, value in data.items()
        if re.fullmatch(r"slave\d+", name) and isinstance(value, dict)
    ]
    panels = {name: _panel(name, sources, replicas) for name in PANELS}
    panels["keyspace"] = _keyspace(conn, main)
    hello = {} if main["available"] else attempt("HELLO", _hello, conn).get("data", {})
    role = data.get("role") or hello.get("role")
    return {
        "version": data.get("redis_version") or hello.get("version"),
        "software": "redis" if data else hello.get("server"),
        "redis_mode": data.get("redis_mode") or hello.get("mode"),
        "role": {"master": "primary", "slave": "replica"}.get(role, role),
        "panels": panels,
    }


def _mode(client: Any, node: dict[str, Any]) -> str:
    if isinstance(getattr(client, "connection_pool", None), SentinelConnectionPool):
        return "sentinel-managed"
    if node["redis_mode"] in ("sentinel", "cluster"):
        return node["redis_mode"]
    if node["role"] == "replica":
        return "replica"
    return "standalone" if node["redis_mode"] or node["role"] else "unknown"


def _node_summary(address: str, role: str, node: dict[str, Any] | None, why: str | None) -> dict:
    p = node["panels"] if node else None
    pick = (lambda panel, field: p[panel][field]) if p else (lambda panel, field: None)
    return {
        "address": address,
        "role": role,
        "reachable": node is not None,
        "available": bool(p and p["server"]["available"]),
        "reason": why if node is None else p["server"]["reason"],
        "version": node and node["version"],
        "uptime_seconds": pick("server", "uptime_seconds"),
        "used_memory": pick("memory", "used"),
        "used_memory_human": pick("memory", "used_human"),
        "maxmemory": pick("memory", "max"),
        "fragmentation_ratio": pick("memory", "fragmentation_ratio"),
        "ops_per_sec": pick("stats", "ops_per_sec"),
        "hit_ratio": pick("stats", "hit_ratio"),
        "connected_clients": pick("clients", "connected"),
        "keys": pick("keyspace", "total_keys"),
        "master_link_status": pick("replication", "master_link_status"),
    }


def server_overview(client: Any) -> dict[str, Any]:
    """The overview page's facts; fields documented in docs/overview.md.

    Raises :class:`RedisUnavailable` only when no (primary) node can be reached.
    """
    if not is_cluster(client):
        node = _node_overview(client)
        top = {k: node[k] for k in ("version", "software", "role")}
        return {"mode": _mode(client, node), **top, "nodes": [], **node["panels"]}
    nodes = []
    for address, role, conn in node_clients(client, replicas=True):
        try:
            nodes.append((address, role, _node_overview(conn), None))
        except RedisUnavailable as exc:
            nodes.append((address, role, None, str(exc)))
    primaries = [n for _, role, n, _ in nodes if role == "primary" and n]
    if not primaries:
        reasons = "; ".join(sorted({str(why) for *_, why in nodes})) or "no primary known"
        raise RedisUnavailable(f"no cluster primary could be reached: {reasons}")
    panels = {name: _aggregate(name, [n["panels"][name] for n in primaries]) for name in PANELS}
    panels["keyspace"] = _merge_keyspace([n["panels"]["keyspace"] for n in primaries])
    total = sum(1 for _, role, *_ in nodes if role == "primary")
    for panel in panels.values():
        if len(primaries) < total and panel["available"] and not panel["reason"]:
            panel["reason"] = f"partial: {len(primaries)} of {total} primaries answered"
    return {
        "mode": "cluster",
        "version": _combine("same", str, [n["version"] for n in primaries]),
        "software": _combine("same", str, [n["software"] for n in primaries]),
        "role": None,
        "nodes": [_node_summary(*n) for n in nodes],
        **panels,
    }
