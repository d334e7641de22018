"""CSRF, basic auth and response headers (dashboard/web/security.py), without Redis.

A tiny Flask app gets the same ``install`` the dashboard uses, so each check is about
the guard itself: a forged, stale or foreign token is refused on every unsafe method,
with auth off (where nothing else would answer first) and with auth on.
"""

import base64

import pytest
from flask import Flask, g

from dashboard.web import security
from dashboard.web.rendercache import CSRF_PLACEHOLDER


def _app(username: str = "", password: str = "") -> Flask:
    app = Flask(__name__)
    app.secret_key = "test-secret"
    app.config["TESTING"] = True
    security.install(app, username, password)

    @app.route("/token")
    def token():
        return security.csrf_token()

    @app.route("/cached-token")
    def cached_token():
        g.render_for_cache = True
        return security.csrf_token()

    @app.route("/act", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    def act():
        return "done"

    @app.route("/healthz", endpoint="overview.healthz")
    def healthz():
        return "ok"

    return app


CSRF_MESSAGE = "missing or wrong CSRF token: reload the page and try again"


def _basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def client():
    return _app().test_client()


def _token(client) -> str:
    return client.get("/token").get_data(as_text=True)


def test_the_right_token_passes_in_the_form_or_the_header(client):
    token = _token(client)
    assert client.post("/act", data={"csrf_token": token}).status_code == 200
    assert client.post("/act", headers={"X-CSRF-Token": token}).status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_forged_token_is_refused_without_auth(client, method):
    token = _token(client)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")  # one character off
    send = getattr(client, method)
    for bad in (forged, "x", token + "x", token[:-1], "ü" * 5):
        assert send("/act", data={"csrf_token": bad}).status_code == 400, bad
        assert send("/act", headers={"X-CSRF-Token": bad}).status_code == 400, bad
    refused = send("/act")  # none at all
    assert refused.status_code == 400
    assert CSRF_MESSAGE in refused.get_data(as_text=True)
    assert send("/act", data={"csrf_token": token}).status_code == 200


def test_a_token_from_another_session_is_refused():
    app = _app()
    mine, theirs = app.test_client(), app.test_client()
    their_token = _token(theirs)
    _token(mine)
    assert _token(mine) != their_token
    assert mine.post("/act", data={"csrf_token": their_token}).status_code == 400


def test_no_session_token_means_every_post_is_refused(client):
    for sent in ("anything", "", "None", "null"):  # "None": str() of a missing token
        assert client.post("/act", data={"csrf_token": sent}).status_code == 400
        assert client.post("/act", headers={"X-CSRF-Token": sent}).status_code == 400
    # the placeholder of the render cache is never a valid token
    assert client.post("/act", data={"csrf_token": CSRF_PLACEHOLDER}).status_code == 400


def test_the_token_is_stable_within_a_session_and_unguessable(client):
    first = _token(client)
    assert _token(client) == first
    assert len(base64.urlsafe_b64decode(first + "=")) == 32  # 256 random bits
    assert client.get("/cached-token").get_data(as_text=True) == CSRF_PLACEHOLDER
    assert _token(client) == first  # rendering for the cache did not replace it


def test_safe_methods_need_no_token(client):
    for method in ("get", "head", "options"):
        assert getattr(client, method)("/act").status_code == 200


def test_with_auth_a_forged_token_is_still_refused():
    client = _app("admin", "s3cret").test_client()
    creds = _basic("admin", "s3cret")
    token = client.get("/token", headers=creds).get_data(as_text=True)
    assert client.post("/act", headers=creds, data={"csrf_token": "forged"}).status_code == 400
    assert client.post("/act", headers=creds, data={"csrf_token": token}).status_code == 200
    assert client.post("/act", data={"csrf_token": token}).status_code == 401  # auth first


@pytest.mark.parametrize(
    ("user", "password"),
    [("admin", "wrong"), ("other", "s3cret"), ("admin", ""), ("", "s3cret"), ("admin", "s3cre")],
)
def test_basic_auth_refuses_any_wrong_part(user, password):
    client = _app("admin", "s3cret").test_client()
    refused = client.get("/act", headers=_basic(user, password))
    assert refused.status_code == 401
    assert refused.get_data() == b"authentication required\n"
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="redis-dashboard", charset="UTF-8"'
    assert client.get("/act", headers=_basic("admin", "s3cret")).status_code == 200


def test_basic_auth_refuses_other_schemes_and_spares_healthz():
    client = _app("admin", "s3cret").test_client()
    assert client.get("/act").status_code == 401
    assert client.get("/act", headers={"Authorization": "Bearer s3cret"}).status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.head("/act").status_code == 401


def test_no_auth_configured_lets_everyone_read(client):
    assert client.get("/act").status_code == 200
    assert client.get("/act", headers=_basic("x", "y")).status_code == 200


def test_every_response_carries_the_strict_headers(client):
    for response in (client.get("/act"), client.post("/act"), client.get("/missing")):
        headers = response.headers
        assert headers["Content-Security-Policy"] == security.CONTENT_SECURITY_POLICY
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["X-Frame-Options"] == "DENY"
    directives = dict(
        part.strip().split(" ", 1) for part in security.CONTENT_SECURITY_POLICY.split(";")
    )
    assert directives["script-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'" and directives["form-action"] == "'self'"
    assert directives["style-src"] == "'self'" and directives["base-uri"] == "'none'"


def test_a_page_that_sets_its_own_policy_keeps_it():
    app = _app()

    @app.route("/own")
    def own():
        return "x", 200, {"Content-Security-Policy": "default-src 'none'"}

    assert app.test_client().get("/own").headers["Content-Security-Policy"] == "default-src 'none'"
