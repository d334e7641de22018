"""/keys and /search: find keys by glob and type, page by page, bounded per request."""

import pytest

from dashboard.inspect.keyspace.browse import (
    BrowseError,
    BrowseQuery,
    browse,
    format_cursor,
    parse_cursor,
)
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.keyid import encode_key

BINARY = b"bin:\xff\xfe<b>"


def _plant(r, users=300):
    pipe = r.pipeline(transaction=False)
    for i in range(users):
        pipe.set(f"user:{i}:profile", "x" * (i % 50))
    pipe.hset("user:42:settings", mapping={"a": 1, "b": 2})
    pipe.set("user:42:session", "s", ex=300)
    pipe.set("rootkey", "1")
    pipe.set("42:idfirst", "1")
    pipe.set(BINARY, "v")
    pipe.execute()


def _walk(fetch, first):
    pages, keys, url = [], [], first
    while True:
        data = fetch(url)
        pages.append(data)
        keys += [k["key"] for k in data["keys"]]
        if not data["next"]:
            return pages, keys
        url = first + f"&cursor={data['next']}&seen={data['examined_total']}"


def test_match_lists_the_key_with_type_ttl_memory_and_length(web, r):
    _plant(r)
    data = web.get("/keys.json?match=user:42:*").get_json()
    by_key = {k["key"]: k for k in data["keys"]}
    assert set(by_key) >= {"user:42:profile", "user:42:settings", "user:42:session"}
    assert by_key["user:42:profile"]["type"] == "string"
    assert by_key["user:42:profile"]["ttl_ms"] == -1
    assert 0 < by_key["user:42:session"]["ttl_ms"] <= 300_000
    assert by_key["user:42:settings"] == {**by_key["user:42:settings"], "type": "hash", "count": 2}
    assert by_key["user:42:profile"]["bytes"] > 0
    assert by_key["user:42:profile"]["name"] == "user:42:profile"
    assert data["complete"] is True and data["next"] is None and data["dbsize"] == r.dbsize()


@pytest.mark.parametrize(("limit", "budget"), [(7, 50), (100, 20_000), (1, 10)])
def test_paging_to_the_end_lists_every_matching_key_once(make_app, r, limit, budget):
    _plant(r)
    client = make_app(browse_scan_keys=budget, scan_count=40).test_client()
    pages, keys = _walk(
        lambda u: client.get(u).get_json(), f"/keys.json?match=user:4*&limit={limit}"
    )
    expected = {k.decode() for k in r.scan_iter(match="user:4*", count=1000)}
    assert set(keys) == expected and len(keys) == len(expected)
    for page in pages:  # bounded per request: examined within budget + one SCAN's COUNT
        assert page["examined"] <= budget + 40
        assert page["scan_calls"] >= 1
    assert pages[-1]["complete"] and pages[-1]["stopped"] == "end"
    assert pages[-1]["examined_total"] == sum(p["examined"] for p in pages)


def test_type_filter_and_root_scope(web, r):
    _plant(r)
    hashes = web.get("/keys.json?match=user:*&type=hash").get_json()
    assert [k["key"] for k in hashes["keys"]] == ["user:42:settings"]
    root = web.get("/keys.json?scope=(root)").get_json()
    assert sorted(k["key"] for k in root["keys"]) == ["42:idfirst", "rootkey"]


def test_other_database(make_app, redis_server, r):
    other = type(r)(port=redis_server.port, db=3)
    other.set("only:in:three", "x")
    try:
        client = make_app().test_client()
        assert client.get("/keys.json?match=only:*").get_json()["keys"] == []
        data = client.get("/keys.json?match=only:*&db=3").get_json()
        assert [k["key"] for k in data["keys"]] == ["only:in:three"] and data["db"] == 3
        page = client.get("/key/only:in:three?db=3").get_data(as_text=True)
        assert 'id="key-type">string<' in page
        assert client.get("/keys.json?db=x").status_code == 400
    finally:
        other.flushdb()
        other.close()


def test_bad_input_is_a_clear_400(web, r):
    for query in (
        "cursor=abc",
        "cursor=1;2",
        "limit=0",
        "limit=5000",
        "type=<b>",
        "scope=x",
        "match=" + "a" * 2000,
    ):
        answer = web.get(f"/keys.json?{query}")
        assert answer.status_code == 400, query
        assert answer.get_json()["message"]


def test_cursor_tokens_round_trip_and_refuse_foreign_nodes():
    nodes = ["10.0.0.1:7000", "10.0.0.2:7000"]
    walk = {"10.0.0.1:7000": 5, "10.0.0.2:7000": 0}
    assert parse_cursor(format_cursor(walk, nodes), nodes) == walk
    assert parse_cursor("", nodes) == dict.fromkeys(nodes, 0)
    assert format_cursor({}, nodes) is None
    with pytest.raises(BrowseError, match="does not belong"):
        parse_cursor("10.9.9.9:7000=5", nodes)
    assert parse_cursor("17", ["only:1"]) == {"only:1": 17}


def test_hostile_names_are_escaped_and_linked(web, r):
    _plant(r)
    html = web.get("/keys?match=bin:*").get_data(as_text=True)
    assert "<b>" not in html.split('id="keys"')[1] and "&lt;b&gt;" in html
    assert f"/key?k={encode_key(BINARY)}" in html
    data = web.get("/keys.json?match=bin:*").get_json()
    assert data["keys"][0]["key"] == "bin:\\xff\\xfe<b>" and data["keys"][0]["name"] is None


def test_the_service_stays_within_its_budget(r):
    _plant(r, users=2000)
    query = BrowseQuery(match="nomatch:*", limit=10, budget=500)
    page = browse(r, query, ScanOptions(max_count=100, min_count=10, start_count=10))
    assert page["keys"] == [] and page["stopped"] == "budget"
    assert page["examined"] <= 500 + 100 and page["next"]


@pytest.mark.parametrize(
    ("q", "where"),
    [
        ("user:42:profile", "/key/user:42:profile"),
        ("user:4*", "/keys?match=user:4*"),
        ("nope", "/keys?match=nope*&missing=nope"),
        ("we*", "/keys?match=we*"),
    ],
)
def test_search_opens_a_key_or_lists_a_glob(web, r, q, where):
    _plant(r)
    answer = web.get("/search", query_string={"q": q})
    assert answer.status_code == 302
    assert answer.headers["Location"].replace("%2A", "*").replace("%3A", ":") == where


def test_search_for_a_name_with_glob_characters_escapes_them(web, r):
    answer = web.get("/search", query_string={"q": "no[such"})
    assert answer.headers["Location"].startswith("/keys?match=no")  # a glob: listed


@pytest.mark.parametrize(
    "key", [b"user:42:profile", b"a b/c", b"x//y", b"100%", "café:1".encode(), b"q?a#b"]
)
def test_readable_key_urls_open_the_key(web, r, key):
    r.set(key, "v")
    from urllib.parse import quote

    page = web.get("/key/" + quote(key.decode(), safe="/:"))
    assert page.status_code == 200
    assert 'id="key-type">string<' in page.get_data(as_text=True)


def test_links_use_readable_urls_for_text_and_addresses_for_the_rest(web, r):
    _plant(r)
    r.set(b"a/../b", "v")
    html = web.get("/keys?match=user:42:*").get_data(as_text=True)
    assert 'href="/key/user:42:profile"' in html
    html = web.get("/keys?match=a/*").get_data(as_text=True)
    assert f'href="/key?k={encode_key(b"a/../b")}"' in html
    html = web.get("/keys?match=bin:*").get_data(as_text=True)
    assert f'href="/key?k={encode_key(BINARY)}"' in html
