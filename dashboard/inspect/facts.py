"""Building blocks for server facts: error envelopes, INFO parsing, per-node clients,
and the read-only helpers the audit uses (INFO, CONFIG GET, SLOWLOG, commandstats, ACL).

Every helper sends only read commands and never raises for a refused or missing
command: it returns ``{"available": True, "data": ...}`` or ``{"available": False,
"reason": ...}``. For a cluster client they run on every primary and return
``data = {"host:port": envelope}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import NoPermissionError, RedisClusterException, RedisError

from dashboard.connection import is_cluster, mask_url

from .keyid import display_key

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
ERRORS = (RedisError, RedisClusterException, OSError)
SLOWLOG_MAX = 1024
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


class RedisUnavailable(RuntimeError):
    """The server could not be reached at all; the message is safe to show (no password)."""


def unavailable(reason: str) -> dict[str, Any]:
    """The marker a panel or field shows instead of data."""
    return {"available": False, "reason": reason}


def available(data: Any) -> dict[str, Any]:
    return {"available": True, "data": data}


def describe_error(what: str, exc: BaseException) -> str:
    """One human line for a failed command, with any URL masked."""
    message = _URL.sub(lambda m: mask_url(m.group(0)), str(exc)).strip() or type(exc).__name__
    if isinstance(exc, NoPermissionError) or message.upper().startswith("NOPERM"):
        return f"{what} refused by ACL (NOPERM)"
    lowered = message.lower()
    if "unknown command" in lowered or "unknown subcommand" in lowered:
        return f"{what} is not supported by this server (unknown command)"
    if isinstance(exc, redis.AuthenticationError):
        return f"{what} failed: authentication failed ({message})"
    if isinstance(exc, redis.BusyLoadingError):
        return f"{what} failed: the server is loading its dataset"
    if isinstance(exc, CONNECTION_ERRORS):
        return f"{what} failed: server unreachable ({message})"
    return f"{what} failed: {message}"


def unreachable(exc: BaseException) -> RedisUnavailable:
    """The error for a server that cannot be reached at all (message safe to show)."""
    reason = describe_error("connection", exc).removeprefix("connection failed: ")
    return RedisUnavailable(f"Redis is unavailable: {reason}")


def attempt(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``fn`` and wrap its result (or the reason it failed) in an envelope."""
    try:
        return available(fn(*args, **kwargs))
    except ERRORS as exc:
        return unavailable(describe_error(what, exc))
    except (ValueError, TypeError, KeyError) as exc:  # a server answering in an odd shape
        return unavailable(f"{what} gave a reply the dashboard cannot read ({exc!r:.200})")


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


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
        return {_text(k): _text(v) for k, v in raw.items()}
    parsed: dict[str, Any] = {}
    for line in _text(raw or "").splitlines():
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
        return {_text(k): _text(v) for k, v in c.config_get(pattern).items()}

    return _per_node(client, lambda c: attempt("CONFIG GET", get, c))


def _slow_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """redis-py parses SLOWLOG GET into dicts (RESP2 and RESP3); arguments joined by spaces."""
    return {
        "id": entry.get("id"),
        "start_time": entry.get("start_time"),
        "duration_us": entry.get("duration"),
        "command": display_key(entry.get("command") or b"", 512),
        "client_address": _text(entry.get("client_address")) or None,
        "client_name": _text(entry.get("client_name")) or None,
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
    return _per_node(client, lambda c: attempt("ACL WHOAMI", lambda: _text(c.acl_whoami())))


def _default_user(c: Any) -> dict[str, Any]:
    user = c.execute_command("ACL", "GETUSER", "default")
    if isinstance(user, list):  # RESP2 without a callback: flat name/value list
        user = dict(zip(user[::2], user[1::2], strict=False))
    flags = {_text(f) for f in (user.get(b"flags") or user.get("flags") or [])}
    enabled, nopass = "on" in flags, "nopass" in flags
    return {"enabled": enabled, "nopass": nopass, "open_to_anyone": enabled and nopass}


def acl_default_user(client: Any) -> dict[str, Any]:
    """Whether the ``default`` user is enabled without a password (anyone can connect)."""
    return _per_node(client, lambda c: attempt("ACL GETUSER", _default_user, c))
