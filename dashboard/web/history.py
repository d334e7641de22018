"""History views: trends over time (``/history``, ``/history/keyspace``,
``/history/streams``) read from the target's state store (docs/history.md).

Each view builds one plain-data dict (its JSON twin) with the charts' data; the HTML
draws them as server-rendered SVG (:mod:`dashboard.web.charts`). The overview, keyspace
and streams pages include the same panels through their ``_trends.html`` partials,
which call :func:`trends` (a template global) and then refresh themselves with htmx
at the sampling interval. Nothing here talks to Redis.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, request

from dashboard.history import disabled_status, queries
from dashboard.history.trends import (
    RANGES,
    keyspace_trends,
    range_seconds,
    server_trends,
    stream_trends,
)
from dashboard.web.charts import plot
from dashboard.web.pages import page, render
from dashboard.web.state import state

bp = Blueprint("history", __name__)
NAV = ("History", "history.index")
SCANS_LISTED = 100


def _brief(history: Any) -> dict[str, Any]:
    """What every trend panel says about the store (on, where, in memory and why)."""
    if history is None:
        return disabled_status()
    store = history.store
    return {
        "enabled": True,
        "mode": store.mode,
        "path": store.path,
        "warning": store.warning,
        "interval_s": history.interval_s,
    }


def _window(default: str, value: str | None = None) -> tuple[str, float, float]:
    try:
        name, seconds = range_seconds(
            request.args.get("range") if value is None else value, default
        )
    except ValueError as exc:
        abort(400, description=str(exc))
    now = time.time()
    return name, now - seconds, now


def _base(history: Any, name: str, since: float, now: float) -> dict[str, Any]:
    return {
        "history": _brief(history),
        "range": name,
        "ranges": list(RANGES),
        "since": round(since, 3),
        "until": round(now, 3),
    }


def server_data(range_name: str | None = None) -> dict[str, Any]:
    """Server memory, ops/s, clients, hit ratio... over time (the overview's trends)."""
    history = state().history
    name, since, now = _window("24h", range_name)
    data = _base(history, name, since, now)
    data["charts"] = [] if history is None else server_trends(history.store, since, now)
    return data


def keyspace_data(ns: str | None, range_name: str | None = None) -> dict[str, Any]:
    """A namespace's keys, memory and TTL coverage per scan, and its top movers."""
    history = state().history
    name, since, now = _window("7d", range_name)
    data = _base(history, name, since, now)
    path = None
    if history is not None and ns:
        path = queries.namespace_path(history.store, ns)
    data["namespace"] = {"id": ns or None, "path": path if ns else None}
    if history is None:
        return data | {"scans": 0, "charts": [], "movers": []}
    return data | keyspace_trends(history.store, ns or None, since, now)


def streams_data(range_name: str | None = None) -> dict[str, Any]:
    """Lag and pending over time for the consumer groups lagging most."""
    history = state().history
    name, since, now = _window("24h", range_name)
    data = _base(history, name, since, now)
    if history is None:
        return data | {"charts": [], "groups": []}
    return data | stream_trends(history.store, since, now)


BUILDERS = {"server": server_data, "keyspace": keyspace_data, "streams": streams_data}


def trends(kind: str, **params: Any) -> dict[str, Any]:
    """The data of one trend panel, for the pages that include it (template global)."""
    params.setdefault("range_name", "")  # the panel's default range, not the page's ?range=
    return BUILDERS[kind](**params)


def _version(history: Any, *extra: Any) -> tuple[Any, ...]:
    if history is None:
        return ("history-off", *extra)
    return ("history", history.generation, history.store.mode, history.store.warning, *extra)


@bp.record_once
def _globals(setup: Any) -> None:
    setup.app.jinja_env.globals.update(history_trends=trends, history_plot=plot)


@page(bp, "/history")
def index() -> Any:
    """The store's status, the server's trends and the stored scans (to compare)."""
    history = state().history
    data = server_data()
    data["history"] = disabled_status() if history is None else history.status()
    data["scans"] = (
        []
        if history is None
        else [
            {k: v for k, v in s.items() if k not in ("row", "top_keys", "settings", "audit_rules")}
            for s in queries.scans(history.store, limit=SCANS_LISTED)
        ]
    )
    return render("history/index.html", data, version=_version(history))


@page(bp, "/history/keyspace")
def keyspace() -> Any:
    """``?ns=<namespace id>`` (as on /keyspace) and ``?range=``."""
    history = state().history
    data = keyspace_data(request.args.get("ns"))
    return render("history/keyspace.html", data, version=_version(history))


@page(bp, "/history/streams")
def streams() -> Any:
    history = state().history
    return render("history/streams.html", streams_data(), version=_version(history))
