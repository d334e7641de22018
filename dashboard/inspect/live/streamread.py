"""Read many streams in two round trips per node, not a dozen commands each.

The streams list is refreshed every second while watched, for up to ``max_streams``
streams. :func:`read_streams` pipelines it per node (in batches of ``BATCH``):

1. ``TIME``, then per stream ``XINFO STREAM``, ``XINFO GROUPS`` and ``MEMORY USAGE``;
2. per group ``XPENDING - + <sample>`` (the oldest pending entry, its idle time and the
   most deliveries among the sampled), ``XINFO CONSUMERS`` and, only where the server
   reports no lag, one bounded ``XRANGE`` to count it.

Results have the shape of :func:`dashboard.inspect.live.streams.stream_summary` (the
detail page still reads one stream on its own), built with the same lag rules as
:func:`dashboard.patterns.streams.stream_state`.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from dashboard.inspect.errors import describe_error
from dashboard.inspect.live.streams import LagHistory, key_client, summary_of
from dashboard.keyid import display_key
from dashboard.patterns.streams import (
    GroupState,
    StreamState,
    group_from_replies,
    group_lag,
    stream_base,
)

BATCH = 100  # streams per pipeline
PENDING_SAMPLE = 100
LAG_SCAN_LIMIT = 1000
MAX_GROUPS = 50
MAX_CONSUMERS = 100


def _sid(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _group_state(
    raw: dict[str, Any], base: dict[str, Any], now_ms: int, replies: dict[str, Any]
) -> GroupState:
    position = _sid(raw["last-delivered-id"]) or "0-0"
    lag = group_lag(raw.get("lag"), position, base)
    counted = replies.get("xrange")
    if lag[1] == "xrange":
        if isinstance(counted, list):
            lower = len(counted) >= LAG_SCAN_LIMIT
            lag = (len(counted), "xrange-lower-bound" if lower else "xrange", lower)
        else:
            lag = (None, "none", False)
    rows = replies.get("pending") if isinstance(replies.get("pending"), list) else []
    consumers = replies.get("consumers") if isinstance(replies.get("consumers"), list) else []
    oldest = _sid(rows[0]["message_id"]) if rows else None
    return group_from_replies(raw, base, now_ms, lag, oldest, rows, consumers, MAX_CONSUMERS)


def _batch(conn: Any, keys: list[tuple[bytes, str | None]]) -> list[tuple[bytes, Any]]:
    """``(key, summary parts or an error string or None when gone)`` for one batch."""
    pipe = conn.pipeline(transaction=False)
    pipe.time()
    for key, _ in keys:
        pipe.xinfo_stream(key).xinfo_groups(key).memory_usage(key)
    first = pipe.execute(raise_on_error=False)
    now = first.pop(0)
    if isinstance(now, ResponseError):  # TIME refused (ACL): no ages, so no summaries
        why = describe_error("the stream", now)
        return [
            (key, {"key": key, "node": node, "memory": None, "error": why}) for key, node in keys
        ]
    if isinstance(now, Exception):
        raise now
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    streams: list[dict[str, Any]] = []
    pipe = conn.pipeline(transaction=False)
    wanted: list[tuple[int, int, str]] = []  # (stream index, group index, what)
    for i, (key, node) in enumerate(keys):
        info, groups, memory = first[3 * i : 3 * i + 3]
        entry: dict[str, Any] = {"key": key, "node": node, "memory": memory, "groups": []}
        streams.append(entry)
        if isinstance(info, Exception):
            gone = "no such key" in str(info).lower()
            entry["error"] = None if gone else describe_error("the stream", info)
            entry["gone"] = gone
            continue
        entry["base"] = stream_base(display_key(key, limit=None), info, now_ms)
        groups = groups if isinstance(groups, list) else []
        entry["truncated"] = len(groups) > MAX_GROUPS
        for g, raw in enumerate(groups[:MAX_GROUPS]):
            entry["groups"].append((raw, {}))
            if int(raw.get("pending", 0)):
                pipe.xpending_range(key, raw["name"], "-", "+", PENDING_SAMPLE)
                wanted.append((i, g, "pending"))
            if int(raw.get("consumers", 0)):
                pipe.xinfo_consumers(key, raw["name"])
                wanted.append((i, g, "consumers"))
            position = _sid(raw["last-delivered-id"]) or "0-0"
            if group_lag(raw.get("lag"), position, entry["base"])[1] == "xrange":
                pipe.xrange(key, min=f"({position}", max="+", count=LAG_SCAN_LIMIT)
                wanted.append((i, g, "xrange"))
    replies = pipe.execute(raise_on_error=False) if wanted else []
    for (i, g, what), reply in zip(wanted, replies, strict=True):
        streams[i]["groups"][g][1][what] = reply
    out = []
    for entry in streams:
        if entry.get("gone"):
            continue
        if "base" not in entry:
            out.append((entry["key"], entry))
            continue
        base = entry["base"]
        groups = [_group_state(raw, base, now_ms, got) for raw, got in entry["groups"]]
        state = StreamState(**base, groups=groups, groups_truncated=entry["truncated"])
        out.append((entry["key"], {**entry, "state": state}))
    return out


def read_streams(
    client: Any, found: list[tuple[bytes, str | None]], *, history: LagHistory, dead_ms: int
) -> list[dict[str, Any]]:
    """Summaries of the ``found`` streams (``(key, node)``), pipelined per node."""
    by_node: dict[Any, list[tuple[bytes, str | None]]] = {}
    conns: dict[Any, Any] = {}
    for key, node in found:
        conn = key_client(client, key)
        by_node.setdefault(id(conn), []).append((key, node))
        conns[id(conn)] = conn
    summaries = []
    for ident, keys in by_node.items():
        for start in range(0, len(keys), BATCH):
            for key, got in _batch(conns[ident], keys[start : start + BATCH]):
                memory = got["memory"]
                memory_reason = (
                    describe_error("MEMORY USAGE", memory)
                    if isinstance(memory, Exception)
                    else None
                )
                summaries.append(
                    summary_of(
                        key,
                        got.get("state"),
                        node=got["node"],
                        history=history,
                        dead_ms=dead_ms,
                        error=got.get("error"),
                        memory=None if isinstance(memory, Exception) else memory,
                        memory_reason=memory_reason,
                    )
                )
    return summaries
