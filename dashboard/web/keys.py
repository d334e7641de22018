"""The key browser (``/keys``) and the header search (``/search``).

``/keys?match=<glob>&type=<type>`` lists keys a bounded page at a time (at most
``browse_scan_keys`` keys examined per request, see
:mod:`dashboard.inspect.keyspace.browse`); the page's ``next`` cursor continues the
walk. ``scope=(root)`` keeps the keys outside every namespace (the keyspace view's
"(root)" row), ``db=N`` browses another database. This page asks Redis on demand
(a viewer's explicit paging), never in the background.

``/search?q=...`` is the header's search box: a glob (``*``, ``?``, ``[``) opens the
browser with it; a name opens that key when it exists, else the browser with the
keys that start with it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, request, url_for

from dashboard.inspect.keyspace.browse import ROOT, BrowseError, BrowseQuery, browse, dbsize
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.keyid import glob_escape, key_address
from dashboard.web.dbs import client_for, own_db, selected_db
from dashboard.web.keyview import key_href
from dashboard.web.pages import page, render
from dashboard.web.state import state

bp = Blueprint("keys", __name__)
NAV = ("Keys", "keys.index")

TYPES = ("string", "hash", "list", "set", "zset", "stream")
GLOB_CHARS = "*?["


def _int(name: str, default: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit():
        abort(400, description=f"{name} must be a non-negative integer, got {raw[:20]!r}")
    return int(raw)


def known_databases() -> list[dict[str, Any]]:
    """Databases for the picker, from the observer's last overview (INFO keyspace);
    read as it is, without making anyone watch it."""
    data = state().observer.section("overview").data or {}
    dbs = [
        {"db": d["db"], "keys": d.get("keys")}
        for d in (data.get("keyspace") or {}).get("dbs") or []
    ]
    mine = own_db()
    if all(d["db"] != mine for d in dbs):
        dbs.append({"db": mine, "keys": None})
    return sorted(dbs, key=lambda d: d["db"])


@page(bp, "/keys")
def index() -> Any:
    settings = state().settings
    db = selected_db()
    try:
        query = BrowseQuery(
            match=request.args.get("match", "*"),
            type=request.args.get("type", ""),
            scope=request.args.get("scope", ""),
            cursor=request.args.get("cursor", ""),
            limit=_int("limit", 100),
            budget=settings.browse_scan_keys,
        )
        client = client_for(db)
        page_ = browse(client, query, ScanOptions.from_settings(settings))
    except BrowseError as exc:
        abort(400, description=str(exc))
    seen = _int("seen", 0) + page_["examined"]
    data = {
        "match": query.match,
        "type": query.type,
        "scope": query.scope,
        "db": own_db() if db is None else db,
        "own_db": own_db(),
        "cursor": query.cursor,
        "limit": query.limit,
        "budget": query.budget,
        **page_,
        "examined_total": seen,
        "dbsize": dbsize(client),
        "missing": request.args.get("missing") or None,
        "databases": known_databases(),
    }
    more = {"db": db, "scope": query.scope or None, "type": query.type or None}
    if query.limit != 100:
        more["limit"] = query.limit
    return render("keys/index.html", data, types=TYPES, more=more, root=ROOT)


@bp.get("/search")
def search() -> Any:
    """The header search: a glob lists keys, a name opens the key (or lists similar)."""
    q = request.args.get("q", "").strip("\r\n")
    db = selected_db()
    if not q:
        return redirect(url_for("keys.index", db=db))
    if any(c in q for c in GLOB_CHARS):
        return redirect(url_for("keys.index", match=q, db=db))
    key = q.encode("utf-8", "surrogateescape")
    if client_for(db).exists(key):
        return redirect(key_href(key_address(key), db=db))
    similar = glob_escape(key).decode("utf-8", "surrogateescape") + "*"
    return redirect(url_for("keys.index", match=similar, missing=q, db=db))
