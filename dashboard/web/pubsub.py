"""Pub/Sub (``/pubsub``): active channels, and live tails over Server-Sent Events.

``/pubsub/tail?channel=<name>`` (or ``?pattern=<glob>``) answers
``text/event-stream``: one subscription per request, on a connection of its own
(client name ``redis-dashboard-tail``, read-only gate). Events: ``hello``,
``messages`` (batches drained from the tail's bounded buffer), ``stats`` (every
second, also the heartbeat: a write to a browser that went away fails and ends
the subscription), ``end`` and ``failed``. Over the ``max_tails`` cap it answers 429.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request, url_for

from dashboard import gate
from dashboard.connection import ConnectionOptions, connect
from dashboard.inspect.live.tails import (
    PAYLOAD_LIMIT,
    Tail,
    TailRegistry,
    TooManyTails,
    message_dict,
)
from dashboard.web.pages import page, render
from dashboard.web.picture import reading, version
from dashboard.web.state import AppState, state

bp = Blueprint("pubsub", __name__)
NAV = ("Pub/Sub", "pubsub.index")

TAIL_CLIENT_NAME = "redis-dashboard-tail"
HEARTBEAT_S = 1.0  # a stats event at least this often: the write that notices a lost browser
SEND_GAP_S = 0.05  # at most ~20 message batches a second; a flood is batched, not spammed
MAX_NAME = 1024
_EMPTY_LISTING: dict[str, Any] = {
    "cluster": False,
    "channels": [],
    "channel_count": None,
    "truncated": False,
    "pattern_subscriptions": None,
    "channels_unavailable": "not read yet",
    "shard_channels": {"available": False, "reason": "not read yet"},
}


def _tail_source(app_state: AppState) -> Any:
    """A factory of the tails' own client: its pool is not the pages' pool, its
    connections carry a name of their own, and the gate keeps it read-only."""
    made: list[Any] = []
    lock = threading.Lock()

    def factory() -> Any:
        with lock:
            if not made:
                s = app_state.settings
                options = ConnectionOptions(
                    pool_size=s.max_tails + 2,
                    socket_timeout=s.socket_timeout,
                    connect_timeout=s.connect_timeout,
                    client_name=TAIL_CLIENT_NAME,
                )
                made.append(gate.install(connect(s.url, options), allow_writes=False))
            return made[0]

    return factory


def registry() -> TailRegistry:
    """This process's tails (one registry per app)."""
    app_state = state()
    s = app_state.settings
    return app_state.singleton(
        "pubsub.tails",
        lambda: TailRegistry(_tail_source(app_state), max_tails=s.max_tails, buffer=s.tail_buffer),
    )


def _target(required: bool) -> tuple[str | None, str | None]:
    channel = request.args.get("channel") or None
    pattern = request.args.get("pattern") or None
    if channel is not None and pattern is not None:
        abort(400, description="tail either a channel or a pattern, not both")
    if required and channel is None and pattern is None:
        abort(400, description="tail what? pass ?channel=<name> or ?pattern=<glob>")
    for name in (channel, pattern):
        if name is not None and len(name.encode("utf-8")) > MAX_NAME:
            abort(400, description=f"channel and pattern names are limited to {MAX_NAME} bytes")
    return channel, pattern


@page(bp, "/pubsub")
def index() -> Any:
    match = request.args.get("match") or "*"
    if len(match.encode("utf-8")) > MAX_NAME:
        abort(400, description=f"match is limited to {MAX_NAME} bytes")
    channel, pattern = _target(required=False)
    listing, freshness = reading("pubsub", match)
    data: dict[str, Any] = dict(listing or _EMPTY_LISTING, match=match, freshness=freshness)
    tails = registry().status()
    data["tails"] = tails
    data["tail"] = None
    if channel is not None or pattern is not None:
        full = tails["active"] >= tails["max_tails"]
        data["tail"] = {
            "channel": channel,
            "pattern": pattern,
            "stream": url_for("pubsub.tail", channel=channel, pattern=pattern),
            "refused": (
                f"{tails['active']} live tails are open, the most this dashboard allows "
                f"(max_tails={tails['max_tails']}): close one, or raise --max-tails"
                if full
                else None
            ),
        }
    tails_open = (tails["active"], data["tail"] and data["tail"]["refused"])
    return render(
        "pubsub/index.html",
        data,
        payload_limit=PAYLOAD_LIMIT,
        version=version(freshness, tails_open),
    )


@bp.get("/pubsub/tails.json")
def tails() -> Any:
    """The open tails of this process, with their counters (no subscription is made)."""
    return jsonify(registry().status())


@bp.get("/pubsub/tail")
def tail() -> Any:
    channel, pattern = _target(required=True)
    reg = registry()
    try:
        opened = reg.open(channel=channel, pattern=pattern)
    except TooManyTails as exc:
        if request.accept_mimetypes.best == "application/json":
            body = jsonify({"error": "Too many live tails", "message": str(exc)})
            return body, 429, {"Retry-After": "5"}
        return Response(f"{exc}\n", 429, {"Retry-After": "5"}, mimetype="text/plain")
    return Response(
        _events(reg, opened),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event; the JSON has no raw newlines, so one ``data:`` line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _events(reg: TailRegistry, tail: Tail) -> Iterator[str]:
    """The stream. Runs on the request's thread; ``finally`` frees the subscription
    when the server closes the response because a write failed (browser gone)."""
    try:
        yield "retry: 3000\n\n"
        yield sse(
            "hello",
            {
                "id": tail.id,
                "channel": tail.channel,
                "pattern": tail.pattern,
                "buffer": tail.buffer,
                "payload_limit": PAYLOAD_LIMIT,
            },
        )
        for _ in range(50):  # say "subscribed" as soon as it is, not a heartbeat later
            if tail.subscriber.wait_subscribed(0.1) or tail.failed:
                break
        next_stats = 0.0
        while tail.closed_reason is None:
            items = tail.take(timeout=HEARTBEAT_S) if next_stats else []
            if items:
                payload = {"messages": [message_dict(m) for m in items], "dropped": tail.dropped}
                yield sse("messages", payload)
            now = time.monotonic()
            if now >= next_stats or not items:
                yield sse("stats", tail.stats())
                next_stats = now + HEARTBEAT_S
            if tail.failed:
                yield sse("failed", {"reason": tail.stats()["error"]})
                return
            if items and len(items) < tail.buffer // 4:
                time.sleep(SEND_GAP_S)  # a trickle: batch it; a flood: drain at full speed
        yield sse("end", {"reason": tail.closed_reason})
    finally:
        reg.close(tail, "the browser went away")
