"""The demo shop, its traffic simulator and the demo's backends."""

import socket

import pytest
import redis
from demo_support import QUICK_SHOP, wait_for

from dashboard.demo.runner import DemoError, start_backend
from dashboard.demo.shop import PRODUCTS, ApiRateLimited, FencedLedger, Shop, ShopConfig, StaleFence
from dashboard.demo.simulator import MAX_THREADS, Knobs, Simulator
from dashboard.demo.target import DemoRefused, DemoTarget
from dashboard.patterns.leaderboard import Leaderboard


@pytest.fixture
def shop(r, redis_url, make_client):
    shop = Shop(DemoTarget(redis_url, "redis-server"), make_client(), QUICK_SHOP)
    yield shop
    shop.stop()


def test_checkout_pays_under_a_fenced_lock_and_the_order_is_fulfilled(shop, r):
    shop.start()
    sid = shop.login("ana")
    shop.add_to_cart(sid, 2, 3)
    order_id = shop.checkout(sid)
    assert order_id and r.xlen("shop:orders") == 1
    assert shop.sessions.get(sid).data["cart"] == []
    assert shop.ledger.charges == 1 and int(r.get("lock:{payment:ana}:fence")) == 1
    board = shop.best_sellers()
    wait_for(lambda: board.score(PRODUCTS[2]["name"]) == 3, what="fulfilment")
    wait_for(lambda: shop.counters.snapshot().get("notifications"), what="notification")
    assert shop.notifications[-1]["data"] == {"order": order_id, "status": "shipped"}
    assert r.xpending("shop:orders", "fulfillment")["pending"] == 0
    assert shop.checkout(sid) is None  # empty cart: nothing to pay


def test_catalog_reads_hit_the_database_once(shop):
    shop.product(1)
    shop.product(1)
    assert shop.counters.snapshot()["db_queries"] == 1
    assert shop.cache.stats()["hits"] == 1


def test_api_answers_429_past_the_per_user_limit(r, redis_url):
    config = ShopConfig(api_limit=5, api_window_s=60, db_latency_s=0)
    shop = Shop(DemoTarget(redis_url, "redis-server"), r, config)
    for _ in range(5):
        shop.api_call("bob")
    with pytest.raises(ApiRateLimited) as denied:
        shop.api_call("bob")
    assert not denied.value.decision.allowed
    shop.api_call("carol")  # per user
    assert shop.counters.snapshot() == {"api_allowed": 6, "api_denied": 1}


def test_ledger_refuses_a_lower_fence():
    ledger = FencedLedger()
    ledger.charge("acct", 2, 100)
    with pytest.raises(StaleFence, match="fence 1 < 2"):
        ledger.charge("acct", 1, 100)
    ledger.charge("acct", 3, 100)
    assert (ledger.charges, ledger.refused) == (2, 1)


def test_unique_visitors_count_distinct_ids(shop):
    for visitor in ["a", "b", "a", "c"]:
        shop.visit(visitor)
    assert shop.unique_visitors() == 3


def test_simulator_makes_traffic_in_every_family_and_stops(shop, r):
    sim = Simulator(shop, Knobs(users=10, rps=200, burst_every_s=0.5, burst_size=80), seed=7)
    sim.start()
    try:
        assert len([t for t in sim._threads if t.is_alive()]) == MAX_THREADS
        families = ["cache:entry:*", "session:*", "ratelimit:shop-api:*", "lock:{payment:*",
                    "hll:{visitors}:*", "leaderboard:best-sellers:*"]  # fmt: skip

        def all_present():
            return all(next(r.scan_iter(match=f, count=1000), None) for f in families)

        wait_for(all_present, 30, 0.1, "keys of every family")
        first = r.xlen("shop:orders")
        wait_for(lambda: r.xlen("shop:orders") > first, 30, 0.1, "the order stream to grow")
        wait_for(lambda: sim.bursts > 0 and shop.counters.snapshot().get("api_denied"), 30)
    finally:
        sim.stop()
    assert not sim.running and sim.stats()["threads"] == 0
    assert sim.error_count == 0, list(sim.errors)


def test_simulator_knobs_are_checked_and_bounded(shop):
    with pytest.raises(ValueError, match="users"):
        Knobs(users=0).checked()
    with pytest.raises(ValueError, match="requests per second"):
        Knobs(rps=10_000).checked()
    sim = Simulator(shop, Knobs(users=50))
    sim._sessions.update({"user-3": "x", "user-40": "y"})
    knobs = sim.update(users=10, slow_consumer=True, slow_s=0.2)
    assert knobs.users == 10 and list(sim._sessions) == ["user-3"]
    slow = {c["name"]: c["slow_s"] for c in shop.fulfillment.stats()}
    assert slow == {"worker-1": 0.0, "worker-2": 0.0, "worker-3": 0.2}
    with pytest.raises(ValueError):
        sim.update(burst_size=0)
    assert sim.knobs.users == 10  # a refused update changes nothing


def test_url_backend_needs_allow_writes(redis_url):
    with pytest.raises(DemoError, match="--allow-writes"):
        start_backend(redis_url, allow_writes=False)
    backend = start_backend(redis_url, allow_writes=True)
    assert backend.target.kind == "external" and backend.target.prefix == "demo:"
    backend.stop()


def test_a_redis_server_that_cannot_start_falls_back_to_fakeredis(tmp_path):
    backend = start_backend(binary=str(tmp_path / "no-redis-server"))
    try:
        assert backend.target.kind == "fakeredis"
        assert "redis-server did not start" in backend.target.notes[0]
        assert redis.Redis.from_url(backend.target.url).ping()
    finally:
        backend.stop()


def test_fakeredis_backend_serves_the_shop_and_stops(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    backend = start_backend()
    target = backend.target
    port = redis.Redis.from_url(target.url).connection_pool.connection_kwargs["port"]
    try:
        assert target.kind == "fakeredis" and "fakeredis" in target.notes[0]
        assert target.missing == ("INFO", "MEMORY", "OBJECT", "CONFIG", "SLOWLOG")
        client = target.client()
        shop = Shop(target, client, QUICK_SHOP).start()
        sid = shop.login("dan")
        shop.add_to_cart(sid, 1)
        shop.checkout(sid)
        board = Leaderboard(client, "best-sellers", period=shop.today())
        wait_for(lambda: board.score(PRODUCTS[1]["name"]) == 1, what="fulfilment on fakeredis")
        shop.stop()
        client.close()
    finally:
        backend.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_target_names_and_refusals():
    own = DemoTarget("redis://127.0.0.1:1/0", "redis-server")
    ext = DemoTarget("redis://:secret@example:6379/0", "external", writes=False)
    assert own.name("cache") == "cache" and ext.name("cache") == "demo:cache"
    assert own.limiter("api") == "api" and ext.limiter("api") == "demo.api"
    assert "secret" not in ext.label and "secret" not in str(ext.public())
    with pytest.raises(DemoRefused, match="--allow-writes"):
        ext.check_writes("plant")
    with pytest.raises(DemoRefused, match="whole server"):
        ext.check_owned("KEYS")
    own.check_owned("KEYS")
    with pytest.raises(ValueError):
        DemoTarget("redis://x", "cluster")
