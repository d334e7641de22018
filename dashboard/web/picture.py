"""How a view gets its data: from the observer's picture, never from Redis directly.

``?fresh=1`` (the pages' "Check again" buttons, or a script that just changed Redis)
asks for a reading made after the request arrived: an explicit request, joined with
any refresh already under way and skipped when the reading is younger than
``FRESH_ENOUGH_MS``, so it can never cost more than one read at a time.
"""

from __future__ import annotations

from typing import Any

from flask import request

from dashboard.web.state import state

FRESH_ENOUGH_MS = 250


def reading(kind: str, param: str | None = None) -> tuple[Any, dict[str, Any]]:
    """``(data, freshness)`` of the observer's section ``kind`` (``param``: a match glob)."""
    observer = state().observer
    if request.args.get("fresh") not in (None, "", "0"):
        wait = state().settings.first_wait_s
        return observer.refresh(kind, param, timeout=wait, younger_than_ms=FRESH_ENOUGH_MS)
    return observer.read(kind, param)


def version(freshness: dict[str, Any], *extra: Any) -> tuple[Any, ...]:
    """What identifies the reading a page shows, for the render cache: a new reading,
    a change of state (refreshing, stale, an error) or ``extra`` makes a new page."""
    return (
        freshness["section"],
        freshness.get("generation", freshness.get("scan_id")),
        freshness["state"],
        freshness["refreshing"],
        freshness["error"],
        *extra,
    )
