"""Locks (``/locks``): every lock held now, live, with holder, lease left and contention.

Our own layout (with fencing tokens and contention counters) and string locks of
redis-py, python-redis-lock and user patterns. ``POST /locks/release`` (two steps,
writes enabled only) force-releases a lock, and only from the holder the user saw.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from dashboard.inspect.live.actions import prepare_release, release_lock
from dashboard.inspect.live.detectors import Detectors
from dashboard.inspect.live.state import KeySearch, lock_view
from dashboard.web.actions import two_step
from dashboard.web.pages import page, render
from dashboard.web.state import state

bp = Blueprint("locks", __name__)
NAV = ("Locks", "locks.index")


@page(bp, "/locks")
def index() -> Any:
    app_state = state()
    search = app_state.singleton("lock_search", KeySearch)
    detectors = Detectors.from_settings(app_state.settings)
    q = request.args.get("q", "")
    data = lock_view(app_state.client, app_state.settings, search, detectors, q)
    return render("locks/index.html", data)


@bp.post("/locks/release")
def release() -> Any:
    """Force-release a lock: confirm the holder first, then delete it if unchanged."""
    return two_step(
        "release a lock", prepare_release, release_lock, "locks/release.html", "locks.index"
    )
