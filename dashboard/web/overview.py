"""Server overview (``/overview``) and the health check (``/healthz``)."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Blueprint, jsonify, request

from dashboard.connection import ConnectionConfigError, mask_url
from dashboard.deadline import deadline
from dashboard.pool import PoolExhausted
from dashboard.web.pages import page, render
from dashboard.web.picture import reading, version
from dashboard.web.state import TARGET_ENVIRON, fleet, state

log = logging.getLogger(__name__)
bp = Blueprint("overview", __name__)
HEALTHZ_TIMEOUT_S = 2.0  # a health check answers quickly, whatever Redis does
NAV = ("Overview", "overview.index")

# Panels in page order with their titles; fields come from docs/overview.md.
PANELS = (
    ("server", "Server"),
    ("memory", "Memory"),
    ("clients", "Clients"),
    ("stats", "Traffic"),
    ("keyspace", "Keyspace"),
    ("persistence", "Persistence"),
    ("replication", "Replication"),
    ("cluster", "Cluster"),
)


# Fields the panels do not list (shown elsewhere or as their *_human twin).
HIDDEN = frozenset({"available", "reason", "unavailable", "dbs", "replicas", "uptime_seconds"})


@page(bp, "/")
def root() -> Any:
    """The overview, at the root too (no redirect: a wall screen polls ``/`` as is); the
    fleet page when the dashboard watches several targets and none is in the URL."""
    if len(fleet()) > 1 and TARGET_ENVIRON not in request.environ:
        from dashboard.web.fleet import index as fleet_index

        return fleet_index()
    return index()


@page(bp, "/overview")
def index() -> Any:
    """The server's facts as the observer last read them (refreshed while watched)."""
    overview, freshness = reading("overview")
    context = {"panels": PANELS, "hidden": HIDDEN}
    if overview is None:
        error = freshness["error"] or "no reading yet"
        data = {"error": error, "url": mask_url(state().settings.url), "freshness": freshness}
        status = 503 if freshness["state"] == "error" else 200
        return render("overview/index.html", data, status=status, **context)
    data = {"error": None, **overview, "freshness": freshness}
    return render(
        "overview/index.html", data, sections=overview, version=version(freshness), **context
    )


@bp.get("/healthz")
def healthz() -> Any:
    """200 while the web process runs; ``redis`` is ``ok`` or ``unreachable`` (PING)."""
    try:
        with deadline(HEALTHZ_TIMEOUT_S):
            state().client.ping()
        redis_status = "ok"
    except PoolExhausted:  # the dashboard's own limit, not Redis
        redis_status = "busy"
    except (redis.RedisError, ConnectionConfigError) as exc:
        # /healthz answers without auth: the reason (addresses, URL) goes to the log only.
        log.warning("healthz: Redis unreachable: %s", exc)
        redis_status = "unreachable"
    return jsonify({"status": "ok", "redis": redis_status})
