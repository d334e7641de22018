"""Playground (``/playground``): one card per pattern of the layer, run from the browser.

``POST /playground/<card>/<action>`` (CSRF) runs an experiment and answers with the
card (htmx), its outcome as JSON (``Accept: application/json``), or a redirect back.
A card whose outcome is ``running`` polls ``GET /playground/card/<card>`` until done.
``POST /playground/simulator/<start|stop|update>`` steers the traffic.

The service (:class:`dashboard.demo.playground.Playground`) writes with its own
clients, only where writes are enabled; under ``redis-dashboard serve`` that means
``--allow-writes`` and names under ``demo:`` (see docs/demo.md).
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from dashboard.demo.playground import BY_ID, Playground
from dashboard.demo.target import DemoRefused, DemoTarget
from dashboard.web.audit import audit_job
from dashboard.web.pages import page, render, wants_json
from dashboard.web.state import state

bp = Blueprint("playground", __name__)
NAV = ("Playground", "playground.index")
STATUS = {"refused": 403, "error": 400}


def service() -> Playground:
    """The app's playground (made on first use, closed with the app's state)."""
    app_state = state()
    config = current_app.config

    def make() -> Playground:
        s = app_state.settings
        target = config.get("DEMO_TARGET") or DemoTarget(s.url, "external", writes=s.allow_writes)
        return Playground(
            target,
            card_config=config.get("DEMO_CARD_CONFIG"),
            shop_config=config.get("DEMO_SHOP_CONFIG"),
            knobs=config.get("DEMO_KNOBS"),
            audit=audit_job,
        )

    return app_state.singleton("playground", make)


def _json_wanted() -> bool:
    return wants_json() or request.accept_mimetypes.best == "application/json"


@page(bp, "/playground")
def index() -> Any:
    return render("playground/index.html", service().view())


@bp.post("/playground/<card_id>/<action>")
def run(card_id: str, action: str) -> Any:
    if card_id not in BY_ID:
        abort(404, description=f"no playground card {card_id!r}")
    playground = service()
    result = playground.run(card_id, action, request.form)
    status = STATUS.get(result["state"], 200)
    if _json_wanted():
        return jsonify(result), status
    if request.headers.get("HX-Request"):
        return _card(playground, card_id)
    return redirect(url_for("playground.index") + f"#card-{card_id}")


@bp.get("/playground/card/<card_id>")
@bp.get("/playground/card/<card_id>.json", endpoint="card_json")
def card(card_id: str) -> Any:
    """One card with its current outcome (what a running card polls)."""
    if card_id not in BY_ID:
        abort(404, description=f"no playground card {card_id!r}")
    playground = service()
    if wants_json():
        return jsonify(playground.card_view(BY_ID[card_id]))
    return _card(playground, card_id)


def _card(playground: Playground, card_id: str) -> Any:
    return render_template("playground/_card.html", card=playground.card_view(BY_ID[card_id]))


@bp.post("/playground/simulator/<action>")
def simulator(action: str) -> Any:
    playground = service()
    error, status = None, 200
    try:
        playground.control_simulator(action, request.form)
    except DemoRefused as exc:
        error, status = str(exc), 403
    except ValueError as exc:
        error, status = str(exc), 400
    data = playground.view()
    if _json_wanted():
        return jsonify({"error": error, "simulator": data["simulator"]}), status
    if request.headers.get("HX-Request"):
        return render_template("playground/_simulator.html", **data, error=error)
    return redirect(url_for("playground.index") + "#simulator")


@bp.get("/playground/simulator")
def simulator_panel() -> Any:
    """The traffic panel alone (it polls itself while traffic runs)."""
    return render_template("playground/_simulator.html", **service().view(), error=None)
