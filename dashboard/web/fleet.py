"""The fleet (``/fleet``): every Redis this dashboard watches, each with its own observer.

Each target's pages live under ``/t/<name>/`` (``/t/cache/keyspace``); :class:`TargetPrefix`
moves that prefix into ``SCRIPT_NAME``, so the views do not know about targets and every
link ``url_for`` builds stays within the target. Without a prefix a page is the first
target's, so a dashboard of one target keeps its plain URLs.

The fleet page reads each target's overview and last scan from its observer (watching
them, so a target that stops answering shows as down within a cadence or two).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, request

from dashboard.web.pages import page, render
from dashboard.web.state import TARGET_ENVIRON, AppState, fleet

bp = Blueprint("fleet", __name__)
NAV = ("Fleet", "fleet.index")
BASE_ENVIRON = "dashboard.base"  # SCRIPT_NAME before the target prefix


class TargetPrefix:
    """WSGI middleware: ``/t/<name>/rest`` -> target ``name``, path ``/rest``."""

    def __init__(self, app: Any, names: set[str]) -> None:
        self.app, self.names = app, names

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ[BASE_ENVIRON] = environ.get("SCRIPT_NAME", "")
        path = environ.get("PATH_INFO", "")
        if path.startswith("/t/"):
            name, _, rest = path[3:].partition("/")
            if name in self.names:
                environ["SCRIPT_NAME"] = environ[BASE_ENVIRON] + "/t/" + name
                environ["PATH_INFO"] = "/" + rest
                environ[TARGET_ENVIRON] = name
        return self.app(environ, start_response)


def target_url(name: str, path: str = "/") -> str:
    """The URL of ``path`` (an app path like ``/keyspace``) on target ``name``."""
    base = request.environ.get(BASE_ENVIRON, "")
    return f"{base}/t/{name}{path}"


def _summary(target: AppState, wait_until: float) -> dict[str, Any]:
    observer = target.observer
    overview, fresh = observer.read("overview", wait_s=max(0.0, wait_until - time.monotonic()))
    picture, cycle = observer.scan_picture()
    audit = None if picture is None else picture["audit"]["summary"]
    up = fresh["state"] == "ok" and overview is not None
    status = "loading" if fresh["state"] == "loading" else ("up" if up else "down")
    memory = (overview or {}).get("memory") or {}
    stats = (overview or {}).get("stats") or {}
    keyspace = (overview or {}).get("keyspace") or {}
    return {
        "name": target.name,
        "url": target.target.public()["url"] if target.target else None,
        "allow_writes": target.settings.allow_writes,
        "state": status,
        "error": fresh["error"],
        "version": (overview or {}).get("version"),
        "mode": (overview or {}).get("mode"),
        "role": (overview or {}).get("role"),
        "memory": {k: memory.get(k) for k in ("used", "max", "used_human", "max_human")}
        | {"used_percent_of_max": memory.get("used_percent_of_max")},
        "keys": keyspace.get("total_keys"),
        "ops_per_sec": stats.get("ops_per_sec"),
        "audit": None
        if audit is None
        else {k: audit.get(k, 0) for k in ("critical", "warning", "info")},
        "last_scan": {
            "id": cycle["scan_id"],
            "as_of": cycle["as_of"],
            "age_ms": cycle["age_ms"],
            "state": cycle["state"],
            "error": cycle["error"],
        },
        "freshness": fresh,
        "links": {
            view: target_url(target.name, f"/{view}")
            for view in ("overview", "keyspace", "audit", "streams")
        },
    }


@page(bp, "/fleet")
def index() -> Any:
    """Every target at a glance (each refreshed by its own observer while watched)."""
    targets = list(fleet().states.values())
    for target in targets:  # watch them all first: their first readings run in parallel
        target.observer.read("overview", wait_s=0)
    wait_until = time.monotonic() + targets[0].settings.first_wait_s
    rows = [_summary(t, wait_until) for t in targets]
    totals = {
        "targets": len(rows),
        "up": sum(r["state"] == "up" for r in rows),
        "down": sum(r["state"] == "down" for r in rows),
        "critical": sum((r["audit"] or {}).get("critical", 0) for r in rows),
        "warning": sum((r["audit"] or {}).get("warning", 0) for r in rows),
    }
    return render("fleet/index.html", {"targets": rows, "totals": totals})
