"""Pages rendered once per reading: each viewer still gets its own CSRF token and the
data's true age."""

import re
import time

from observer_support import fresh_get

from dashboard.keyid import encode_key
from dashboard.patterns.locks import Lock, lock_key

TOKEN = re.compile(r'"X-CSRF-Token": "([^"]+)"')
AGE = re.compile(r'data-as-of="([0-9.]+)" data-age-ms="(\d+)"')


def _cache(app):
    return app.extensions["redis_dashboard"].singleton("render_cache", dict)


def test_each_viewer_gets_its_own_token_from_one_rendering(make_app, r):
    Lock(r, "invoice", ttl=60).acquire()
    app = make_app(allow_writes=True, live_refresh_s=600)
    alice, bob = app.test_client(), app.test_client()
    first = fresh_get(alice, "/locks").get_data(as_text=True)
    hits = _cache(app).hits
    second = bob.get("/locks").get_data(as_text=True)
    assert _cache(app).hits == hits + 1  # bob's page came from the cache
    tokens = []
    for client, html in ((alice, first), (bob, second)):
        with client.session_transaction() as session:
            token = session["csrf_token"]
        assert set(TOKEN.findall(html)) == {token}
        assert f'name="csrf_token" value="{token}"' in html
        assert "\x00" not in html
        tokens.append(token)
    assert tokens[0] != tokens[1]
    # bob's token (from the cached page) is the one his POST must carry
    k = encode_key(lock_key("invoice").encode())
    ok = bob.post("/locks/release", data={"csrf_token": tokens[1], "k": k})
    assert ok.status_code == 200 and "Release" in ok.get_data(as_text=True)
    forged = bob.post("/locks/release", data={"csrf_token": tokens[0], "k": k})
    assert forged.status_code == 400


def test_a_cached_page_tells_the_data_age_at_answer_time(make_app, r):
    Lock(r, "invoice", ttl=60).acquire()
    app = make_app(live_refresh_s=600)
    web = app.test_client()
    first = fresh_get(web, "/locks").get_data(as_text=True)
    time.sleep(1.2)
    second = web.get("/locks").get_data(as_text=True)
    (as_of_1, age_1), (as_of_2, age_2) = AGE.search(first).groups(), AGE.search(second).groups()
    assert as_of_1 == as_of_2  # the same reading, served from the cache
    assert int(age_2) >= int(age_1) + 1000
    shown = re.search(r'<span class="age" data-of="[0-9.]+">([^<]+)</span>', second).group(1)
    assert shown.endswith(" s") and float(shown.split()[0]) >= 1.0


def test_a_new_reading_is_a_new_page(make_app, r):
    app = make_app(live_refresh_s=600)
    web = app.test_client()
    assert "invoice" not in fresh_get(web, "/locks").get_data(as_text=True)
    Lock(r, "invoice", ttl=60).acquire()
    assert "invoice" in fresh_get(web, "/locks").get_data(as_text=True)


def test_a_json_twin_is_serialized_once_per_reading_with_a_fresh_age(make_app, r):
    Lock(r, "invoice", ttl=60).acquire()
    app = make_app(live_refresh_s=600)
    web = app.test_client()
    first = fresh_get(web, "/locks.json").get_json()
    hits = _cache(app).hits
    time.sleep(0.3)
    second = web.get("/locks.json").get_json()
    assert _cache(app).hits == hits + 1  # the body came from the cache...
    assert second["freshness"]["age_ms"] >= first["freshness"]["age_ms"] + 250  # ...its age not
    assert {k: v for k, v in second.items() if k != "freshness"} == {
        k: v for k, v in first.items() if k != "freshness"
    }
    assert second["locks"][0]["resource"] == "invoice"
