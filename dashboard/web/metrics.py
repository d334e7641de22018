"""Prometheus metrics (``/metrics``), served from the observers' pictures: a scrape
sends nothing to Redis (docs/metrics.md). Auth as for every other route.

``/t/<name>/metrics`` is one target's; plain ``/metrics`` on a dashboard of several
targets is all of them, each series labelled with its ``target``.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from flask import Blueprint, Response, current_app, request

from dashboard.history import disabled_status
from dashboard.history.metrics import CONTENT_TYPE, exposition
from dashboard.web.state import TARGET_ENVIRON, AppState, fleet, state

bp = Blueprint("metrics", __name__)
_counting = threading.Lock()


def _status(target: AppState) -> dict[str, Any]:
    history = target.history
    return disabled_status() if history is None else history.status(counts=False)


def _target(target: AppState) -> tuple[str, Any, Any, dict[str, Any]]:
    """One target's inputs; a target whose client cannot even be made (a bad URL) is
    reported as down instead of failing the whole scrape."""
    try:
        return target.name, target.observer, target.settings, _status(target)
    except Exception as exc:
        return target.name, None, target.settings, {"enabled": False, "error": str(exc)}


@bp.get("/metrics")
def metrics() -> Any:
    if len(fleet()) > 1 and TARGET_ENVIRON not in request.environ:
        targets = list(fleet().states.values())
    else:
        targets = [state()]
    with _counting:
        counter = current_app.extensions.setdefault("redis_dashboard_scrapes", itertools.count(1))
        scrapes = next(counter)
    text = exposition([_target(t) for t in targets], scrapes=scrapes)
    return Response(text, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
