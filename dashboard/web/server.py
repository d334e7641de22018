"""The server's own tables: ``/slowlog``, ``/clients``, ``/commands``, ``/info``.

Each is one observer reading (kinds ``slowlog``, ``clients``, ``commands``, ``info``,
read by :mod:`dashboard.inspect.server.tables` and ``clients`` every
``server_refresh_s`` while someone watches); the views only sort and slice it, and
each page is rendered once per reading. Fields: docs/server.md.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request

from dashboard.inspect.server.clients import DIMENSIONS
from dashboard.inspect.server.databases import current_db, databases
from dashboard.web.pages import page, render
from dashboard.web.picture import reading, version
from dashboard.web.state import state

bp = Blueprint("server", __name__)
NAV = ("Server", "server.info")
TABS = (("info", "INFO"), ("slowlog", "Slow log"), ("clients", "Clients"), ("commands", "Commands"))
COMMAND_SORTS = {
    "usec": lambda r: -(r["usec"] or 0),
    "calls": lambda r: -(r["calls"] or 0),
    "usec_per_call": lambda r: -(r["usec_per_call"] or 0),
    "p99": lambda r: -(r["p99_usec"] or 0),
    "rate": lambda r: -(r["calls_per_sec"] or 0),
    "failed": lambda r: -(r["failed_calls"] + r["rejected_calls"]),
    "command": lambda r: r["command"],
}


def _choice(name: str, allowed: Any, default: str) -> str:
    value = request.args.get(name) or default
    if value not in allowed:
        abort(400, description=f"{name} must be one of {', '.join(allowed)}")
    return value


def _page(kind: str, shape: Any, **context: Any) -> Any:
    data, freshness = reading(kind)
    shaped = shape(data) if data is not None else {"loading": True}
    shaped["freshness"] = freshness
    return render(f"server/{kind}.html", shaped, tabs=TABS, version=version(freshness), **context)


@page(bp, "/slowlog")
def slowlog() -> Any:
    """The newest slow-log entries of every primary, and which commands they are."""
    return _page("slowlog", lambda d: dict(d))


@page(bp, "/clients")
def clients() -> Any:
    """Connected clients grouped by ``by`` (name, addr, cmd, user, lib)."""
    by = _choice("by", DIMENSIONS, "name")

    def shape(d: dict[str, Any]) -> dict[str, Any]:
        return {
            "by": by,
            "totals": d["totals"],
            "groups": d["groups"][by],
            "idle": d["idle"],
            "buffers": d["buffers"],
            "errors": d["errors"],
        }

    return _page("clients", shape, dimensions=list(DIMENSIONS))


@page(bp, "/commands")
def commands() -> Any:
    """Command statistics (calls, time, failures), latency percentiles and events."""
    sort = _choice("sort", COMMAND_SORTS, "usec")

    def shape(d: dict[str, Any]) -> dict[str, Any]:
        rows = sorted(d["commands"], key=COMMAND_SORTS[sort])
        return {**d, "commands": rows, "sort": sort}

    return _page("commands", shape, sorts=list(COMMAND_SORTS))


@page(bp, "/info")
def info() -> Any:
    """INFO by section (``section`` picks one), and the databases it lists."""
    section = request.args.get("section", "")

    def shape(d: dict[str, Any]) -> dict[str, Any]:
        nodes = d["nodes"]
        names = list(dict.fromkeys(s for n in nodes.values() for s in n))
        if section and section not in names:
            abort(404, description=f"INFO has no section {section!r} (it has {', '.join(names)})")
        shown = {
            a: {s: v for s, v in n.items() if not section or s == section} for a, n in nodes.items()
        }
        first = next(iter(nodes.values()), {})
        current = current_db(state().client)
        return {
            "section": section or None,
            "sections": names,
            "nodes": shown,
            "databases": databases(first.get("keyspace", {}), d["databases"], current),
            "configured_databases": d["databases"],
            "errors": d["errors"],
        }

    return _page("info", shape)
