"""Key detail: ``/key/<name>`` (a text name, URL-encoded), ``/key?k=<address>`` (any key,
the base64 form old links and binary names use), ``/key?name=<text>``; ``?db=N`` looks in
another database. Metadata, a bounded paged preview, the name as a redis-cli argument,
and the key's write actions (delete, set or remove its TTL: ``--allow-writes`` only).

``key_href`` (a template global) is how every page links a key: the readable URL when
the name allows it (:func:`dashboard.keyid.readable_name`), the address otherwise.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)

from dashboard.inspect.keyspace.keyactions import ACTIONS, check_ttl, perform, prepare
from dashboard.inspect.keyspace.keydetail import key_detail
from dashboard.inspect.live.actions import ActionError
from dashboard.keyid import (
    UnknownKeyRef,
    glob_escape,
    key_address,
    readable_name,
    redis_cli_arg,
    resolve_address,
)
from dashboard.web import writes
from dashboard.web.dbs import client_for, selected_db
from dashboard.web.pages import page, render, wants_json
from dashboard.web.state import state

bp = Blueprint("keyview", __name__)
NAV = None  # reached from the key browser, the keyspace view and the header search

_INT_ARGS = ("offset", "limit", "string_bytes", "element_bytes")
READ_ONLY_REASON = (
    "read-only mode: the dashboard was started without --allow-writes "
    "(REDIS_DASHBOARD_ALLOW_WRITES=1), so it sends no write command"
)


@bp.app_template_global()
def key_href(address: str, **params: Any) -> str:
    """The link to a key: ``/key/<name>`` for text names, ``/key?k=<address>`` else."""
    try:
        key = resolve_address(address)
    except (ValueError, UnknownKeyRef):
        return url_for("keyview.detail", k=address, **params)
    name = readable_name(key)
    if name is None:
        return url_for("keyview.detail", k=address, **params)
    return url_for("keyview.named", name=name, **params)


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


def requested_key(values: Any) -> bytes:
    """The key a request names: ``k`` (an address) or ``name`` (text)."""
    if values.get("name"):
        return values["name"].encode("utf-8", "surrogateescape")
    address = values.get("k")
    if address is None:
        abort(400, description="which key? pass ?k=<key address> or ?name=<key name>")
    try:
        return resolve_address(address)
    except UnknownKeyRef as exc:
        abort(404, description=str(exc))
    except ValueError as exc:
        abort(400, description=str(exc))


def _show(key: bytes) -> Any:
    db = selected_db()
    client = client_for(db)  # a bad URL is a 503, not this request's 400
    try:
        data = key_detail(client, key, **_paging())
    except ValueError as exc:
        abort(400, description=str(exc))
    address = key_address(key)
    name = readable_name(key)
    data.update(
        db=db,
        name=name,
        cli=redis_cli_arg(key),
        actions={
            "available": state().settings.allow_writes,
            "reason": READ_ONLY_REASON if not state().settings.allow_writes else None,
            "kinds": list(ACTIONS),
        },
    )
    if not wants_json():
        data["messages"] = get_flashed_messages()
    args = {k: v for k, v in request.args.items() if k not in ("k", "name", "db")}
    twin = url_for("keyview.detail_json", k=address, db=db, **args)
    similar = glob_escape(key[:64]).decode("utf-8", "surrogateescape") + "*"
    return render("key/detail.html", data, address=address, json_twin=twin, similar=similar)


@page(bp, "/key")
def detail() -> Any:
    return _show(requested_key(request.args))


def named(name: str) -> Any:
    """``/key/<name>``: the same page for a key whose name is text."""
    return _show(name.encode("utf-8", "surrogateescape"))


bp.add_url_rule("/key/<path:name>", "named", named, merge_slashes=False)


# --- actions: delete, set TTL, remove TTL ----------------------------------------------------


def _answer(status: int, back: str, **data: Any) -> Any:
    if wants_json() or request.accept_mimetypes.best == "application/json":
        return data, status
    return render_template("key/action.html", back=back, **data), status


@bp.post("/key/action")
@bp.post("/key/action.json", endpoint="action_json")
def action() -> Any:
    """Step 1 (no ``confirm``): what would change. Step 2 (``confirm=<code>``): do it."""
    form = request.form
    key = requested_key(form)
    db = selected_db()
    address = key_address(key)
    back = key_href(address, db=db)
    if not state().settings.allow_writes:
        message = f"{READ_ONLY_REASON}; nothing was sent to Redis."
        return _answer(403, back, error="Refused", message=message)
    kind = form.get("action", "")
    try:
        ttl = check_ttl(form["ttl"]) if kind == "expire" and form.get("ttl") else None
    except ValueError as exc:
        return _answer(400, back, error="Bad request", message=str(exc))
    client = client_for(db)
    confirm = form.get("confirm", "")
    try:
        if not confirm:
            seen = prepare(client, key, kind, ttl)
            return _answer(200, back, error=None, k=address, db=db, **seen)
        done = perform(client, key, kind, confirm, ttl)
    except ActionError as exc:
        title = {404: "Not found", 409: "Not done"}.get(exc.status, "Refused")
        if confirm:
            writes.record(kind, done_subject(key), {"db": db, "ttl_s": ttl}, str(exc), False)
        return _answer(exc.status, back, error=title, message=str(exc))
    writes.record(kind, done_subject(key), {"db": db, "ttl_s": ttl}, done["message"], True)
    if wants_json() or request.accept_mimetypes.best == "application/json":
        return done, 200
    flash(done["message"])
    return redirect(url_for("keys.index", db=db) if kind == "delete" else back)


def done_subject(key: bytes) -> str:
    """The key as the write log names it: its redis-cli form (exact, copyable)."""
    return redis_cli_arg(key)
