"""CSRF on every POST, basic auth when configured, and strict response headers."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Flask, Response, abort, g, request, session

from dashboard.web.rendercache import CSRF_PLACEHOLDER

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

# No inline scripts anywhere: a key name that is HTML cannot run even if it slipped
# past escaping. htmx's indicator styles are turned off in base.html so no
# inline <style> is needed either.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII text (compare_digest on str
    raises TypeError for it, which would be a 500 instead of a refusal)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def csrf_token() -> str:
    """The session's CSRF token (made on first use); a placeholder while a page is rendered
    for the render cache (the real token is put in when the page is served)."""
    if g.get("render_for_cache"):
        return CSRF_PLACEHOLDER
    token = session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def _check_csrf() -> None:
    expected = session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    if not expected or not sent or not _same(str(expected), str(sent)):
        abort(400, description="missing or wrong CSRF token: reload the page and try again")


def _check_auth(username: str, password: str) -> Response | None:
    auth = request.authorization
    if (
        auth is not None
        and auth.type == "basic"
        and _same(auth.username or "", username)
        and _same(auth.password or "", password)
    ):
        return None
    return Response(
        "authentication required\n",
        401,
        {"WWW-Authenticate": 'Basic realm="redis-dashboard", charset="UTF-8"'},
    )


def install(app: Flask, username: str, password: str) -> None:
    """Wire auth, CSRF and headers into ``app``."""

    @app.before_request
    def _guard() -> Any:
        if username and request.endpoint != "overview.healthz":
            refused = _check_auth(username, password)
            if refused is not None:
                return refused
        if request.method not in {"GET", "HEAD", "OPTIONS"}:
            _check_csrf()
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    app.jinja_env.globals["csrf_token"] = csrf_token
