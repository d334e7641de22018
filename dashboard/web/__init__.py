"""Flask app factory: one blueprint per view, thin views over the services."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask, Response, g, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from dashboard import __version__, deadline
from dashboard.config import Settings
from dashboard.connection import ConnectionConfigError, explain, mask_url
from dashboard.deadline import NOT_ANSWERING, DeadlineExceeded
from dashboard.gate import CommandRefused
from dashboard.inspect.errors import RedisUnavailable
from dashboard.pool import PoolExhausted
from dashboard.resources import resource_dir
from dashboard.targets import Target, from_urls, load_targets
from dashboard.web import filters, security
from dashboard.web import fleet as fleet_view
from dashboard.web.fleet import TargetPrefix
from dashboard.web.state import AppState, Fleet, fleet, state

log = logging.getLogger(__name__)


def _blueprints() -> list[Any]:
    """Each view's ``bp`` and its navigation label (``NAV``), in menu order."""
    from dashboard.web import audit, keyspace, keyview, live, overview, playground, pubsub, streams

    return [
        fleet_view,
        overview,
        keyspace,
        keyview,
        live.ratelimits,
        live.locks,
        audit,
        streams,
        pubsub,
        playground,
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
    _install_deadline(app, settings.request_timeout)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        """Browsers ask for it on every page and JSON twin: a 404 would be a console error."""
        reply = app.send_static_file("favicon.ico")
        reply.headers["Cache-Control"] = "public, max-age=86400"
        return reply

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


def _install_deadline(app: Flask, seconds: float) -> None:
    """Every request's Redis commands share one deadline (:mod:`dashboard.deadline`):
    a stalled server costs a page ``request_timeout``, not the sum of its commands'
    timeouts. Threads a request starts (scan jobs, tails) do not inherit it."""

    @app.before_request
    def _start() -> None:
        g.deadline = deadline.deadline(seconds)
        g.deadline.__enter__()

    @app.teardown_request
    def _end(_exc: BaseException | None) -> None:
        scope = g.pop("deadline", None)
        if scope is not None:
            scope.__exit__(None, None, None)


def _error(status: int, title: str, message: str) -> Response:
    """The documented ``{"error", "message"}`` on a JSON twin, the error page otherwise."""
    if request.path.endswith(".json"):
        return make_response(jsonify({"error": title, "message": message}), status)
    return make_response(render_template("error.html", title=title, message=message), status)


def _install_error_pages(app: Flask) -> None:
    @app.errorhandler(ConnectionConfigError)
    def _bad_url(exc: ConnectionConfigError) -> Any:
        return _error(503, "Bad Redis URL", str(exc))

    @app.errorhandler(RedisUnavailable)
    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_down(exc: Exception) -> Any:
        url = mask_url(state().settings.url)
        said = str(exc) if isinstance(exc, RedisUnavailable) else explain(exc)
        title = NOT_ANSWERING if NOT_ANSWERING in said else "Redis unreachable"
        return _error(503, title, f"{url}: {said}")

    @app.errorhandler(redis.AuthenticationError)
    def _auth(exc: Exception) -> Any:
        return _error(503, "Redis refused the credentials", str(exc))

    @app.errorhandler(DeadlineExceeded)
    def _not_answering(exc: DeadlineExceeded) -> Any:
        return _error(503, NOT_ANSWERING, str(exc))

    @app.errorhandler(PoolExhausted)
    def _busy(exc: PoolExhausted) -> Any:
        reply = _error(503, "Dashboard busy", str(exc))
        reply.headers["Retry-After"] = "1"
        return reply

    @app.errorhandler(CommandRefused)
    def _refused(exc: CommandRefused) -> Any:
        return _error(403, "Refused", str(exc))

    @app.errorhandler(redis.ResponseError)
    def _response(exc: Exception) -> Any:
        log.warning("Redis error on %s: %s", request.path, exc)
        return _error(502, "Redis answered with an error", str(exc))

    for status, title in ((400, "Bad request"), (404, "Not found"), (405, "Not allowed")):

        def handler(exc: Any, status: int = status, title: str = title) -> Any:
            return _error(status, title, getattr(exc, "description", title))

        app.register_error_handler(status, handler)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        """Any other HTTP error (413, 429, ...) in the same shape as ours."""
        if exc.code is None or exc.code < 400:
            return exc
        return _error(exc.code, exc.name, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        """A bug or an answer nobody foresaw: logged with its traceback, and still a
        documented ``{"error", "message"}`` body on a JSON twin (never an HTML page)."""
        log.exception("unexpected error on %s", request.path)
        message = (
            f"the dashboard failed on this request ({type(exc).__name__}); the details "
            "are in the server log"
        )
        try:
            return _error(500, "Internal error", message)
        except Exception:  # the error page itself failed: plain text, still no traceback
            log.exception("the error page failed too")
            return message + "\n", 500, {"Content-Type": "text/plain; charset=utf-8"}
