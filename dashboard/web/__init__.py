"""Flask app factory: one blueprint per view, thin views over the services."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask, jsonify, render_template, request

from dashboard import __version__
from dashboard.config import Settings
from dashboard.connection import ConnectionConfigError, mask_url
from dashboard.gate import CommandRefused
from dashboard.inspect.errors import RedisUnavailable
from dashboard.resources import resource_dir
from dashboard.targets import Target, from_urls, load_targets
from dashboard.web import filters, security
from dashboard.web import fleet as fleet_view
from dashboard.web.fleet import TargetPrefix
from dashboard.web.state import AppState, Fleet, fleet, state

log = logging.getLogger(__name__)


def _blueprints() -> list[Any]:
    """Each view's ``bp`` and its navigation label (``NAV``), in menu order."""
    from dashboard.web import (
        audit,
        bulk,
        keys,
        keyspace,
        keyview,
        live,
        overview,
        playground,
        pubsub,
        server,
        streams,
        writes,
    )

    return [
        fleet_view,
        overview,
        keyspace,
        keys,
        keyview,
        live.ratelimits,
        live.locks,
        audit,
        streams,
        pubsub,
        server,
        playground,
        bulk,
        writes,
    ]


def create_app(
    config: Settings | Mapping[str, Any] | None = None, targets: list[Target] | None = None
) -> Flask:
    """Build the dashboard. ``config`` is a :class:`Settings` or a mapping of setting
    names to values applied over the environment (``REDIS_DASHBOARD_*``). ``targets``
    (or the ``targets`` setting, a TOML file) makes it watch several Redis servers;
    without them it watches ``url``."""
    if isinstance(config, Settings):
        settings = config
    else:
        settings = Settings.from_env().updated(dict(config or {}))
    if targets is None:
        targets = _targets(settings)
    app = Flask(
        __name__,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
    )
    states = [
        AppState(settings.updated({"url": t.url, "allow_writes": t.allow_writes}), target=t)
        for t in targets
    ]
    app.extensions["redis_dashboard_fleet"] = Fleet(states)
    app.extensions["redis_dashboard"] = states[0]  # the default target
    app.wsgi_app = TargetPrefix(app.wsgi_app, {t.name for t in targets})  # type: ignore[method-assign]
    security.install(app, settings.username, settings.password)
    filters.install(app)
    nav = []
    for module in _blueprints():
        app.register_blueprint(module.bp)
        if getattr(module, "NAV", None) and (module is not fleet_view or len(targets) > 1):
            nav.append(module.NAV)
    app.jinja_env.globals.update(nav=nav, app_version=__version__)

    @app.context_processor
    def _target() -> dict[str, Any]:
        current = state()
        return {
            "redis_url": current.label or mask_url(current.settings.url),
            "allow_writes": current.settings.allow_writes,
            "target_name": current.name,
            "fleet_names": list(fleet().states) if len(fleet()) > 1 else [],
            "target_url": fleet_view.target_url,
        }

    _install_error_pages(app)
    return app


def _targets(settings: Settings) -> list[Target]:
    if settings.targets:
        return load_targets(settings.targets, allow_writes=settings.allow_writes)
    return from_urls([settings.url], settings.allow_writes)


def start_observer(app: Flask) -> Flask:
    """Start every target's observer now (``serve`` does, so the first scans run before
    anyone asks); a Redis that cannot be reached is reported on the pages, not here."""
    for target in app.extensions["redis_dashboard_fleet"].states.values():
        try:
            target.observer  # noqa: B018 - made on first access
        except Exception as exc:  # the pages say what is wrong with the URL or the server
            log.warning("observer of %s not started: %s", target.name, exc)
    return app


def _error(status: int, title: str, message: str) -> Any:
    if request.path.endswith(".json"):
        return jsonify({"error": title, "message": message}), status
    return render_template("error.html", title=title, message=message), status


def _install_error_pages(app: Flask) -> None:
    @app.errorhandler(ConnectionConfigError)
    def _bad_url(exc: ConnectionConfigError) -> Any:
        return _error(503, "Bad Redis URL", str(exc))

    @app.errorhandler(RedisUnavailable)
    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_down(exc: Exception) -> Any:
        url = mask_url(state().settings.url)
        return _error(503, "Redis unreachable", f"{url}: {exc}")

    @app.errorhandler(redis.AuthenticationError)
    def _auth(exc: Exception) -> Any:
        return _error(503, "Redis refused the credentials", str(exc))

    @app.errorhandler(CommandRefused)
    def _refused(exc: CommandRefused) -> Any:
        return _error(403, "Refused", str(exc))

    @app.errorhandler(redis.ResponseError)
    def _response(exc: Exception) -> Any:
        log.warning("Redis error on %s: %s", request.path, exc)
        return _error(502, "Redis answered with an error", str(exc))

    for status, title in (
        (400, "Bad request"),
        (403, "Refused"),
        (404, "Not found"),
        (405, "Not allowed"),
        (409, "Conflict"),
    ):

        def handler(exc: Any, status: int = status, title: str = title) -> Any:
            return _error(status, title, getattr(exc, "description", title))

        app.register_error_handler(status, handler)
