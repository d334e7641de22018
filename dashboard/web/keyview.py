"""Key detail (``/key?k=<address>``): metadata and a bounded, paged preview."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request

from dashboard.inspect.keyspace.keydetail import key_detail
from dashboard.keyid import UnknownKeyRef, resolve_address
from dashboard.web.pages import page, render
from dashboard.web.state import state

bp = Blueprint("keyview", __name__)
NAV = None  # reached from the keyspace view, not the menu

_INT_ARGS = ("offset", "limit", "string_bytes", "element_bytes")


def _paging() -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name in _INT_ARGS:
        if name in request.args:
            try:
                args[name] = int(request.args[name])
            except ValueError:
                abort(400, description=f"{name} must be an integer")
    for name in ("cursor", "order", "start"):
        if request.args.get(name):
            args[name] = request.args[name]
    return args


@page(bp, "/key")
def detail() -> Any:
    address = request.args.get("k")
    if address is None:
        abort(400, description="which key? pass ?k=<key address> (see docs/keydetail.md)")
    try:
        key = resolve_address(address)
    except UnknownKeyRef as exc:
        abort(404, description=str(exc))
    except ValueError as exc:
        abort(400, description=str(exc))
    client = state().client  # a bad URL is a 503, not this request's 400
    try:
        data = key_detail(client, key, **_paging())
    except ValueError as exc:
        abort(400, description=str(exc))
    return render("key/detail.html", data, address=address)
