"""Rules over server facts (INFO, SLOWLOG, ACL) and the keyspace's shape.

Each rule is a function ``(ctx) -> list[Finding]`` that raises :class:`Skip` when a
source it needs is refused or missing; refused nodes of a cluster are noted as
limitations (partial evidence) instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dashboard.connection import DEFAULT_CLIENT_NAME

from .facts import Facts
from .findings import Finding, Skip, node_subject
from .keyshape import Shape
from .thresholds import AuditConfig


@dataclass
class Context:
    """What server rules read, and where they record partial evidence."""

    config: AuditConfig
    facts: Facts
    shape: Shape | None = None
    scan_error: str | None = None
    scanned_db: int | None = None
    limitations: dict[str, list[str]] = field(default_factory=dict)

    def usable(self, rule: str, source: str) -> list[Any]:
        return self.facts.usable(source, self.limitations.setdefault(rule, []))

    def th(self, rule: str, name: str) -> Any:
        return self.config.get(rule, name)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def no_maxmemory(ctx: Context) -> list[Finding]:
    out = []
    for node in ctx.usable("no-maxmemory", "info-memory"):
        data = node.data
        if _int(data.get("maxmemory")) == 0:
            out.append(
                Finding(
                    "no-maxmemory",
                    node_subject("maxmemory", node.address),
                    "maxmemory is 0: Redis grows until the machine runs out of memory",
                    {
                        "maxmemory": 0,
                        "used_memory": data.get("used_memory"),
                        "used_memory_human": data.get("used_memory_human"),
                        "total_system_memory": data.get("total_system_memory"),
                        "maxmemory_policy": data.get("maxmemory_policy"),
                    },
                    subject_kind="config",
                )
            )
    return out


def _mismatch(policy: str, shape: Shape, ctx: Context) -> tuple[str, str] | None:
    rule = "eviction-policy-mismatch"
    keys = shape.keys
    if keys == 0:
        return None
    ttl_share = shape.with_ttl / keys
    cachey = max(ttl_share, shape.cache_named / keys) >= ctx.th(rule, "cache_share")
    big_enough = keys >= ctx.th(rule, "min_keys")
    if policy == "noeviction" and cachey and big_enough:
        return "noeviction-cache", (
            f"noeviction on a cache-shaped keyspace ({ttl_share:.0%} of keys have a TTL): "
            "at maxmemory every write fails instead of evicting"
        )
    if policy.startswith("allkeys-") and shape.must_keep:
        kinds = ", ".join(f"{n:,} {kind}" for kind, (n, _) in sorted(shape.must_keep.items()))
        return "allkeys-evicts-data", (
            f"{policy} may evict data that must stay ({kinds}): this instance is used "
            "for cache and data at once"
        )
    if policy.startswith("volatile-") and shape.with_ttl == 0 and big_enough:
        return "volatile-without-ttl", (
            f"{policy} evicts only keys with a TTL and none of {keys:,} keys has one: "
            "at maxmemory writes fail as with noeviction"
        )
    return None


def eviction_policy_mismatch(ctx: Context) -> list[Finding]:
    nodes = ctx.usable("eviction-policy-mismatch", "info-memory")
    if ctx.shape is None:
        raise Skip(ctx.scan_error or "the keyspace scan did not run")
    out = []
    for node in nodes:
        maxmemory, policy = _int(node.data.get("maxmemory")), node.data.get("maxmemory_policy")
        if not maxmemory or not policy:
            continue  # nothing is ever evicted: no-maxmemory says what to do
        found = _mismatch(str(policy), ctx.shape, ctx)
        if found:
            reason, message = found
            out.append(
                Finding(
                    "eviction-policy-mismatch",
                    node_subject("maxmemory-policy", node.address),
                    message,
                    {
                        "policy": policy,
                        "maxmemory": maxmemory,
                        "reason": reason,
                        "keyspace": ctx.shape.public(),
                    },
                    subject_kind="config",
                )
            )
    return out


def connection_pressure(ctx: Context) -> list[Finding]:
    rule = "connection-pressure"
    max_share, max_rejected = ctx.th(rule, "max_share"), ctx.th(rule, "max_rejected")
    out = []
    for node in ctx.usable(rule, "info-clients"):
        data = node.data
        connected, limit = _int(data.get("connected_clients")), _int(data.get("maxclients"))
        rejected = _int(data.get("rejected_connections"))
        share = connected / limit if limit else None
        if rejected > max_rejected or (share is not None and share >= max_share):
            parts = []
            if share is not None and share >= max_share:
                parts.append(f"{connected:,} of {limit:,} client slots in use ({share:.0%})")
            if rejected > max_rejected:
                parts.append(f"{rejected:,} connections rejected since the stats were reset")
            out.append(
                Finding(
                    rule,
                    node_subject("clients", node.address),
                    "; ".join(parts),
                    {
                        "connected_clients": connected,
                        "maxclients": limit,
                        "share": None if share is None else round(share, 4),
                        "rejected_connections": rejected,
                        "blocked_clients": _int(data.get("blocked_clients")),
                    },
                    subject_kind="server",
                )
            )
    return out


def logical_databases(ctx: Context) -> list[Finding]:
    rule = "logical-databases"
    out = []
    for node in ctx.usable(rule, "info-keyspace"):
        dbs = {
            name: _int(value.get("keys"))
            for name, value in node.data.items()
            if name.startswith("db") and isinstance(value, dict) and _int(value.get("keys"))
        }
        if len(dbs) > ctx.th(rule, "max_dbs"):
            out.append(
                Finding(
                    rule,
                    node_subject("databases", node.address),
                    f"{len(dbs)} logical databases hold keys ({', '.join(sorted(dbs))}); "
                    f"this audit scanned db {ctx.scanned_db}",
                    {"databases": dict(sorted(dbs.items())), "scanned_db": ctx.scanned_db},
                    subject_kind="server",
                )
            )
    return out


def _calls(ctx: Context, rule: str, commands: tuple[str, ...]) -> dict[str, list[Any]]:
    """Calls per command (summed over nodes) from INFO commandstats."""
    found: dict[str, list[Any]] = {}
    for node in ctx.usable(rule, "commandstats"):
        for row in node.data:
            if row["command"] in commands and _int(row.get("calls")):
                entry = found.setdefault(row["command"], [0, []])
                entry[0] += _int(row["calls"])
                if node.address:
                    entry[1].append(node.address)
    return found


def _slow_entries(ctx: Context, rule: str) -> list[dict[str, Any]]:
    return [
        {**entry, "node": node.address}
        for node in ctx.usable(rule, "slowlog")
        for entry in node.data
        if entry.get("client_name") != DEFAULT_CLIENT_NAME  # our own commands
    ]


def _first_word(entry: dict[str, Any]) -> str:
    return (entry.get("command") or "?").split(" ", 1)[0].upper()


def keys_command(ctx: Context) -> list[Finding]:
    rule = "keys-command"
    calls, reasons = 0, []
    try:
        calls = _calls(ctx, rule, ("keys",)).get("keys", [0])[0]
    except Skip as exc:
        reasons.append(str(exc))
    try:
        slow = [e for e in _slow_entries(ctx, rule) if _first_word(e) == "KEYS"]
    except Skip as exc:
        reasons.append(str(exc))
        slow = []
    if len(reasons) == 2:
        raise Skip("; ".join(reasons))
    ctx.limitations.setdefault(rule, []).extend(reasons)
    if max(calls, len(slow)) < max(ctx.th(rule, "min_calls"), 1):
        return []
    return [
        Finding(
            rule,
            "KEYS",
            "; ".join(
                part
                for part in (
                    calls and f"KEYS was called {calls:,} times since the stats were reset",
                    slow and f"{len(slow)} KEYS calls are in the SLOWLOG",
                )
                if part
            ),
            {
                "calls": calls,
                "slowlog_entries": len(slow),
                "slowest_us": max((e["duration_us"] or 0 for e in slow), default=None),
                "examples": [
                    {"command": e["command"], "client": e.get("client_address")} for e in slow[:3]
                ],
            },
            subject_kind="command",
            weight=calls,
        )
    ]


def flush_command(ctx: Context) -> list[Finding]:
    rule = "flush-command"
    minimum = max(ctx.th(rule, "min_calls"), 1)
    return [
        Finding(
            rule,
            command.upper(),
            f"{command.upper()} was called {calls:,} times since the stats were reset",
            {"calls": calls, **({"nodes": nodes} if nodes else {})},
            subject_kind="command",
            weight=calls,
        )
        for command, (calls, nodes) in sorted(_calls(ctx, rule, ("flushall", "flushdb")).items())
        if calls >= minimum
    ]


def slow_commands(ctx: Context) -> list[Finding]:
    rule = "slow-commands"
    floor = ctx.th(rule, "min_duration_us")
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in _slow_entries(ctx, rule):
        name = _first_word(entry)
        if name != "KEYS" and (entry.get("duration_us") or 0) >= floor:
            groups.setdefault(name, []).append(entry)
    out = []
    for name, entries in sorted(groups.items()):
        if len(entries) < max(ctx.th(rule, "min_entries"), 1):
            continue
        entries.sort(key=lambda e: -(e["duration_us"] or 0))
        slowest = entries[0]["duration_us"] or 0
        out.append(
            Finding(
                rule,
                name,
                f"{len(entries)} {name} calls in the SLOWLOG, slowest {slowest / 1000:.1f} ms",
                {
                    "entries": len(entries),
                    "slowest_us": slowest,
                    "total_us": sum(e["duration_us"] or 0 for e in entries),
                    "examples": [
                        {
                            "command": e["command"][:200],
                            "duration_us": e["duration_us"],
                            "start_time": e["start_time"],
                            "client": e.get("client_address"),
                        }
                        for e in entries[:3]
                    ],
                },
                subject_kind="command",
                weight=slowest,
            )
        )
    return out


def dynamic_lua(ctx: Context) -> list[Finding]:
    rule = "dynamic-lua"
    out = []
    for node in ctx.usable(rule, "info-memory"):
        if "number_of_cached_scripts" not in node.data:
            raise Skip("INFO memory has no number_of_cached_scripts (INFO refused or Redis < 7)")
        scripts = _int(node.data["number_of_cached_scripts"])
        if scripts > ctx.th(rule, "max_scripts"):
            out.append(
                Finding(
                    rule,
                    node_subject("script cache", node.address),
                    f"{scripts:,} Lua scripts are cached: scripts are built with values inside",
                    {
                        "number_of_cached_scripts": scripts,
                        "used_memory_scripts_eval": node.data.get("used_memory_scripts_eval"),
                    },
                    subject_kind="server",
                )
            )
    return out


def default_user_nopass(ctx: Context) -> list[Finding]:
    rule = "default-user-nopass"
    network = {n.address: n.data for n in ctx.facts.nodes("network") if n.available}
    out = []
    for node in ctx.usable(rule, "acl"):
        if node.data.get("open_to_anyone"):
            exposure = network.get(node.address) or {}
            out.append(
                Finding(
                    rule,
                    node_subject("default user", node.address),
                    "the default user is enabled and needs no password",
                    {
                        "enabled": node.data.get("enabled"),
                        "nopass": node.data.get("nopass"),
                        "bind": exposure.get("bind"),
                        "protected_mode": exposure.get("protected-mode"),
                    },
                    subject_kind="acl-user",
                )
            )
    return out


SERVER_RULES: dict[str, Callable[[Context], list[Finding]]] = {
    "keys-command": keys_command,
    "flush-command": flush_command,
    "no-maxmemory": no_maxmemory,
    "eviction-policy-mismatch": eviction_policy_mismatch,
    "connection-pressure": connection_pressure,
    "logical-databases": logical_databases,
    "slow-commands": slow_commands,
    "dynamic-lua": dynamic_lua,
    "default-user-nopass": default_user_nopass,
}
