"""The streams page's table: one row per consumer group, sorted and paged.

Plain data in, plain data out (the view parses the query and answers 400/404): the
rows come from the observer's streams reading, so sorting 2,000 groups or paging
through them never asks Redis anything.
"""

from __future__ import annotations

from typing import Any

PER_PAGE = 50
# sort name -> (row field, descending by default)
SORTS = {
    "lag": ("lag", True),
    "pending": ("pending", True),
    "oldest": ("oldest_pending_age_ms", True),
    "length": ("length", True),
    "last": ("last_age_ms", True),
    "memory": ("memory_bytes", True),
    "stream": ("stream", False),
}
_STREAM_FIELDS = ("length", "last_age_ms", "memory_bytes", "memory_unavailable", "trimmed")
_GROUP_FIELDS = (
    "lag",
    "lag_source",
    "lag_is_lower_bound",
    "pending",
    "oldest_pending_age_ms",
    "oldest_pending_idle_ms",
    "consumers",
    "dead_consumers",
    "lag_growing",
    "lag_history",
)
_NO_GROUP = dict.fromkeys(_GROUP_FIELDS) | {
    "dead_consumers": 0,
    "lag_growing": False,
    "lag_is_lower_bound": False,
    "lag_history": [],
}


def group_rows(streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per consumer group (a stream without groups is one row, group None)."""
    rows = []
    for s in streams:
        base = {
            "stream": s["key"],
            "id": s["id"],
            "node": s["node"],
            "error": s["error"],
            "groups_in_stream": len(s["groups"]),
            **{k: s.get(k) for k in _STREAM_FIELDS},
        }
        if not s["groups"]:
            rows.append({**base, "group": None, **_NO_GROUP})
        rows += [
            {**base, "group": g["name"], **{k: g[k] for k in _GROUP_FIELDS}} for g in s["groups"]
        ]
    return rows


def sort_rows(rows: list[dict[str, Any]], sort: str, direction: str | None) -> list[dict]:
    """Rows by ``sort`` (a name of :data:`SORTS`); unknown values (None) last either way,
    ties by stream and group. ``ValueError`` for an unknown sort or direction."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    if direction not in (None, "asc", "desc"):
        raise ValueError("dir must be asc or desc")
    field, descending = SORTS[sort]
    reverse = descending if direction is None else direction == "desc"
    ordered = sorted(rows, key=lambda r: (r["stream"], r["group"] or ""))
    known = [r for r in ordered if r[field] is not None]
    known.sort(key=lambda r: r[field], reverse=reverse)
    return known + [r for r in ordered if r[field] is None]


def page_of(rows: list[dict[str, Any]], number: int, per_page: int = PER_PAGE) -> tuple[list, dict]:
    """Page ``number`` (1-based) and where it sits; ``LookupError`` past the last page."""
    pages = max(1, -(-len(rows) // per_page))
    if not 1 <= number <= pages:
        raise LookupError(f"page must be between 1 and {pages}")
    start = (number - 1) * per_page
    return rows[start : start + per_page], {
        "page": number,
        "pages": pages,
        "rows": len(rows),
        "first": start + 1 if rows else 0,
        "last": min(start + per_page, len(rows)),
        "per_page": per_page,
    }
