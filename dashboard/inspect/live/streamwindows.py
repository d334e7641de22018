"""The stream detail page's bounded windows: entries (XRANGE/XREVRANGE with COUNT) and
a group's pending entries (XPENDING's extended form with COUNT), paged by id so a page
never skips or repeats an entry; and the names actions need back as bytes.
"""

from __future__ import annotations

import re
from typing import Any

from dashboard.keyid import display_bytes, display_key, parse_display

ENTRY_ID = re.compile(r"\d{1,20}(-\d{1,20})?")
MAX_WINDOW = 500
FIELDS_SHOWN = 20


def raw_name(display: str) -> bytes:
    """The bytes behind a group or consumer name shown as display text (actions need
    the exact bytes back): :func:`dashboard.keyid.parse_display`."""
    return parse_display(display)


def check_id(value: str, what: str = "id") -> str:
    """A stream id (``ms`` or ``ms-seq``), optionally ``(``-prefixed (exclusive)."""
    bare = value[1:] if value.startswith("(") else value
    if not ENTRY_ID.fullmatch(bare):
        raise ValueError(f"{what} must be a stream id like 1700000000000-0, got {value[:40]!r}")
    return value


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
    if order == "asc":
        rows = client.xrange(key, min=start or "-", max="+", count=limit + 1)
    else:
        rows = client.xrevrange(key, max=start or "+", min="-", count=limit + 1)
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
    rows = client.xpending_range(
        key, group, start or "-", "+", limit + 1, consumername=consumer or None
    )
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
