"""Streams (``/streams``, ``/stream?k=<address>``): consumer-group lag, live.

The list refreshes every second (htmx fragment); each render samples every
group's lag into the process's bounded history, which draws the sparklines and
the "growing" flag. The detail page shows a bounded entries window (XRANGE with
COUNT, paged) and a group's pending entries (XPENDING with COUNT, paged).

Actions (claim, ack, delete a consumer) are POSTs with the CSRF token and a
confirmation step, and only with writes enabled; read-only they are refused.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, get_flashed_messages, redirect, request, url_for

from dashboard.connection import is_cluster
from dashboard.inspect.live.streams import (
    LagHistory,
    check_id,
    entries_window,
    key_client,
    pending_window,
    raw_name,
    stream_summary,
    totals,
)
from dashboard.keyid import UnknownKeyRef, display_key, resolve_address
from dashboard.web.pages import page, render, wants_json
from dashboard.web.picture import reading, version
from dashboard.web.state import state

bp = Blueprint("streams", __name__)
NAV = ("Streams", "streams.index")

SPARK_W, SPARK_H = 120, 24
MAX_ACTION_IDS = 100
MAX_MATCH = 1024  # a SCAN MATCH glob; long ones cost the server (and say nothing useful)
ACTIONS = {
    "ack": "XACK",
    "claim": "XCLAIM",
    "delconsumer": "XGROUP DELCONSUMER",
}


_NO_DISCOVERY = {
    "complete": False,
    "sweeping": True,
    "capped": False,
    "not_shown": 0,
    "examined": 0,
    "swept_age_s": None,
    "errors": {},
}


def history() -> LagHistory:
    """The observer's lag history (every refresh of /streams samples it)."""
    return state().observer.stream_history


def sparkline(samples: list[list[Any]]) -> dict[str, Any] | None:
    """Polyline points for lag over time (x by time, so gaps in sampling show)."""
    points = [(t, lag) for t, lag, _ in samples if lag is not None]
    if len(points) < 2:
        return None
    t0, t1 = points[0][0], points[-1][0]
    peak = max(lag for _, lag in points) or 1
    span = (t1 - t0) or 1
    coords = " ".join(
        f"{(t - t0) / span * SPARK_W:.1f},{SPARK_H - 1 - lag / peak * (SPARK_H - 2):.1f}"
        for t, lag in points
    )
    return {"points": coords, "width": SPARK_W, "height": SPARK_H, "peak": peak}


def _summary(key: bytes, node: str | None) -> dict[str, Any] | None:
    app_state = state()
    return stream_summary(
        key_client(app_state.client, key),
        key,
        node=node,
        history=history(),
        dead_ms=app_state.settings.consumer_dead_ms,
    )


@page(bp, "/streams")
def index() -> Any:
    match = request.args.get("match") or "*"
    if len(match) > MAX_MATCH:
        abort(400, description=f"match is longer than {MAX_MATCH} characters")
    found, freshness = reading("streams", match)
    streams = [] if found is None else found["streams"]
    data = {
        "match": match,
        "cluster": is_cluster(state().client) if found is None else found["cluster"],
        "discovery": _NO_DISCOVERY | {"match": match} if found is None else found["discovery"],
        "totals": totals(streams),
        "consumer_dead_ms": state().settings.consumer_dead_ms,
        "streams": streams,
        "freshness": freshness,
    }
    return render("streams/index.html", data, sparkline=sparkline, version=version(freshness))


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        abort(400, description=f"{name} must be an integer")


def _key(address: str | None) -> bytes:
    if not address:
        abort(400, description="which stream? pass ?k=<key address> (links on /streams have it)")
    try:
        return resolve_address(address)
    except UnknownKeyRef as exc:
        abort(404, description=str(exc))
    except ValueError as exc:
        abort(400, description=str(exc))


@page(bp, "/stream")
def detail() -> Any:
    address = request.args.get("k")
    key = _key(address)
    summary = _summary(key, None)
    if summary is None:
        abort(404, description=f"no stream at key {display_key(key)!r} (deleted, or never made)")
    if summary["error"]:
        abort(400, description=summary["error"])
    client = key_client(state().client, key)
    try:
        entries = entries_window(
            client,
            key,
            start=request.args.get("start") or None,
            order=request.args.get("order", "asc"),
            limit=_int_arg("limit", 50),
        )
        group_names = [g["name"] for g in summary["groups"]]
        group = request.args.get("group") or (group_names[0] if group_names else None)
        pending = None
        if group is not None:
            if group not in group_names:
                abort(404, description=f"stream {summary['key']!r} has no group {group!r}")
            consumer = request.args.get("consumer") or None
            pending = pending_window(
                client,
                key,
                raw_name(group),
                start=request.args.get("pstart") or None,
                consumer=None if consumer is None else raw_name(consumer),
                limit=_int_arg("plimit", 50),
            )
    except ValueError as exc:
        abort(400, description=str(exc))
    data = {
        "stream": summary,
        "entries": entries,
        "group": group,
        "pending": pending,
        "allow_writes": state().settings.allow_writes,
        "messages": [] if wants_json() else get_flashed_messages(),
    }
    return render("streams/detail.html", data, sparkline=sparkline, address=address)


# --- actions -------------------------------------------------------------------------------


def _action_request() -> dict[str, Any]:
    form = request.form
    action = form.get("action", "")
    if action not in ACTIONS:
        abort(400, description=f"action must be one of {', '.join(ACTIONS)}")
    address = form.get("k", "")
    key = _key(address)
    group = form.get("group", "")
    if not group:
        abort(400, description="which consumer group? (group)")
    ids = form.getlist("ids")
    if action in ("ack", "claim"):
        if not ids:
            abort(400, description="select at least one pending entry (ids)")
        if len(ids) > MAX_ACTION_IDS:
            abort(400, description=f"at most {MAX_ACTION_IDS} entries per action")
        try:
            ids = [check_id(i, "entry id") for i in ids]
        except ValueError as exc:
            abort(400, description=str(exc))
        if any(i.startswith("(") for i in ids):
            abort(400, description="entry ids must be exact ids")
    consumer = form.get("consumer", "").strip()
    if action in ("claim", "delconsumer") and not consumer:
        abort(400, description="which consumer? (consumer)")
    try:
        min_idle_ms = int(form.get("min_idle_ms") or 0)
    except ValueError:
        abort(400, description="min_idle_ms must be an integer")
    return {
        "action": action,
        "k": address,
        "key": key,
        "stream": display_key(key),
        "group": group,
        "ids": ids if action != "delconsumer" else [],
        "consumer": consumer,
        "min_idle_ms": max(0, min_idle_ms),
    }


def _describe(req: dict[str, Any]) -> str:
    n = len(req["ids"])
    if req["action"] == "ack":
        return (
            f"XACK {n} entries in group {req['group']!r}: they leave the pending list and "
            "will never be delivered again, whether or not they were processed."
        )
    if req["action"] == "claim":
        return (
            f"XCLAIM {n} pending entries of group {req['group']!r} to consumer "
            f"{req['consumer']!r} (only those idle at least {req['min_idle_ms']} ms). JUSTID: "
            "their delivery count stays; that consumer gets them when it reads its own "
            "pending entries (XREADGROUP with id 0) and must ack them."
        )
    return (
        f"XGROUP DELCONSUMER {req['consumer']!r} from group {req['group']!r}: its pending "
        "entries are dropped from the pending list and will not be redelivered "
        "(claim them to another consumer first)."
    )


def _perform(req: dict[str, Any]) -> str:
    client = key_client(state().client, req["key"])
    key, group = req["key"], raw_name(req["group"])
    if req["action"] == "ack":
        done = client.xack(key, group, *req["ids"])
        return f"acknowledged {done} of {len(req['ids'])} entries"
    if req["action"] == "claim":
        claimed = client.xclaim(
            key, group, raw_name(req["consumer"]), req["min_idle_ms"], req["ids"], justid=True
        )
        return f"claimed {len(claimed)} of {len(req['ids'])} entries to {req['consumer']}"
    dropped = client.xgroup_delconsumer(key, group, raw_name(req["consumer"]))
    return f"deleted consumer {req['consumer']} ({dropped} pending entries dropped)"


@bp.post("/stream/action")
@bp.post("/stream/action.json", endpoint="action_json")
def action() -> Any:
    """Step 1 (no ``confirm=yes``): what would happen. Step 2: do it."""
    settings = state().settings
    if not settings.allow_writes:
        message = (
            "read-only mode: claiming, acking and deleting consumers change the inspected "
            "Redis; start the dashboard with --allow-writes (REDIS_DASHBOARD_ALLOW_WRITES=1)"
        )
        return render(
            "error.html",
            {"error": "Read-only mode", "message": message},
            status=403,
            title="Read-only mode",
        )
    req = _action_request()
    summary = _describe(req)
    target = {k: v for k, v in req.items() if k != "key"}
    if request.form.get("confirm") != "yes":
        data = {"confirm_required": True, "summary": summary, "target": target}
        return render("streams/confirm.html", data)
    result = _perform(req)
    if wants_json():
        return render("streams/confirm.html", {"done": True, "result": result, "target": target})
    flash(result)
    return redirect(url_for("streams.detail", k=req["k"], group=req["group"]))
