"""Every HTML page ``/x`` also answers at ``/x.json`` with the data it rendered.

Views call :func:`render` with a template and a plain-data dict; the same dict is
the JSON twin, so the two can never disagree. An htmx request for a page that
has a fragment (``_name.html`` beside it) gets only the fragment.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request
from jinja2 import TemplateNotFound

from dashboard.web.rendercache import RenderCache, cached_render
from dashboard.web.security import csrf_token


def page(bp: Blueprint, rule: str, **options: Any) -> Callable[[Callable], Callable]:
    """Register ``rule`` and ``rule + '.json'`` for one view function."""

    def register(view: Callable) -> Callable:
        bp.add_url_rule(rule, view.__name__, view, **options)
        json_rule = (rule.rstrip("/") or "/index") + ".json"
        bp.add_url_rule(json_rule, view.__name__ + "_json", view, **options)
        return view

    return register


def wants_json() -> bool:
    return request.path.endswith(".json")


def render(
    template: str,
    data: dict[str, Any],
    status: int = 200,
    *,
    version: Hashable | None = None,
    **context: Any,
) -> Any:
    """The JSON twin for ``*.json`` paths; the fragment for htmx; else the full page.

    ``context`` holds what only the HTML needs (e.g. helper callables). ``version``
    names the reading the page shows: pages of the same version are rendered once
    and served from the render cache (:mod:`dashboard.web.rendercache`).
    """
    if wants_json():
        if version is None:
            return jsonify(data), status
        return _cached_json(data, status, version)
    name = template
    if request.headers.get("HX-Request") and not request.headers.get("HX-Boosted"):
        folder, _, base = template.rpartition("/")
        fragment = f"{folder}/_{base}"
        if _exists(fragment):
            name = fragment
    if version is None:
        return render_template(name, **data, **context), status
    key = (name, request.full_path, status, version)
    html = cached_render(
        _cache(), key, lambda: render_template(name, **data, **context), csrf_token
    )
    return html, status


# Parts of a twin that change between two requests for the same reading (its age, a
# scan's progress, the tails' counters): serialized per request, the rest once per reading.
PER_REQUEST = ("freshness", "cycle", "job", "tails")


def _cached_json(data: dict[str, Any], status: int, version: Hashable) -> Any:
    """The twin of one reading serialized once, with its per-request parts added."""
    dumps = current_app.json.dumps
    key = ("json", request.full_path, status, version)
    cache = _cache()
    body = cache.get(key)
    if body is None:
        body = dumps({k: v for k, v in data.items() if k not in PER_REQUEST})
        cache.put(key, body)
    fresh = {k: data[k] for k in PER_REQUEST if k in data}
    if fresh:
        head = dumps(fresh)
        body = head if body == "{}" else head[:-1] + "," + body[1:]
    return current_app.response_class(body + "\n", status=status, mimetype="application/json")


def _exists(template: str) -> bool:
    try:
        current_app.jinja_env.get_template(template)
    except TemplateNotFound:
        return False
    return True


def _cache() -> RenderCache:
    """The render cache of the request's target (paths repeat across targets)."""
    from dashboard.web.state import state

    return state().singleton("render_cache", RenderCache)
