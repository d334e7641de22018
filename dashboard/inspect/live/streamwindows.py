"""Bounded windows of one stream for its detail page: entries (XRANGE/XREVRANGE with
COUNT) and a group's pending entries (XPENDING with COUNT), and the stream ids and
names that page takes from its URL.

An id Redis would reject (past 64 bits, non-ASCII digits, an interval that cannot
start) is bad input: it raises ``ValueError`` (a 400), never reaches Redis as a 502.
"""

from __future__ import annotations

import re
from typing import Any

from redis.exceptions import ResponseError

from dashboard.keyid import display_bytes, display_key

ENTRY_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
MAX_ID_PART = 2**64 - 1
MAX_WINDOW = 500
FIELDS_SHOWN = 20
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def raw_name(display: str) -> bytes:
    """The bytes behind a :func:`display_key` text shown in full (``limit=None``).

    Group and consumer names come to the pages as display text; actions need the
    exact bytes back. The escaping is unambiguous, so this undoes it.
    """
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(display):
        out += display[pos : match.start()].encode("utf-8")
        code = match.group(1)
        if code == "\\":
            out += b"\\"
        elif code[0] == "x":
            out.append(int(code[1:], 16))
        else:
            out += chr(int(code[1:], 16)).encode("utf-8")
        pos = match.end()
    out += display[pos:].encode("utf-8")
    return bytes(out)


def check_id(value: str, what: str = "id") -> str:
    """A stream id (``ms`` or ``ms-seq``), optionally ``(``-prefixed (exclusive).

    Both parts are unsigned 64-bit numbers written in ASCII digits: anything else
    (a 20-digit number past 2**64-1, Arabic-Indic digits) is refused here, as bad
    input, instead of being sent for Redis to reject.
    """
    bare = value[1:] if value.startswith("(") else value
    match = ENTRY_ID.fullmatch(bare)
    if not match:
        raise ValueError(f"{what} must be a stream id like 1700000000000-0, got {value[:40]!r}")
    if any(part is not None and int(part) > MAX_ID_PART for part in match.groups()):
        raise ValueError(
            f"{what} {value[:45]!r} is out of range: both parts of a stream id are at most "
            f"{MAX_ID_PART}"
        )
    return value


def _bad_range(what: str, exc: ResponseError) -> ValueError:
    """Redis refusing an id or an interval is bad input (400), not a server fault (502)."""
    return ValueError(f"{what}: Redis refused it ({exc})")


def _sid(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


def _entry(raw_id: Any, fields: dict[Any, Any] | None) -> dict[str, Any]:
    entry_id = _sid(raw_id)
    pairs = list((fields or {}).items())
    return {
        "id": entry_id,
        "time_ms": int(entry_id.partition("-")[0]),
        "fields": [
            {"name": display_bytes(bytes(n), 128), "value": display_bytes(bytes(v), 512)}
            for n, v in pairs[:FIELDS_SHOWN]
        ],
        "more_fields": max(0, len(pairs) - FIELDS_SHOWN),
    }


def entries_window(
    client: Any, key: bytes, *, start: str | None = None, order: str = "asc", limit: int = 50
) -> dict[str, Any]:
    """One page of entries (XRANGE/XREVRANGE with COUNT), and where the next page starts."""
    if order not in ("asc", "desc"):
        raise ValueError("order must be asc or desc")
    limit = max(1, min(limit, MAX_WINDOW))
    if start:
        check_id(start, "start")
    try:
        if order == "asc":
            rows = client.xrange(key, min=start or "-", max="+", count=limit + 1)
        else:
            rows = client.xrevrange(key, max=start or "+", min="-", count=limit + 1)
    except ResponseError as exc:
        if "id" not in str(exc).lower():
            raise
        raise _bad_range(f"start {start!r:.45}", exc) from exc
    more = len(rows) > limit
    items = [_entry(i, f) for i, f in rows[:limit]]
    return {
        "order": order,
        "start": start,
        "limit": limit,
        "items": items,
        "next": f"({items[-1]['id']}" if more and items else None,
    }


def pending_window(
    client: Any,
    key: bytes,
    group: bytes,
    *,
    start: str | None = None,
    consumer: bytes | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """One page of a group's pending entries (XPENDING extended form with COUNT)."""
    limit = max(1, min(limit, MAX_WINDOW))
    if start:
        check_id(start, "pending start")
    try:
        rows = client.xpending_range(
            key, group, start or "-", "+", limit + 1, consumername=consumer or None
        )
    except ResponseError as exc:
        if "id" not in str(exc).lower():
            raise
        raise _bad_range(f"pending start {start!r:.45}", exc) from exc
    items = [
        {
            "id": _sid(row["message_id"]),
            "consumer": display_key(row["consumer"], limit=None),
            "idle_ms": int(row["time_since_delivered"]),
            "deliveries": int(row["times_delivered"]),
        }
        for row in rows[:limit]
    ]
    return {
        "start": start,
        "limit": limit,
        "consumer": None if consumer is None else display_key(consumer, limit=None),
        "items": items,
        "next": f"({items[-1]['id']}" if len(rows) > limit and items else None,
    }
