"""The server's own tables: slow log, command statistics and latency, INFO by section.

Each ``read_*`` function is an observer reader (one call per refresh, whoever
watches): it asks every primary once, in one round trip per node where it can, and
returns plain data. A refused or missing command (ACL, a managed service, an old
server) is a ``reason`` in the data, never an exception; only a server that cannot
be reached raises (the observer keeps the last good reading then).

Arguments of slow commands are shown the way Redis keeps them (at most 32, each at
most 128 bytes, Redis itself redacts AUTH and friends), escaped as text
(:func:`dashboard.keyid.display_bytes`) and cut further for the page.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from dashboard.inspect.errors import CONNECTION_ERRORS, ERRORS, describe_error, text
from dashboard.inspect.nodes import node_clients
from dashboard.inspect.server.facts import parse_info
from dashboard.keyid import display_bytes
from dashboard.pool import borrow

SLOWLOG_ENTRIES = 128  # per node and refresh: SLOWLOG GET is O(N) in what it returns
ARGS_SHOWN = 16
ARG_BYTES = 96
INFO_EVERYTHING = "everything"


def raw_command(conn: Any, *args: Any) -> Any:
    """One command's reply without redis-py's response parsing (INFO's sections and
    SLOWLOG's argument lists are lost in the parsed forms). Gated like any other."""
    pool = conn.connection_pool
    connection = borrow(pool, str(args[0]))
    try:
        connection.send_command(*args)
        return connection.read_response()
    except CONNECTION_ERRORS:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def per_node(client: Any, what: str, read: Any) -> dict[str, Any]:
    """``read(conn)`` on every primary: ``{"nodes": {address: data}, "errors": {...}}``.
    Raises when no node could be reached (the reading is then stale, not empty)."""
    nodes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    lost: list[BaseException] = []
    for address, _, conn in node_clients(client):
        try:
            nodes[address] = read(conn)
        except CONNECTION_ERRORS as exc:
            lost.append(exc)
            errors[address] = describe_error(what, exc)
        except ERRORS as exc:
            errors[address] = describe_error(what, exc)
    if lost and not nodes and len(lost) == len(errors):
        raise lost[0]
    return {"nodes": nodes, "errors": errors}


# --- slow log -----------------------------------------------------------------------------


def _arg_list(args: list[Any]) -> tuple[str, list[dict[str, Any]], int]:
    parts = [bytes(a) if isinstance(a, bytes) else str(a).encode() for a in args]
    name = parts[0].decode("utf-8", "replace").upper() if parts else "?"
    shown = [display_bytes(a, ARG_BYTES) for a in parts[1 : ARGS_SHOWN + 1]]
    return name, shown, max(0, len(parts) - 1)


def _slow_entry(raw: list[Any], node: str) -> dict[str, Any]:
    """One raw SLOWLOG GET entry: id, time, microseconds, args, client address, name."""
    command, args, arg_count = _arg_list(list(raw[3]) if len(raw) > 3 else [])
    return {
        "id": int(raw[0]),
        "start_time": int(raw[1]),
        "duration_us": int(raw[2]),
        "command": command,
        "args": args,
        "arg_count": arg_count,
        "client_address": text(raw[4]) if len(raw) > 4 else None,
        "client_name": (text(raw[5]) or None) if len(raw) > 5 else None,
        "node": node,
    }


def _slowlog_node(conn: Any, count: int) -> dict[str, Any]:
    pipe = conn.pipeline(transaction=False)
    pipe.execute_command("SLOWLOG", "GET", count)
    pipe.execute_command("SLOWLOG", "LEN")
    pipe.execute_command("CONFIG", "GET", "slowlog-*")
    got, length, config = pipe.execute(raise_on_error=False)
    for reply in (got, length):
        if isinstance(reply, Exception):
            raise reply
    settings = {}
    if isinstance(config, list):
        settings = {text(k): text(v) for k, v in zip(config[::2], config[1::2], strict=False)}
    elif isinstance(config, dict):
        settings = {text(k): text(v) for k, v in config.items()}
    return {"entries": got, "length": int(length), "config": settings}


def read_slowlog(client: Any, count: int = SLOWLOG_ENTRIES) -> dict[str, Any]:
    """The newest ``count`` slow-log entries of every primary, newest first, plus a
    per-command summary (how often, total and worst time) of what is kept."""
    found = per_node(client, "SLOWLOG GET", lambda c: _slowlog_node(c, count))
    entries = [
        _slow_entry(list(raw), address)
        for address, node in found["nodes"].items()
        for raw in node["entries"]
    ]
    entries.sort(key=lambda e: (-e["start_time"], -e["id"]))
    summary: dict[str, dict[str, Any]] = {}
    for e in entries:
        row = summary.setdefault(
            e["command"], {"command": e["command"], "count": 0, "total_us": 0, "max_us": 0}
        )
        row["count"] += 1
        row["total_us"] += e["duration_us"]
        row["max_us"] = max(row["max_us"], e["duration_us"])
    nodes = found["nodes"].values()
    config = next((n["config"] for n in nodes if n["config"]), {})
    return {
        "entries": entries,
        "summary": sorted(summary.values(), key=lambda r: (-r["total_us"], r["command"])),
        "length": sum(n["length"] for n in nodes),
        "kept": len(entries),
        "per_node_limit": count,
        "threshold_us": _int(config.get("slowlog-log-slower-than")),
        "max_len": _int(config.get("slowlog-max-len")),
        "errors": found["errors"],
    }


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- command statistics -------------------------------------------------------------------


class CommandRates:
    """The previous reading's call counters, so a reading can say calls per second."""

    def __init__(self) -> None:
        self._last: tuple[float, dict[str, int]] | None = None
        self._lock = threading.Lock()

    def rates(self, now: float, calls: dict[str, int]) -> tuple[dict[str, float], float | None]:
        with self._lock:
            last, self._last = self._last, (now, dict(calls))
        if last is None or now <= last[0]:
            return {}, None
        span = now - last[0]
        return {name: max(0, n - last[1].get(name, 0)) / span for name, n in calls.items()}, span


_RATES: weakref.WeakKeyDictionary[Any, CommandRates] = weakref.WeakKeyDictionary()
_RATES_LOCK = threading.Lock()


def rates_for(owner: Any) -> CommandRates:
    """The rate keeper of one observer (kept as long as it lives)."""
    with _RATES_LOCK:
        keeper = _RATES.get(owner)
        if keeper is None:
            keeper = _RATES[owner] = CommandRates()
        return keeper


_STAT_FIELDS = ("calls", "usec", "rejected_calls", "failed_calls")


def _commands_node(conn: Any) -> dict[str, Any]:
    info = parse_info(raw_command(conn, "INFO", "commandstats"))
    try:
        latency = parse_info(raw_command(conn, "INFO", "latencystats"))
    except CONNECTION_ERRORS:
        raise
    except ERRORS:
        latency = {}  # before Redis 7: no latency percentiles
    try:
        events = conn.execute_command("LATENCY", "LATEST")
    except CONNECTION_ERRORS:
        raise
    except ERRORS as exc:
        events = describe_error("LATENCY LATEST", exc)
    return {"stats": info, "latency": latency, "events": events}


def _percentiles(latency: dict[str, Any], command: str) -> dict[str, float] | None:
    value = latency.get(f"latency_percentiles_usec_{command}")
    if not isinstance(value, dict):
        return None
    return {str(k): float(v) for k, v in value.items()}


def read_commands(client: Any, rates: CommandRates | None = None) -> dict[str, Any]:
    """INFO commandstats and latencystats (every primary, summed), calls per second
    since the previous reading, and LATENCY LATEST events."""
    found = per_node(client, "INFO commandstats", _commands_node)
    rows: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    monitor_off: list[str] = []
    for address, node in found["nodes"].items():
        for name, stats in node["stats"].items():
            if not (name.startswith("cmdstat_") and isinstance(stats, dict)):
                continue
            command = name.removeprefix("cmdstat_")
            row = rows.setdefault(
                command, {"command": command, **dict.fromkeys(_STAT_FIELDS, 0), "p": None}
            )
            for field in _STAT_FIELDS:
                row[field] += int(stats.get(field, 0))
            got = _percentiles(node["latency"], command)
            if got:  # a cluster: the worst node's percentile (an upper bound)
                row["p"] = {k: max(v, (row["p"] or {}).get(k, 0.0)) for k, v in got.items()}
        if isinstance(node["events"], str):
            monitor_off.append(f"{address}: {node['events']}")
        else:
            for raw in node["events"] or []:
                events.append(
                    {
                        "event": text(raw[0]),
                        "time": int(raw[1]),
                        "latest_ms": int(raw[2]),
                        "max_ms": int(raw[3]),
                        "node": address,
                    }
                )
    now = time.time()
    per_second, span = (rates or CommandRates()).rates(
        now, {c: r["calls"] for c, r in rows.items()}
    )
    out = []
    for command, row in rows.items():
        calls = row["calls"]
        p = row.pop("p") or {}
        out.append(
            {
                **row,
                "usec_per_call": round(row["usec"] / calls, 2) if calls else None,
                "p50_usec": p.get("p50"),
                "p99_usec": p.get("p99"),
                "p999_usec": p.get("p99.9"),
                "calls_per_sec": None if span is None else round(per_second.get(command, 0), 2),
            }
        )
    out.sort(key=lambda r: (-r["usec"], r["command"]))
    return {
        "commands": out,
        "totals": {
            "calls": sum(r["calls"] for r in out),
            "usec": sum(r["usec"] for r in out),
            "rejected_calls": sum(r["rejected_calls"] for r in out),
            "failed_calls": sum(r["failed_calls"] for r in out),
        },
        "rate_window_s": None if span is None else round(span, 3),
        "latency_events": sorted(events, key=lambda e: -e["time"]),
        "latency_unavailable": monitor_off,
        "percentiles": any(r["p50_usec"] is not None for r in out),
        "errors": found["errors"],
    }


# --- INFO by section ------------------------------------------------------------------------


def parse_sections(raw: Any) -> dict[str, dict[str, Any]]:
    """INFO text as ``{section: {field: value}}`` in the server's order."""
    sections: dict[str, dict[str, Any]] = {}
    current = sections.setdefault("unnamed", {})
    for line in text(raw or "").splitlines():
        if line.startswith("# "):
            current = sections.setdefault(line[2:].strip().lower(), {})
        elif line and ":" in line:
            current.update(parse_info(line))
    if not sections["unnamed"]:
        del sections["unnamed"]
    return sections


def _info_node(conn: Any) -> dict[str, Any]:
    sections = parse_sections(raw_command(conn, "INFO", INFO_EVERYTHING))
    try:
        reply = conn.config_get("databases")
        databases = _int(text(reply.get("databases") or reply.get(b"databases")))
    except CONNECTION_ERRORS:
        raise
    except ERRORS:
        databases = None
    return {"sections": sections, "databases": databases}


def read_info(client: Any) -> dict[str, Any]:
    """INFO everything of every primary, by section (and CONFIG GET databases)."""
    found = per_node(client, "INFO", _info_node)
    return {
        "nodes": {a: n["sections"] for a, n in found["nodes"].items()},
        "databases": next((n["databases"] for n in found["nodes"].values()), None),
        "errors": found["errors"],
    }
