"""Building blocks for server facts: INFO parsing and the read-only helpers the audit
uses (INFO, CONFIG GET, SLOWLOG, commandstats, ACL).

Every helper sends only read commands and never raises for a refused or missing
command: it returns ``{"available": True, "data": ...}`` or ``{"available": False,
"reason": ...}``. For a cluster client they run on every primary and return
``data = {"host:port": envelope}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dashboard.connection import is_cluster
from dashboard.inspect.errors import attempt, available, text, unavailable
from dashboard.inspect.nodes import node_clients
from dashboard.keyid import display_key

SLOWLOG_MAX = 1024


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parse_info(raw: Any) -> dict[str, Any]:
    """INFO as a dict whether redis-py parsed it already or it is the raw text."""
    if isinstance(raw, dict):
        return {text(k): text(v) for k, v in raw.items()}
    parsed: dict[str, Any] = {}
    for line in text(raw or "").splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, _, value = line.partition(":")
        if "=" in value and not name.startswith(("redis_", "executable", "config_")):
            parsed[name] = {
                k: _number(v) for k, _, v in (item.partition("=") for item in value.split(","))
            }
        else:
            parsed[name] = _number(value)
    return parsed


def _per_node(client: Any, fn: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    if not is_cluster(client):
        return fn(client)
    results = {address: fn(conn) for address, _, conn in node_clients(client)}
    if any(r["available"] for r in results.values()):
        return available(results)
    return {**unavailable("; ".join(sorted({r["reason"] for r in results.values()}))), "data": {}}


def info(client: Any, section: str | None = None) -> dict[str, Any]:
    """INFO (or one section of it) as a dict of str keys."""
    args = () if section is None else (section,)
    what = "INFO" if section is None else f"INFO {section}"
    return _per_node(client, lambda c: attempt(what, lambda: parse_info(c.info(*args))))


def config_get(client: Any, pattern: str) -> dict[str, Any]:
    """CONFIG GET ``pattern`` as ``{name: value}`` strings."""

    def get(c: Any) -> dict[str, str]:
        return {text(k): text(v) for k, v in c.config_get(pattern).items()}

    return _per_node(client, lambda c: attempt("CONFIG GET", get, c))


def _slow_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """redis-py parses SLOWLOG GET into dicts (RESP2 and RESP3); arguments joined by spaces."""
    return {
        "id": entry.get("id"),
        "start_time": entry.get("start_time"),
        "duration_us": entry.get("duration"),
        "command": display_key(entry.get("command") or b"", 512),
        "client_address": text(entry.get("client_address")) or None,
        "client_name": text(entry.get("client_name")) or None,
    }


def slowlog(client: Any, n: int = 32) -> dict[str, Any]:
    """The ``n`` most recent SLOWLOG entries (bounded), newest first."""
    count = max(1, min(int(n), SLOWLOG_MAX))
    return _per_node(
        client,
        lambda c: attempt("SLOWLOG GET", lambda: [_slow_entry(e) for e in c.slowlog_get(count)]),
    )


def _commandstats(stats: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {
            "command": name.removeprefix("cmdstat_"),
            **{
                k: v.get(k)
                for k in ("calls", "usec", "usec_per_call", "rejected_calls", "failed_calls")
            },
        }
        for name, v in stats.items()
        if name.startswith("cmdstat_") and isinstance(v, dict)
    ]
    return sorted(rows, key=lambda row: -(row["usec"] or 0))


def commandstats(client: Any) -> dict[str, Any]:
    """INFO commandstats as rows sorted by total time spent, heaviest first."""
    return _per_node(
        client,
        lambda c: attempt(
            "INFO commandstats", lambda: _commandstats(parse_info(c.info("commandstats")))
        ),
    )


def acl_whoami(client: Any) -> dict[str, Any]:
    """The ACL user this dashboard is connected as."""
    return _per_node(client, lambda c: attempt("ACL WHOAMI", lambda: text(c.acl_whoami())))


def _default_user(c: Any) -> dict[str, Any]:
    user = c.execute_command("ACL", "GETUSER", "default")
    if isinstance(user, list):  # RESP2 without a callback: flat name/value list
        user = dict(zip(user[::2], user[1::2], strict=False))
    flags = {text(f) for f in (user.get(b"flags") or user.get("flags") or [])}
    enabled, nopass = "on" in flags, "nopass" in flags
    return {"enabled": enabled, "nopass": nopass, "open_to_anyone": enabled and nopass}


def acl_default_user(client: Any) -> dict[str, Any]:
    """Whether the ``default`` user is enabled without a password (anyone can connect)."""
    return _per_node(client, lambda c: attempt("ACL GETUSER", _default_user, c))
