"""Server overview (``/overview``) and the health check (``/healthz``)."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Blueprint, jsonify, redirect, url_for

from dashboard.connection import ConnectionConfigError, mask_url
from dashboard.deadline import deadline
from dashboard.inspect.errors import RedisUnavailable
from dashboard.inspect.server.overview import server_overview
from dashboard.pool import PoolExhausted
from dashboard.web.pages import page, render
from dashboard.web.state import state

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


@bp.get("/")
def root() -> Any:
    return redirect(url_for("overview.index"))


@page(bp, "/overview")
def index() -> Any:
    try:
        data = server_overview(state().client)
    except RedisUnavailable as exc:
        return render(
            "overview/index.html",
            {"error": str(exc), "url": mask_url(state().settings.url)},
            status=503,
            panels=PANELS,
            hidden=HIDDEN,
        )
    return render(
        "overview/index.html", {"error": None, **data}, panels=PANELS, sections=data, hidden=HIDDEN
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
