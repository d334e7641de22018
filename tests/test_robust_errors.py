"""Whatever fails, a JSON twin answers JSON and an HTML page answers the error page."""

from __future__ import annotations

import pytest


@pytest.fixture
def app(make_app):
    app = make_app()

    def explode():
        raise RuntimeError("a bug nobody foresaw")

    def too_deep():
        def dive(n):
            return dive(n + 1)

        return dive(0)

    for rule, view in (("/explode", explode), ("/explode.json", explode), ("/deep.json", too_deep)):
        app.add_url_rule(rule, rule, view)
    return app


@pytest.mark.parametrize("path", ["/explode.json", "/deep.json"])
def test_unexpected_error_on_a_json_twin_is_json(app, path):
    reply = app.test_client().get(path)
    assert reply.status_code == 500
    assert reply.mimetype == "application/json"
    body = reply.get_json()
    assert set(body) == {"error", "message"}
    assert "nobody foresaw" not in body["message"]  # details go to the log, not the page


def test_unexpected_error_on_a_page_is_the_error_page(app):
    reply = app.test_client().get("/explode")
    assert reply.status_code == 500
    assert reply.mimetype == "text/html"
    assert "Internal error" in reply.get_data(as_text=True)


def test_other_http_errors_on_json_twins_are_json(app):
    web = app.test_client()
    too_big = web.post(
        "/stream/action.json",
        data=b"x=" + b"y" * (3 * 1024 * 1024),
        content_type="application/x-www-form-urlencoded",
    )
    assert too_big.status_code == 413
    assert too_big.mimetype == "application/json"
    assert set(too_big.get_json()) == {"error", "message"}
    assert web.get("/no-such-page.json").get_json()["error"] == "Not found"
