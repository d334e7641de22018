"""Keyspace explorer (``/keyspace``): the namespace tree from the background scan.

Opening the page starts a scan when there is none (a scan only reads); the page
polls a progress fragment until the scan is done, then shows the tree. Drill down
with ``?ns=<namespace id>``; sort with ``?sort=bytes|keys|name|ttl``; filter
namespaces with ``?q=<glob>`` and ``?type=<redis type>``.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from flask import Blueprint, Response, abort, redirect, request, url_for

from dashboard.inspect.keyspace.rollup import iter_nodes
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import DONE, IDLE, ScanJob
from dashboard.web.pages import page, render, wants_json
from dashboard.web.state import state

bp = Blueprint("keyspace", __name__)
NAV = ("Keyspace", "keyspace.index")

SORTS = {
    "bytes": lambda n: (-(n["bytes"] or 0), n["name"]),  # null: MEMORY USAGE unavailable
    "keys": lambda n: (-n["keys"], n["name"]),
    "name": lambda n: (n["name"],),
    "ttl": lambda n: (ttl_coverage(n), n["name"]),
}


def scan_job() -> ScanJob:
    """The app's one keyspace scan (results cached until a re-scan)."""
    app_state = state()
    return app_state.singleton(
        "scanjob",
        lambda: ScanJob(app_state.client, ScanOptions.from_settings(app_state.settings)),
    )


def ttl_coverage(node: dict[str, Any]) -> float | None:
    """Share of a namespace's keys that have a TTL (None for an empty node)."""
    known = node["ttl"]["with_ttl"] + node["ttl"]["without_ttl"]
    return node["ttl"]["with_ttl"] / known if known else None


def _summary(node: dict[str, Any], parent_bytes: int) -> dict[str, Any]:
    """A node without its subtree, plus the figures the table shows."""
    out = {k: v for k, v in node.items() if k != "children"}
    out["child_count"] = len(node["children"])
    out["ttl_coverage"] = ttl_coverage(node)
    out["share"] = node["bytes"] / parent_bytes if parent_bytes and node["bytes"] else None
    return out


def _select(tree: dict[str, Any], ns: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The node with id ``ns`` and its ancestors (for breadcrumbs)."""
    if not ns:
        return tree, []
    trail: list[dict[str, Any]] = []

    def walk(node: dict[str, Any], path: list[dict[str, Any]]) -> dict[str, Any] | None:
        if node.get("id") == ns:
            trail.extend(path)
            return node
        for child in node["children"]:
            found = walk(child, [*path, node])
            if found is not None:
                return found
        return None

    found = walk(tree, [])
    if found is None:
        abort(404, description="no such namespace in the last scan (re-scan to refresh)")
    return found, trail


def _children(node: dict[str, Any], sort: str, pattern: str, kind: str) -> list[dict[str, Any]]:
    kids = node["children"]
    if pattern:
        kids = [c for c in kids if fnmatch.fnmatchcase(c.get("path") or c["name"], pattern)]
    if kind:
        kids = [c for c in kids if kind in c["types"]]
    return [_summary(c, node["bytes"]) for c in sorted(kids, key=SORTS[sort])]


@page(bp, "/keyspace")
def index() -> Any:
    job = scan_job()
    if job.state == IDLE:
        job.start()
    sort = request.args.get("sort", "bytes")
    if sort not in SORTS:
        abort(400, description=f"sort must be one of {', '.join(SORTS)}")
    pattern = request.args.get("q", "")
    kind = request.args.get("type", "")
    ns = request.args.get("ns") or None
    scan = job.snapshot(include_result=False)
    result = job.result()
    data: dict[str, Any] = {"scan": scan, "sort": sort, "q": pattern, "type": kind}
    if result is None:
        data.update(node=None, trail=[], children=[], estimated=False, totals=None)
    else:
        node, trail = _select(result["tree"], ns)
        data.update(
            node=_summary(node, result["tree"]["bytes"]),
            trail=[{"name": t["name"], "id": t["id"]} for t in trail],
            children=_children(node, sort, pattern, kind),
            estimated=bool(result.get("estimated")),
            totals={
                "keys": result["tree"]["keys"],
                "bytes": result["tree"]["bytes"],
                "namespaces": result["namespaces"],
                "folded_keys": result["folded_keys"],
            },
        )
        data["types_seen"] = sorted({t for n in iter_nodes(result["tree"]) for t in n["types"]})
    return render("keyspace/index.html", data, sorts=list(SORTS))


@bp.get("/keyspace/progress")
def progress() -> Any:
    """The progress fragment; once the scan is done it asks the page to reload."""
    job = scan_job()
    scan = job.snapshot(include_result=False)
    if scan["state"] == DONE:
        return Response("", headers={"HX-Refresh": "true"})
    return render("keyspace/progress.html", {"scan": scan})


@bp.post("/keyspace/scan")
def control() -> Any:
    """Re-scan, cancel or resume (POST with CSRF; reads only, so allowed read-only)."""
    job = scan_job()
    action = request.form.get("action", "rescan")
    if action == "rescan":
        job.rescan()
    elif action == "cancel":
        job.cancel()
    elif action == "resume":
        job.start()
    else:
        abort(400, description="action must be rescan, cancel or resume")
    if wants_json() or request.accept_mimetypes.best == "application/json":
        return job.snapshot(include_result=False)
    return redirect(url_for("keyspace.index"))
