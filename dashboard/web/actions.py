"""The two-step write actions of the live views (shared by ``/ratelimits`` and ``/locks``).

POST ``k=<key address>`` (and the CSRF token) answers with a confirmation page (or its
JSON: the state seen plus a ``confirm`` code); POST again with ``confirm=<code>`` acts.
In read-only mode both steps are refused before anything is sent to Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import jsonify, render_template, request, url_for

from dashboard.inspect.live.actions import ActionError
from dashboard.inspect.live.detectors import Detectors
from dashboard.keyid import UnknownKeyRef, resolve_address
from dashboard.web.pages import wants_json
from dashboard.web.state import state

Step = Callable[..., dict[str, Any]]


def _json_wanted() -> bool:
    return wants_json() or request.accept_mimetypes.best == "application/json"


def _answer(template: str, back: str, status: int, **data: Any) -> Any:
    if _json_wanted():
        return jsonify({k: v for k, v in data.items() if k != "title"}), status
    return render_template(template, back=url_for(back), **data), status


def two_step(
    what: str,
    prepare: Step,
    perform: Step,
    template: str,
    back: str,
    after: Callable[[], None] | None = None,
) -> Any:
    """Confirm, then act; ``what`` completes "cannot ..." in messages; ``after`` runs
    once the action changed something (the live page's reading is refreshed)."""
    if not state().settings.allow_writes:
        message = (
            f"read-only mode: cannot {what}. Start the dashboard with --allow-writes "
            "(REDIS_DASHBOARD_ALLOW_WRITES=1) to enable actions; nothing was sent to Redis."
        )
        return _answer(template, back, 403, error="Refused", message=message)
    address = request.form.get("k", "")
    try:
        key = resolve_address(address)
    except UnknownKeyRef as exc:
        return _answer(template, back, 404, error="Not found", message=str(exc))
    except ValueError as exc:
        return _answer(template, back, 400, error="Bad request", message=str(exc))
    client, detectors = state().client, Detectors.from_settings(state().settings)
    confirm = request.form.get("confirm", "")
    try:
        if confirm:
            result = perform(client, detectors, key, confirm)
            if after is not None:
                after()
        else:
            result = {**prepare(client, detectors, key), "k": address}
    except ActionError as exc:
        title = {404: "Not found", 409: "Not done"}.get(exc.status, "Refused")
        return _answer(template, back, exc.status, error=title, message=str(exc))
    return _answer(template, back, 200, error=None, **result)
