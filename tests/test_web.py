"""The dashboard shell: pages, JSON twins, errors, security (Flask test client)."""

import re

import pytest
from observer_support import wait_scan

from dashboard.keyid import encode_key

HTML_KEY = b"<img src=x onerror=alert(1)>"
BAD_UTF8 = b"bin:\xff\xfe:x"


def _wait_scan(web, timeout=20):
    data = wait_scan(web, timeout)
    assert data["scan"]["state"] == "done", data["cycle"]
    return data


def _plant(r):
    for i in range(50):
        r.set(f"user:{i}:name", "x" * i, ex=3600 if i % 2 else None)
        r.hset(f"cache:product:{i}", mapping={"a": 1})
    r.rpush("queue:jobs", *range(10))
    r.set(HTML_KEY, "<script>alert(2)</script>")
    r.set(BAD_UTF8, b"\x00\x01")


def test_healthz(web):
    assert web.get("/healthz").get_json() == {"status": "ok", "redis": "ok"}


def test_root_is_the_overview(web):
    root = web.get("/")
    assert root.status_code == 200 and "<h1>Server overview</h1>" in root.get_data(as_text=True)
    assert set(web.get("/index.json").get_json()) == set(web.get("/overview.json").get_json())


@pytest.mark.parametrize("path", ["/overview", "/keyspace"])
def test_every_page_has_a_json_twin(web, r, path):
    _plant(r)
    html = web.get(path)
    twin = web.get(path + ".json")
    assert html.status_code == 200 and html.mimetype == "text/html"
    assert twin.status_code == 200 and twin.mimetype == "application/json"


def test_overview_json_matches_server(web, r):
    _plant(r)
    data = web.get("/overview.json").get_json()
    assert data["version"] == r.info("server")["redis_version"]
    assert data["keyspace"]["total_keys"] == r.dbsize()
    assert data["memory"]["policy"] == r.config_get("maxmemory-policy")["maxmemory-policy"]


def test_keyspace_scan_rollup_and_drill_down(web, r):
    _plant(r)
    data = _wait_scan(web)
    names = {c["name"]: c for c in data["children"]}
    assert names["user"]["keys"] == 50
    assert names["user"]["ttl"]["with_ttl"] == 25
    assert names["cache"]["keys"] == 50
    assert data["totals"]["keys"] == r.dbsize()
    cache_id = names["cache"]["id"]
    drill = web.get(f"/keyspace.json?ns={cache_id}").get_json()
    assert drill["node"]["path"] == "cache"
    assert [c["path"] for c in drill["children"]] == ["cache:product"]
    html = web.get(f"/keyspace?ns={cache_id}").get_data(as_text=True)
    assert "cache:product" in html


def test_keyspace_sort_and_filter(web, r):
    _plant(r)
    _wait_scan(web)
    by_name = web.get("/keyspace.json?sort=name").get_json()["children"]
    assert [c["name"] for c in by_name] == sorted(c["name"] for c in by_name)
    only_hash = web.get("/keyspace.json?type=hash").get_json()["children"]
    assert [c["name"] for c in only_hash] == ["cache"]
    filtered = web.get("/keyspace.json?q=us*").get_json()["children"]
    assert [c["name"] for c in filtered] == ["user"]
    assert web.get("/keyspace.json?sort=nope").status_code == 400
    assert web.get("/keyspace.json?ns=bm9wZQ").status_code == 404


def test_keyspace_progress_fragment_asks_for_reload_when_done(web, r):
    _plant(r)
    _wait_scan(web)
    assert web.get("/keyspace/progress").headers.get("HX-Refresh") == "true"


def test_rescan_needs_csrf(web, r):
    _plant(r)
    _wait_scan(web)
    assert web.post("/keyspace/scan", data={"action": "rescan"}).status_code == 400
    web.get("/keyspace")  # gets a session with a token
    with web.session_transaction() as session:
        token = session["csrf_token"]
    r.set("user:new:name", "x")
    done = web.post("/keyspace/scan", data={"action": "rescan", "csrf_token": token})
    assert done.status_code == 302
    data = _wait_scan(web)
    assert data["totals"]["keys"] == r.dbsize()


def test_key_detail_escapes_html_and_bad_utf8(web, r):
    _plant(r)
    page = web.get(f"/key?k={encode_key(HTML_KEY)}").get_data(as_text=True)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>alert(2)" not in page
    twin = web.get(f"/key.json?k={encode_key(BAD_UTF8)}").get_json()
    assert twin["key"] == "bin:\\xff\\xfe:x"
    assert twin["type"] == "string"
    page = web.get(f"/key?k={encode_key(BAD_UTF8)}").get_data(as_text=True)
    assert "bin:\\xff\\xfe:x" in page


def test_key_detail_errors(web, r):
    assert web.get("/key").status_code == 400
    assert web.get("/key?k=***").status_code == 400
    assert web.get("/key.json?k=~" + "0" * 32).status_code == 404
    missing = web.get(f"/key.json?k={encode_key(b'nope')}").get_json()
    assert missing["exists"] is False


def test_one_megabyte_key_name(web, r):
    key = b"big:" + b"k" * (1024 * 1024)
    r.set(key, "v")
    data = _wait_scan(web)
    big = next(c for c in data["children"] if c["name"] == "big")
    (entry,) = big["top_bytes"]
    assert entry["id"].startswith("~")
    detail = web.get(f"/key.json?k={entry['id']}").get_json()
    assert detail["key_length"] == len(key)
    assert detail["exists"] is True


def test_security_headers(web):
    response = web.get("/overview")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    # No inline script anywhere in the page.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.get_data(as_text=True))


def test_password_never_shown(make_app, redis_server):
    app = make_app(url=f"redis://:hunter2@127.0.0.1:{redis_server.port}/0")
    web = app.test_client()
    for path in ("/overview", "/overview.json", "/healthz", "/keyspace"):
        assert b"hunter2" not in web.get(path).data


def test_unreachable_redis_is_a_message_not_a_crash(make_app):
    web = make_app(url="redis://127.0.0.1:1/0", connect_timeout=0.2).test_client()
    page = web.get("/overview")
    assert page.status_code == 503
    assert b"unreachable" in page.data.lower() or b"unavailable" in page.data.lower()
    assert web.get("/overview.json").get_json()["error"]
    assert "unreachable" in web.get("/healthz").get_json()["redis"]


def test_malformed_url_is_a_clear_error(make_app):
    web = make_app(url="localhost:6379").test_client()
    page = web.get("/overview.json")
    assert page.status_code == 503
    assert "not a Redis URL" in page.get_json()["message"]


def test_basic_auth_when_configured(make_app):
    web = make_app(username="admin", password="s3cret").test_client()
    assert web.get("/overview").status_code == 401
    assert web.get("/healthz").status_code == 200
    ok = web.get("/overview", headers={"Authorization": "Basic YWRtaW46czNjcmV0"})
    assert ok.status_code == 200


def test_healthz_names_no_address_or_reason(make_app):
    web = make_app(url="redis://:Ab3/xYz9@127.0.0.1:1/0", username="a", password="b").test_client()
    body = web.get("/healthz").get_json()
    assert body == {"status": "ok", "redis": "unreachable"}


def test_non_ascii_credentials_are_refused_not_crashed(make_app):
    import base64

    web = make_app(username="admin", password="pässwörd").test_client()
    bad = base64.b64encode("ü:x".encode()).decode()
    assert web.get("/overview", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    good = base64.b64encode("admin:pässwörd".encode()).decode()
    assert web.get("/overview", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert web.post("/keyspace/scan", headers={"X-CSRF-Token": "ü"}).status_code in (400, 401)


def test_password_in_query_string_is_not_shown(make_app, redis_server):
    web = make_app(url=f"redis://127.0.0.1:{redis_server.port}/0?password=").test_client()
    page = web.get("/overview").get_data(as_text=True)
    assert "?password=***" in page
