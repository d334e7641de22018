"""The playground's cards through the web app, on a private real redis-server."""

import fnmatch
import re

import pytest
import redis
from demo_support import (
    QUICK_CARDS,
    QUICK_SHOP,
    close_playground,
    csrf,
    finished,
    run_card,
    wait_for,
)

from dashboard.demo import antipatterns
from dashboard.demo.runner import EMBEDDED_ARGS
from dashboard.demo.target import DemoRefused, DemoTarget
from dashboard.inspect.audit import run_audit
from dashboard.web import create_app

PATTERN_MODULES = {
    "dashboard.patterns.cache",
    "dashboard.patterns.sessions",
    "dashboard.patterns.ratelimit",
    "dashboard.patterns.locks",
    "dashboard.patterns.pubsub",
    "dashboard.patterns.streams",
    "dashboard.patterns.leaderboard",
    "dashboard.patterns.counters",
}


def _app(url, target=None, allow_writes=True):
    app = create_app({"url": url, "allow_writes": allow_writes})
    app.config.update(TESTING=True, DEMO_CARD_CONFIG=QUICK_CARDS, DEMO_SHOP_CONFIG=QUICK_SHOP)
    if target is not None:
        app.config["DEMO_TARGET"] = target
    return app


@pytest.fixture
def demo(private_server):
    """The demo's playground on a server of its own (plants change server config)."""
    server = private_server(*EMBEDDED_ARGS)
    app = _app(server.url, DemoTarget(server.url, "redis-server"))
    web = app.test_client()
    client = redis.Redis(port=server.port)
    yield web, client
    close_playground(app)
    client.close()


def test_one_card_per_pattern_with_a_link_to_its_view(demo):
    web, _ = demo
    data = web.get("/playground.json").get_json()
    assert set(data) == {"target", "simulator", "shop", "cards"}
    assert data["target"]["kind"] == "redis-server" and data["target"]["writes"]
    assert {card["pattern"] for card in data["cards"]} >= PATTERN_MODULES
    for card in data["cards"]:
        assert card["actions"] and card["links"], card["id"]
        assert card["outcome"]["state"] == "idle"
    links = {card["id"]: [link["href"] for link in card["links"]] for card in data["cards"]}
    assert links["ratelimit"][0].startswith("/ratelimits?q=")
    assert links["locks"][0].startswith("/locks?q=payment")
    assert links["pubsub"][0].startswith("/pubsub?channel=shop%3Anotifications")
    assert "/audit" in links["antipatterns"]
    html = web.get("/playground").get_data(as_text=True)
    assert html.count('class="panel card"') == len(data["cards"])
    assert "Playground" in html


@pytest.mark.parametrize("algorithm", ["sliding", "fixed"])
def test_burst_of_150_at_100_allows_exactly_100(demo, algorithm):
    web, client = demo
    status, outcome = run_card(web, "ratelimit", "burst", csrf(web), algorithm=algorithm)
    assert status == 200 and outcome["state"] == "done"
    result = outcome["result"]
    assert (result["allowed"], result["denied"], result["first_denied"]) == (100, 50, 101)
    assert client.exists(result["key"])  # left for /ratelimits to show, blocked
    assert "100 allowed, 50 denied" in outcome["summary"]


def test_burst_card_renders_its_numbers_for_htmx(demo):
    web, _ = demo
    reply = web.post(
        "/playground/ratelimit/burst", data={"csrf_token": csrf(web)}, headers={"HX-Request": "1"}
    )
    html = reply.get_data(as_text=True)
    assert html.lstrip().startswith("<article") and 'data-state="done"' in html
    assert re.search(r'data-field="allowed">100<', html)
    assert re.search(r'data-field="denied">50<', html)


def test_stampede_with_protection_recomputes_once(demo):
    web, _ = demo
    token = csrf(web)
    _, protected = run_card(web, "stampede", "protected", token)
    assert protected["result"]["recomputations"] == 1
    assert protected["result"]["served"] == QUICK_CARDS.stampede_callers
    _, naive = run_card(web, "stampede", "unprotected", token)
    assert naive["result"]["recomputations"] > QUICK_CARDS.stampede_callers // 2
    assert naive["result"]["served"] == QUICK_CARDS.stampede_callers


def test_lock_race_and_a_stale_holder_refused_by_its_fence(demo):
    web, client = demo
    token = csrf(web)
    _, race = run_card(web, "locks", "race", token)
    r = race["result"]
    assert {r["winner"], r["loser"]} == {"worker-A", "worker-B"}
    assert r["loser_fence"] == r["winner_fence"] + 1
    assert any("waits" in e for e in race["events"])
    _, expiry = run_card(web, "locks", "expire", token)
    e = expiry["result"]
    assert e["b_fence"] > e["a_fence"]
    assert e["stale_write_refused"] is True and e["charges"] == 1
    assert e["release_error"] == "taken"
    assert not client.exists("lock:{payment:playground}")  # B released it


def test_killed_consumer_pending_grows_then_is_reclaimed(demo):
    web, client = demo
    status, started = run_card(web, "streams", "kill", csrf(web))
    assert status == 200 and started["state"] == "running"
    outcome = finished(web, "streams")
    result = outcome["result"]
    assert outcome["state"] == "done", outcome
    assert result["status"] == "dead" and result["pending_now"] == 0
    assert result["peak_pending"] > 0 and result["reclaimed"] > 0
    assert any("pending" in e for e in outcome["events"])
    groups = client.xinfo_groups("shop:orders")
    assert groups[0]["pending"] == 0 or all(
        c["name"] != b"worker-2" or c["pending"] == 0
        for c in client.xinfo_consumers("shop:orders", "fulfillment")
    )
    _, revived = run_card(web, "streams", "revive", csrf(web))
    statuses = {c["name"]: c["status"] for c in revived["result"]["consumers"]}
    assert statuses["worker-2"] == "running"


def test_publish_reaches_the_subscriber_and_links_to_the_tail(demo):
    web, _ = demo
    _, outcome = run_card(web, "pubsub", "publish", csrf(web), message="<b>hi</b>")
    assert outcome["result"]["received_by_shop"] is True
    assert outcome["result"]["receivers"] >= 1
    card = web.get("/playground/card/pubsub.json").get_json()
    assert card["links"][0]["href"] == "/pubsub?channel=shop%3Anotifications%3Aplayground"
    html = web.get("/playground/card/pubsub").get_data(as_text=True)
    assert "<b>hi</b>" not in html and "&lt;b&gt;hi&lt;/b&gt;" in html


def test_cache_sessions_leaderboard_and_hll_cards(demo):
    web, client = demo
    token = csrf(web)
    assert run_card(web, "cache", "read", token, product="3")[1]["result"]["source"] == "database"
    assert run_card(web, "cache", "read", token, product="3")[1]["result"]["source"] == "cache"
    run_card(web, "cache", "invalidate", token)
    assert run_card(web, "cache", "read", token, product="3")[1]["result"]["source"] == "database"

    login = run_card(web, "sessions", "login", token)[1]["result"]
    assert login["live"] and login["ttl_ms"] > 0 and client.exists(login["key"])
    assert run_card(web, "sessions", "read", token)[1]["result"]["live"]
    logout = run_card(web, "sessions", "logout", token)[1]["result"]
    assert logout["deleted"] and not client.exists(login["key"])

    board = run_card(web, "leaderboard", "sell", token)[1]["result"]
    assert sum(row["sold"] for row in board["top"]) <= QUICK_CARDS.sales
    assert board["top"] and client.ttl(board["key"]) > 0

    hll = run_card(web, "hll", "count", token)[1]["result"]
    assert hll["exact"] == QUICK_CARDS.hll_items and hll["error_pct"] < 3
    assert hll["bytes"] and hll["bytes"] < 20_000


def _plant_all(web, token, ids):
    for plant_id in ids:
        status, outcome = run_card(web, "antipatterns", plant_id, token)
        assert status == 200, outcome
    return finished(web, "antipatterns")


def test_every_antipattern_is_reported_by_the_audit(demo):
    web, client = demo
    token = csrf(web)
    ids = [p.id for p in antipatterns.PLANTS if p.id != "no-maxmemory"]
    outcome = _plant_all(web, token, ids)
    verdicts = {p["id"]: p["verdict"] for p in outcome["result"]["planted"]}
    assert set(verdicts) == set(ids)
    missed = {i: v for i, v in verdicts.items() if not v["reported"]}
    assert not missed, missed
    assert client.dbsize() > 0 and client.execute_command("SELECT", 0)

    # the policy plant needs a memory limit; "no memory limit" is judged on its own
    _, cleaned = run_card(web, "antipatterns", "cleanup", token)
    assert cleaned["state"] == "done"
    outcome = _plant_all(web, token, ["no-maxmemory"])
    assert outcome["result"]["planted"][0]["verdict"]["reported"]
    status, refused = run_card(web, "antipatterns", "eviction-policy", token)
    assert status == 403 and "maxmemory is 0" in refused["summary"]


def test_cleanup_removes_every_plant_and_restores_the_config(demo):
    web, client = demo
    token = csrf(web)
    _plant_all(web, token, ["big-hash", "no-namespace", "logical-databases", "dynamic-lua"])
    _, outcome = run_card(web, "antipatterns", "cleanup", token)
    assert outcome["state"] == "done"
    assert not list(client.scan_iter(match="antipattern*"))
    assert client.config_get("maxmemory")["maxmemory"] == str(256 * 1024 * 1024)
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
    assert redis.Redis(port=client.connection_pool.connection_kwargs["port"], db=3).dbsize() == 0
    outcome = _plant_all(web, token, [])  # audit only: nothing planted, nothing to report
    assert outcome["result"]["planted"] == []


def _fired(client):
    """(rule, subject) of every finding of a fresh audit."""
    return {(f["rule"], f["subject"]) for f in run_audit(client)["findings"]}


def _plant_alone(web, client, plant_id):
    """Plant through the card; returns the findings before and after, and the verdict."""
    token = csrf(web)
    _plant_all(web, token, [])  # the playground's own keys exist before the baseline
    before = _fired(client)
    outcome = _plant_all(web, token, [plant_id])
    return token, before, _fired(client), outcome["result"]["planted"][0]["verdict"]


def _clean(web, client, token, before, finding):
    _, cleaned = run_card(web, "antipatterns", "cleanup", token)
    assert cleaned["state"] == "done", cleaned
    after = _fired(client)
    assert finding not in after and after == before


def test_slow_commands_plant_fires_alone_until_cleaned_up(demo):
    web, client = demo
    token, before, after, verdict = _plant_alone(web, client, "slow-commands")
    finding = ("slow-commands", "EVAL")
    assert verdict["reported"] and verdict["findings"][0]["subject"] == "EVAL"
    assert after ^ before == {finding}
    assert any(e["duration"] >= 10_000 for e in client.slowlog_get(10))
    _clean(web, client, token, before, finding)
    assert client.slowlog_len() == 0


def _idle(client):
    return [c for c in client.client_list() if c["name"] == antipatterns.IDLE_NAME]


def test_connection_pressure_plant_fires_alone_until_cleaned_up(demo):
    web, client = demo
    limit = client.config_get("maxclients")["maxclients"]
    token, before, after, verdict = _plant_alone(web, client, "connection-pressure")
    finding = ("connection-pressure", "clients")
    assert verdict["reported"] and after ^ before == {finding}
    info = client.info("clients")
    maxclients = int(client.config_get("maxclients")["maxclients"])
    assert info["connected_clients"] >= 0.8 * maxclients
    assert maxclients - info["connected_clients"] >= antipatterns.IDLE_HEADROOM // 2
    assert _idle(client) and client.info("stats")["rejected_connections"] == 0
    _clean(web, client, token, before, finding)
    assert client.config_get("maxclients")["maxclients"] == limit
    assert not _idle(client)


def test_hot_key_plant_fires_alone_until_cleaned_up(demo):
    web, client = demo
    token, before, after, verdict = _plant_alone(web, client, "hot-key")
    finding = ("hot-keys", "antipattern:hot-key:bestseller")
    assert verdict["reported"] and after ^ before == {finding}
    # volatile-lfu like the demo's volatile-lru: no eviction-policy-mismatch besides
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lfu"
    assert client.config_get("lfu-log-factor")["lfu-log-factor"] == "10"  # restored at once
    assert client.object("freq", finding[1]) >= 100
    _clean(web, client, token, before, finding)
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
    assert not client.exists(finding[1])


def test_server_wide_plants_need_what_fakeredis_lacks(fake):
    target = DemoTarget("redis://127.0.0.1:1/0", "fakeredis")
    for plant_id, lacking in [("slow-commands", "SLOWLOG"), ("hot-key", "CONFIG"),
                              ("connection-pressure", "CONFIG")]:  # fmt: skip
        with pytest.raises(DemoRefused, match=f"fakeredis has no {lacking}"):
            antipatterns.plant(fake, target, plant_id)
    assert fake.dbsize() == 0


def test_actions_need_the_csrf_token(demo):
    web, client = demo
    reply = web.post("/playground/ratelimit/burst", headers={"Accept": "application/json"})
    assert reply.status_code == 400
    assert client.dbsize() == 0


def test_read_only_dashboard_refuses_and_writes_nothing(r, redis_url):
    app = _app(redis_url, allow_writes=False)
    web = app.test_client()
    token = csrf(web)
    assert "--allow-writes" in web.get("/playground").get_data(as_text=True)
    for card, action in [("ratelimit", "burst"), ("locks", "race"), ("antipatterns", "big-string")]:
        status, outcome = run_card(web, card, action, token)
        assert status == 403 and outcome["state"] == "refused"
        assert "read-only" in outcome["summary"]
    reply = web.post(
        "/playground/simulator/start",
        data={"csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert reply.status_code == 403 and not reply.get_json()["simulator"]["running"]
    close_playground(app)
    assert r.dbsize() == 0


DEMO_GLOBS = ["demo:*", "ratelimit:demo.*", "lock:{demo:*"]


def test_external_redis_gets_demo_names_only(r, redis_url):
    r.set("theirs", "untouched")
    app = _app(redis_url, allow_writes=True)
    web = app.test_client()
    token = csrf(web)
    data = web.get("/playground.json").get_json()
    assert data["target"]["kind"] == "external" and data["target"]["prefix"] == "demo:"
    runs = [("ratelimit", "burst"), ("locks", "race"), ("stampede", "protected"),
            ("cache", "read"), ("sessions", "login"), ("pubsub", "publish"),
            ("leaderboard", "sell"), ("hll", "count"), ("streams", "orders")]  # fmt: skip
    for card, action in runs:
        status, outcome = run_card(web, card, action, token)
        assert status == 200 and outcome["state"] == "done", (card, outcome)
    _plant_all(web, token, ["missing-ttl", "lock-without-ttl", "big-string"])
    for server_wide in ["keys-command", "flush-command", "no-namespace", "no-maxmemory",
                        "slow-commands", "connection-pressure", "hot-key"]:  # fmt: skip
        status, outcome = run_card(web, "antipatterns", server_wide, token)
        assert status == 403 and "whole server" in outcome["summary"]
    reply = web.post(
        "/playground/simulator/start",
        data={"csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert reply.get_json()["simulator"]["running"]
    wait_for(lambda: web.get("/playground.json").get_json()["simulator"]["requests"] > 50)
    close_playground(app)
    keys = [k.decode() for k in r.scan_iter(count=1000)]
    foreign = [
        k for k in keys if k != "theirs" and not any(fnmatch.fnmatchcase(k, g) for g in DEMO_GLOBS)
    ]
    assert not foreign, foreign[:10]
    assert r.get("theirs") == b"untouched"
    assert any(k.startswith("demo:shop:orders") for k in keys)


def test_unknown_card_or_action(demo):
    web, _ = demo
    token = csrf(web)
    assert web.post("/playground/nope/x", data={"csrf_token": token}).status_code == 404
    status, outcome = run_card(web, "ratelimit", "explode", token)
    assert status == 400 and "no action" in outcome["summary"]
    assert web.get("/playground/card/nope.json").status_code == 404


def test_writers_on_an_external_redis_pass_the_command_gate(r, redis_url):
    """Even with writes enabled, the demo never sends KEYS/FLUSHDB/CONFIG SET to a
    Redis it does not own: its writer clients sit behind the same gate as the views."""
    from dashboard.gate import CommandRefused

    r.set("precious", "1")
    client = DemoTarget(redis_url, "external", writes=True).client()
    try:
        client.set("demo:ok", "1")  # an ordinary write is allowed
        for command in (("KEYS", "*"), ("FLUSHDB",), ("CONFIG", "SET", "maxmemory", "1")):
            with pytest.raises(CommandRefused):
                client.execute_command(*command)
    finally:
        client.close()
    assert r.get("precious") == b"1"
    assert r.get("demo:ok") == b"1"
