"""Compare two stored scans (``/compare?a=<scan id>&b=<scan id>``; default the last two).

Per namespace: the change in keys, bytes and TTL coverage, and whether it appeared or
vanished; audit findings that appeared or were resolved. Read from the target's state
store (docs/history.md), so the comparison survives restarts; nothing goes to Redis.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request

from dashboard.history import disabled_status, queries
from dashboard.history.compare import compare_stored
from dashboard.web.pages import page, render
from dashboard.web.state import state

bp = Blueprint("compare", __name__)
STATUSES = ("changed", "all", "grown", "shrunk", "appeared", "vanished", "unchanged")
PICKER_SCANS = 200
# The comparison's fields when there is none (``error`` says why): the twin keeps one
# shape, so a client reads ``totals`` or ``namespaces`` without checking first.
NO_DIFF: dict[str, Any] = {
    "a": None,
    "b": None,
    "totals": None,
    "namespaces": [],
    "appeared": [],
    "vanished": [],
    "findings": None,
    "warnings": [],
}


def _filter(rows: list[dict[str, Any]], status: str, depth: int | None) -> list[dict[str, Any]]:
    if depth is not None:
        rows = [r for r in rows if (r["depth"] or 1) <= depth]
    if status == "all":
        return rows
    if status == "changed":
        return [r for r in rows if r["status"] != "unchanged"]
    return [r for r in rows if r["status"] == status]


@page(bp, "/compare")
def index() -> Any:
    status = request.args.get("status", "changed")
    if status not in STATUSES:
        abort(400, description=f"status must be one of {', '.join(STATUSES)}")
    raw_depth = request.args.get("depth") or None
    try:
        depth = None if raw_depth is None else int(raw_depth)
    except ValueError:
        abort(400, description="depth must be an integer")
    a, b = request.args.get("a") or None, request.args.get("b") or None
    history = state().history
    data: dict[str, Any] = {"status": status, "depth": depth, "error": None, **NO_DIFF}
    if history is None:
        data.update(history=disabled_status(), scans=[], error=disabled_status()["reason"])
        return render("compare/index.html", data)
    data["history"] = {
        "enabled": True,
        "mode": history.store.mode,
        "warning": history.store.warning,
    }
    data["scans"] = [
        {k: s[k] for k in ("id", "finished_at", "keys", "bytes", "source")}
        for s in queries.scans(history.store, limit=PICKER_SCANS)
    ]
    diff, why = compare_stored(history.store, a, b)
    if diff is None:
        data["error"] = why
        return render("compare/index.html", data, status=404 if (a or b) else 200)
    diff["namespaces"] = _filter(diff["namespaces"], status, depth)
    data.update(diff)
    version = ("compare", history.generation, history.store.mode)
    return render("compare/index.html", data, version=version)
