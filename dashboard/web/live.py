"""Rate limits (``/ratelimits``) and locks (``/locks``): the live key views.

One shape for both: the observer keeps the latest reading of every limiter or lock
key it found (ours, ``limits``/Flask-Limiter, redis-py, python-redis-lock, user
patterns) and refreshes it about once a second while someone watches; the page
shapes that reading (``?q=`` filters it) without another Redis call, and polls its
fragment while there is something to show. The one write action of each page
(reset an identity's limiter, force-release a lock) is two steps, writes enabled
only (:mod:`dashboard.web.actions`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, request

from dashboard.inspect.live.actions import (
    prepare_release,
    prepare_reset,
    release_lock,
    reset_limiter,
)
from dashboard.inspect.live.state import lock_view, ratelimit_view
from dashboard.web.actions import two_step
from dashboard.web.pages import page, render
from dashboard.web.picture import reading, version
from dashboard.web.state import state

EMPTY_READING: dict[str, Any] = {
    "entries": [],
    "search": {
        "patterns": [],
        "nodes": 0,
        "scan_calls": 0,
        "examined": 0,
        "complete": False,
        "passes": 0,
        "found": 0,
        "capped": False,
        "cap_reason": None,
    },
    "errors": [],
    "layouts": [],
}


@dataclass
class LiveView:
    """One live key page: its blueprint, menu entry, shaping function and action."""

    name: str
    label: str
    shape: Callable[[dict[str, Any], Any, str], dict[str, Any]]
    action: str
    what: str
    prepare: Callable[..., dict[str, Any]]
    perform: Callable[..., dict[str, Any]]
    bp: Blueprint = field(init=False)

    def __post_init__(self) -> None:
        self.bp = Blueprint(self.name, __name__)
        self.NAV = (self.label, f"{self.name}.index")
        page(self.bp, f"/{self.name}")(self.index)
        self.bp.add_url_rule(f"/{self.name}/{self.action}", self.action, self.act, methods=["POST"])

    def index(self) -> Any:
        data_read, freshness = reading(self.name)
        q = request.args.get("q", "")
        data = self.shape(data_read or EMPTY_READING, state().settings, q)
        data["freshness"] = freshness
        return render(f"{self.name}/index.html", data, version=version(freshness))

    def act(self) -> Any:
        """Confirm first, then act; the page's reading is refreshed after a change."""
        return two_step(
            self.what,
            self.prepare,
            self.perform,
            f"{self.name}/{self.action}.html",
            f"{self.name}.index",
            after=lambda: state().observer.section(self.name).request(),
        )


ratelimits = LiveView(
    "ratelimits",
    "Rate limits",
    ratelimit_view,
    "reset",
    "reset a rate limiter",
    prepare_reset,
    reset_limiter,
)
locks = LiveView(
    "locks", "Locks", lock_view, "release", "release a lock", prepare_release, release_lock
)
