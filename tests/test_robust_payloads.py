"""Hostile values and messages: deeply nested JSON, huge payloads. One value never ends a
page or a live tail, and what one message costs the dashboard is bounded."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import pytest

from dashboard.inspect.live.tails import PAYLOAD_LIMIT, TailRegistry
from dashboard.keyid import encode_key
from dashboard.patterns.pubsub import Subscriber, decode_payload
from tests.demo_support import wait_for

NESTED = "[" * 3000 + "]" * 3000
OPEN_ONLY = "[" * 3000


@pytest.mark.parametrize("value", [NESTED, OPEN_ONLY, '{"a":' * 2000 + "1" + "}" * 2000])
def test_key_page_shows_deeply_nested_json_as_text(web, r, value):
    r.set("nested", value)
    reply = web.get("/key.json", query_string={"k": encode_key(b"nested"), "string_bytes": 65536})
    assert reply.status_code == 200, reply.get_data(as_text=True)[:300]
    preview = reply.get_json()["preview"]
    assert preview["available"] and preview["format"] == "text" and preview["json"] is None
    page = web.get("/key", query_string={"k": encode_key(b"nested"), "string_bytes": 65536})
    assert page.status_code == 200


def test_shallow_json_is_still_pretty_printed(web, r):
    r.set("doc", '{"a": [1, {"b": "[[[not structure]]]"}]}')
    preview = web.get("/key.json", query_string={"k": encode_key(b"doc")}).get_json()["preview"]
    assert preview["format"] == "json" and '"b": "[[[not structure]]]"' in preview["json"]


def test_decode_payload_gives_nested_json_back_as_text():
    assert decode_payload(NESTED.encode()) == NESTED


def test_a_nested_message_does_not_end_a_subscriber(r, make_client):
    seen = []
    with Subscriber(make_client(), channels=["c"], handler=seen.append) as sub:
        assert sub.wait_subscribed(10)
        r.publish("c", NESTED)
        r.publish("c", '{"after": 1}')
        wait_for(lambda: len(seen) == 2)
        assert sub.error is None and sub.alive
    assert seen[0].data == NESTED and seen[1].data == {"after": 1}


def test_a_nested_message_does_not_end_a_tail(r, make_client):
    registry = TailRegistry(make_client(), max_tails=1, buffer=10)
    tail = registry.open(channel="c")
    try:
        assert tail.subscriber.wait_subscribed(10)
        r.publish("c", NESTED)
        r.publish("c", "after")
        wait_for(lambda: tail.received == 2)
        items = tail.take(timeout=0)
        assert [m.text for m in items] == [NESTED[:PAYLOAD_LIMIT], "after"]
        assert not tail.failed and tail.subscriber.alive
    finally:
        registry.close_all()


def test_a_huge_json_message_costs_a_tail_little_more_than_its_bytes(r, make_client):
    """Parsing 8 MB of JSON numbers allocates ~60 MB of Python objects (81 MB peak in
    all, measured); a tail keeps PAYLOAD_LIMIT bytes of text, so it must not parse at
    all. What is left is redis-py reading the reply (~4 copies with its pure-Python
    parser: 34 MB measured), transient."""
    size = len("[" + "0.5," * 2_000_000 + "0.5]")
    publisher = (  # another process: only the tail's side is measured here
        "import redis, sys; redis.Redis(port=int(sys.argv[1]))"
        ".publish('big', '[' + '0.5,' * 2_000_000 + '0.5]')"
    )
    registry = TailRegistry(make_client(), max_tails=1, buffer=10)
    tail = registry.open(channel="big")
    try:
        assert tail.subscriber.wait_subscribed(10)
        tracemalloc.start()
        port = r.connection_pool.connection_kwargs["port"]
        subprocess.run([sys.executable, "-c", publisher, str(port)], check=True, timeout=60)
        wait_for(lambda: tail.received == 1)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        registry.close_all()
    assert peak < 6 * size, f"peak {peak / 1e6:.0f} MB for {size / 1e6:.0f} MB"
    assert tail.take(timeout=0)[0].length == size


# --- one key page is bounded whatever limit x element_bytes asks for -----------------------

BIG = {"limit": 1000, "element_bytes": 65536}


def _pages(web, key: bytes, cursor_param: str, **params):
    """Every page of a key's preview, following ``next``; yields (preview, body sizes)."""
    from dashboard.inspect.keyspace.preview import PAGE_TEXT_BYTES

    query = {"k": encode_key(key), **BIG, **params}
    for _ in range(200):
        reply = web.get("/key.json", query_string=query)
        html = web.get("/key", query_string=query)
        assert reply.status_code == html.status_code == 200
        # text budget plus escaping and markup; never hundreds of MB
        assert len(reply.data) < 3 * PAGE_TEXT_BYTES and len(html.data) < 3 * PAGE_TEXT_BYTES
        preview = reply.get_json()["preview"]
        yield preview, html.get_data(as_text=True)
        if preview["next"] is None:
            return
        query[cursor_param] = preview["next"]
    raise AssertionError("paging did not end")


def test_a_hash_of_big_fields_pages_within_the_budget_and_misses_nothing(web, r):
    fields = {f"f{i:03}".encode() + b"x" * 40_000: b"v" * 40_000 for i in range(300)}
    pipe = r.pipeline(transaction=False)
    for field, value in fields.items():
        pipe.hset("wide", field, value)
    pipe.execute()
    seen, notes = set(), []
    for preview, html in _pages(web, b"wide", "cursor"):
        assert preview["element_bytes"] < BIG["element_bytes"]  # cut to fit the page
        seen |= {item["field"]["text"][:4] for item in preview["items"]}
        assert all(item["field"]["length"] == 40_004 for item in preview["items"])
        notes.append(preview["page_note"])
        assert preview["page_note"] in html
    assert seen == {f"f{i:03}" for i in range(300)}
    assert all(notes)


@pytest.mark.parametrize("kind", ["list", "zset", "stream"])
def test_ordered_values_page_in_order_within_the_budget(web, r, kind):
    pipe = r.pipeline(transaction=False)
    for i in range(40):
        element = f"{i:03}".encode() + b"y" * 300_000
        if kind == "list":
            pipe.rpush("big", element)
        elif kind == "zset":
            pipe.zadd("big", {element: i})
        else:
            pipe.xadd("big", {"n": element}, id=f"{i + 1}-0")
    pipe.execute()
    param = {"list": "offset", "zset": "offset", "stream": "start"}[kind]
    order, capped = [], False
    for preview, _html in _pages(web, b"big", param):
        capped |= preview["read_capped"]
        for item in preview["items"]:
            element = (
                item["fields"][0]["value"]
                if kind == "stream"
                else item.get("value", item.get("member"))
            )
            order.append(element["text"][:3])
    assert order == [f"{i:03}" for i in range(40)]
    assert capped  # 12 MB of elements do not fit one page's read budget


def test_a_page_of_huge_list_elements_reads_only_its_budget(web, r):
    """64 elements of 1 MiB: one page reads ~8 MiB of them, not all 64 MiB."""
    pipe = r.pipeline(transaction=False)
    for i in range(64):
        pipe.rpush("huge", f"{i:03}".encode() + b"z" * (1024 * 1024))
    pipe.execute()
    query = {"k": encode_key(b"huge"), **BIG}
    tracemalloc.start()
    try:
        preview = web.get("/key.json", query_string=query).get_json()["preview"]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert preview["read_capped"] and 0 < len(preview["items"]) < 64
    assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
