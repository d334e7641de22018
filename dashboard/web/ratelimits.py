"""Rate limits (``/ratelimits``): every limiter key found, live, grouped by limiter.

Our own layout and foreign ones (``limits``/Flask-Limiter, user patterns); the page
polls its fragment about once a second while there is something to show.
``POST /ratelimits/reset`` (two steps, writes enabled only) resets one identity.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from dashboard.inspect.live.actions import prepare_reset, reset_limiter
from dashboard.inspect.live.detectors import Detectors
from dashboard.inspect.live.state import KeySearch, ratelimit_view
from dashboard.web.actions import two_step
from dashboard.web.pages import page, render
from dashboard.web.state import state

bp = Blueprint("ratelimits", __name__)
NAV = ("Rate limits", "ratelimits.index")


@page(bp, "/ratelimits")
def index() -> Any:
    app_state = state()
    search = app_state.singleton("ratelimit_search", KeySearch)
    detectors = Detectors.from_settings(app_state.settings)
    q = request.args.get("q", "")
    data = ratelimit_view(app_state.client, app_state.settings, search, detectors, q)
    return render("ratelimits/index.html", data)


@bp.post("/ratelimits/reset")
def reset() -> Any:
    """Reset one identity's limiter: confirm first, then delete its key(s)."""
    return two_step(
        "reset a rate limiter",
        prepare_reset,
        reset_limiter,
        "ratelimits/reset.html",
        "ratelimits.index",
    )
