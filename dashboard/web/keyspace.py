"""Keyspace explorer (``/keyspace``): the namespace tree of the observer's last scan.

The observer scans at start, every ``rescan_interval`` and on demand (Re-scan); this
page shows the last finished scan (its id and "as of" time) and, while a newer one
runs, its progress. Drill down
with ``?ns=<namespace id>``; sort with ``?sort=bytes|keys|name|ttl``; filter
namespaces with ``?q=<glob>`` and ``?type=<redis type>``.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from flask import Blueprint, Response, abort, redirect, request, url_for

from dashboard.inspect.keyspace.rollup import iter_nodes
from dashboard.web.pages import page, render, wants_json
from dashboard.web.picture import version
from dashboard.web.state import state

bp = Blueprint("keyspace", __name__)
NAV = ("Keyspace", "keyspace.index")

SORTS = {
    "bytes": lambda n: (-(n["bytes"] or 0), n["name"]),  # null: MEMORY USAGE unavailable
    "keys": lambda n: (-n["keys"], n["name"]),
    "name": lambda n: (n["name"],),
    "ttl": lambda n: (ttl_coverage(n), n["name"]),
}


def ttl_coverage(node: dict[str, Any]) -> float | None:
    """Share of a namespace's keys that have a TTL (None for an empty node)."""
    known = node["ttl"]["with_ttl"] + node["ttl"]["without_ttl"]
    return node["ttl"]["with_ttl"] / known if known else None


def _summary(node: dict[str, Any], parent_bytes: int) -> dict[str, Any]:
    """A node without its subtree, plus the figures the table shows."""
    out = {k: v for k, v in node.items() if k != "children"}
    out["child_count"] = len(node["children"])
    out["ttl_coverage"] = ttl_coverage(node)
    known = parent_bytes and node["bytes"] is not None
    out["share"] = node["bytes"] / parent_bytes if known else None
    return out


def _index(picture: dict[str, Any]) -> dict[str, Any]:
    """Every node by id with its ancestors, and the types seen: built once per scan (a
    tree of thousands of namespaces is not walked again for every request)."""
    index = picture.get("_index")
    if index is None:
        nodes: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        stack = [(picture["result"]["tree"], [])]
        while stack:
            node, trail = stack.pop()
            if node.get("id"):
                nodes[node["id"]] = (node, trail)
            stack += [(child, [*trail, node]) for child in node["children"]]
        types = sorted({t for n in iter_nodes(picture["result"]["tree"]) for t in n["types"]})
        index = picture["_index"] = {"nodes": nodes, "types_seen": types}
    return index


def _select(picture: dict[str, Any], ns: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The node with id ``ns`` and its ancestors (for breadcrumbs)."""
    if not ns:
        return picture["result"]["tree"], []
    found = _index(picture)["nodes"].get(ns)
    if found is None:
        abort(404, description="no such namespace in the last scan (re-scan to refresh)")
    return found


def _children(node: dict[str, Any], sort: str, pattern: str, kind: str) -> list[dict[str, Any]]:
    kids = node["children"]
    if pattern:
        kids = [c for c in kids if fnmatch.fnmatchcase(c.get("path") or c["name"], pattern)]
    if kind:
        kids = [c for c in kids if kind in c["types"]]
    return [_summary(c, node["bytes"]) for c in sorted(kids, key=SORTS[sort])]


def _scan_meta(picture: dict[str, Any] | None) -> dict[str, Any] | None:
    """The finished scan the page shows (id, time, counters), without the rollup."""
    if picture is None:
        return None
    scan = picture["scan"]
    return {k: v for k, v in scan.items() if k not in ("nodes", "options")} | {
        "nodes": scan.get("nodes"),
        "options": scan.get("options"),
    }


@page(bp, "/keyspace")
def index() -> Any:
    sort = request.args.get("sort", "bytes")
    if sort not in SORTS:
        abort(400, description=f"sort must be one of {', '.join(SORTS)}")
    pattern = request.args.get("q", "")
    kind = request.args.get("type", "")
    ns = request.args.get("ns") or None
    observer = state().observer
    picture, cycle = observer.scan_picture(wait_s=state().settings.first_wait_s)
    data: dict[str, Any] = {
        "scan": _scan_meta(picture),
        "cycle": cycle,
        "freshness": observer.keyspace.freshness(),
        "sort": sort,
        "q": pattern,
        "type": kind,
    }
    result = None if picture is None else picture["result"]
    if result is None:
        data.update(node=None, trail=[], children=[], estimated=False, totals=None)
    else:
        node, trail = _select(picture, ns)
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
        data["types_seen"] = _index(picture)["types_seen"]
    running = (cycle["running"] or {}).get("id")
    fresh = data["freshness"]
    return render(
        "keyspace/index.html",
        data,
        sorts=list(SORTS),
        version=version(fresh, cycle["state"], cycle["error"], running),
    )


@bp.get("/keyspace/progress")
def progress() -> Any:
    """The progress fragment; once a newer scan than the page's is done, reload the page."""
    observer = state().observer
    _picture, cycle = observer.scan_picture()
    shown = request.args.get("shown") or None
    if cycle["state"] != "running" and cycle["scan_id"] != shown:
        return Response("", headers={"HX-Refresh": "true"})
    return render("keyspace/progress.html", {"cycle": cycle, "shown": shown})


@bp.post("/keyspace/scan")
def control() -> Any:
    """Re-scan or cancel (POST with CSRF; a scan only reads, so allowed read-only).

    A re-scan while one runs joins it: one scan of a server at a time.
    """
    observer = state().observer
    action = request.form.get("action", "rescan")
    if action in ("rescan", "resume"):
        observer.rescan("Re-scan button")
    elif action == "cancel":
        observer.keyspace.cancel()
    else:
        abort(400, description="action must be rescan or cancel")
    if wants_json() or request.accept_mimetypes.best == "application/json":
        return observer.keyspace.status()
    return redirect(url_for("keyspace.index"))
