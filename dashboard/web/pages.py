"""Every HTML page ``/x`` also answers at ``/x.json`` with the data it rendered.

Views call :func:`render` with a template and a plain-data dict; the same dict is
the JSON twin, so the two can never disagree. An htmx request for a page that
has a fragment (``_name.html`` beside it) gets only the fragment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify, render_template, request
from jinja2 import TemplateNotFound


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


def render(template: str, data: dict[str, Any], status: int = 200, **context: Any) -> Any:
    """The JSON twin for ``*.json`` paths; the fragment for htmx; else the full page.

    ``context`` holds what only the HTML needs (e.g. helper callables).
    """
    if wants_json():
        return jsonify(data), status
    if request.headers.get("HX-Request") and not request.headers.get("HX-Boosted"):
        folder, _, name = template.rpartition("/")
        try:
            return render_template(f"{folder}/_{name}", **data, **context), status
        except TemplateNotFound:
            pass
    return render_template(template, **data, **context), status
