"""The demo's fakeredis stand-in (used when redis-server is not installed): every page
works on it, and what it cannot tell is shown as unavailable, never as a made-up zero."""

from __future__ import annotations

import pytest
import redis

from dashboard.demo.runner import fake_backend
from dashboard.web import create_app


@pytest.fixture
def stand_in():
    backend = fake_backend("a test")
    yield backend.target
    backend.stop()


@pytest.fixture
def writer(stand_in):
    client = redis.Redis.from_url(stand_in.url)
    yield client
    client.close()


def _app(url: str, **settings):
    app = create_app({"url": url, **settings})
    app.config["TESTING"] = True
    return app


def test_overview_leaves_the_pooled_connection_protocol_alone(stand_in, writer):
    """Overview asks HELLO (INFO is missing); later pages reuse that very connection."""
    writer.xadd("orders", {"item": "1"})
    writer.xgroup_create("orders", "billing", id="0")
    writer.xreadgroup("billing", "c1", {"orders": ">"}, count=1)
    writer.zadd("ratelimit:api", {"a": 1})
    web = _app(stand_in.url, pool_size=1).test_client()  # one connection: all share it
    overview = web.get("/overview.json")
    assert overview.status_code == 200
    assert overview.get_json()["software"] == "fakeredis"
    for path in ("/streams.json", "/ratelimits.json", "/locks.json", "/overview.json"):
        reply = web.get(path)
        assert reply.status_code == 200, (path, reply.get_data(as_text=True)[:300])
    streams = web.get("/streams.json").get_json()["streams"]
    assert [g["name"] for s in streams for g in s["groups"]] == ["billing"]


def _scanned(web, path="/keyspace.json"):
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        data = web.get(path).get_json()
        if data["node"] is not None:
            return data
        time.sleep(0.05)
    raise AssertionError("the keyspace scan did not finish")


def test_keyspace_says_memory_is_unknown_without_memory_usage(stand_in, writer):
    for i in range(30):
        writer.set(f"cache:product:{i}", "x" * 100)
        writer.hset(f"session:{i}", mapping={"user": str(i)})
    web = _app(stand_in.url).test_client()
    data = _scanned(web)
    node = data["node"]
    assert node["keys"] == 60
    assert node["bytes"] is None and "MEMORY" in node["bytes_unavailable"]
    assert all(c["bytes"] is None and c["share"] is None for c in data["children"])
    assert all(t["bytes"] is None for t in node["types"].values())
    assert data["totals"]["bytes"] is None
    html = web.get("/keyspace").get_data(as_text=True)
    assert "unavailable: " + node["bytes_unavailable"] in html
    assert "0 B" not in html and "100 %" not in html and "100.0 %" not in html
