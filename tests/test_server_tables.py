"""/slowlog, /clients, /commands, /info: the server's own tables, read by the observer."""

import pytest
import redis
from observer_support import observer_of


def _app(make_app, server, **settings):
    app = make_app(url=server.url, **settings)
    return app, app.test_client()


def _fresh(client, kind, path):
    observer_of(client).refresh(kind)
    return client.get(path).get_json()


def test_slowlog_shows_arguments_escaped_and_cut(make_app, private_server):
    server = private_server("--slowlog-log-slower-than", "0")
    r = redis.Redis(port=server.port)
    big = b"<script>" + b"x" * 500
    r.set(b"k\xff", big)
    r.rpush("list", *[f"item-{i}" for i in range(40)])  # more arguments than shown
    _, client = _app(make_app, server)
    data = _fresh(client, "slowlog", "/slowlog.json")
    assert data["length"] >= 2 and data["threshold_us"] == 0
    entry = next(
        e for e in data["entries"] if e["command"] == "SET" and e["args"][0]["text"] == "k\\xff"
    )
    value = entry["args"][1]
    assert value["truncated"] and value["length"] > 96 and value["text"].startswith("<script>")
    assert entry["arg_count"] == 2 and entry["duration_us"] >= 0 and entry["client_address"]
    pushed = next(e for e in data["entries"] if e["command"] == "RPUSH")
    assert pushed["arg_count"] > len(pushed["args"])  # Redis keeps 32, the page shows 16
    assert any(s["command"] == "SET" for s in data["summary"])
    html = client.get("/slowlog").get_data(as_text=True)
    assert "<script>xxx" not in html and "&lt;script&gt;" in html
    assert data["freshness"]["section"] == "slowlog"
    r.close()


def test_clients_grouped_by_name_address_and_command(make_app, redis_server, r):
    named = redis.Redis(port=redis_server.port, client_name="billing-worker")
    named.ping()
    try:
        _, client = _app(make_app, redis_server)
        data = _fresh(client, "clients", "/clients.json?by=name")
        groups = {g["value"]: g for g in data["groups"]}
        assert groups["billing-worker"]["clients"] == 1
        assert groups["redis-dashboard"]["own"] is True
        assert data["totals"]["clients"] >= 2 and data["by"] == "name"
        by_cmd = client.get("/clients.json?by=cmd").get_json()
        assert any(g["value"] == "ping" for g in by_cmd["groups"])
        assert all("omem" in c and "idle" in c for c in data["idle"])
        assert client.get("/clients.json?by=nope").status_code == 400
        assert "billing-worker" in client.get("/clients").get_data(as_text=True)
    finally:
        named.close()


def test_commands_calls_time_and_rates(make_app, redis_server, r):
    _, client = _app(make_app, redis_server)
    first = _fresh(client, "commands", "/commands.json")
    before = next((c["calls"] for c in first["commands"] if c["command"] == "incr"), 0)
    for _ in range(25):
        r.execute_command("INCR", "counter")  # (redis-py's incr sends INCRBY)
    with pytest.raises(redis.ResponseError):  # wrong arity: a rejected call
        r.execute_command("INCR", "counter", "extra")
    data = _fresh(client, "commands", "/commands.json?sort=calls")
    incr = next(c for c in data["commands"] if c["command"] == "incr")
    assert incr["calls"] - before >= 25 and incr["usec_per_call"] is not None
    assert incr["calls_per_sec"] is not None and data["rate_window_s"] is not None
    assert data["totals"]["rejected_calls"] + data["totals"]["failed_calls"] >= 1
    calls = [c["calls"] for c in data["commands"]]
    assert calls == sorted(calls, reverse=True)
    assert incr["p99_usec"] is None or incr["p99_usec"] >= incr["p50_usec"]


def test_info_by_section_and_the_databases(make_app, redis_server, r):
    other = redis.Redis(port=redis_server.port, db=5)
    other.set("x", 1)
    try:
        _, client = _app(make_app, redis_server)
        data = _fresh(client, "info", "/info.json")
        node = next(iter(data["nodes"].values()))
        assert {"server", "memory", "clients", "keyspace"} <= set(node)
        assert node["server"]["redis_version"]
        dbs = {d["db"]: d for d in data["databases"]}
        assert dbs[5]["keys"] == 1 and dbs[0]["current"] is True
        assert data["configured_databases"] >= 16
        one = client.get("/info.json?section=memory").get_json()
        assert list(next(iter(one["nodes"].values()))) == ["memory"]
        assert client.get("/info.json?section=nope").status_code == 404
        html = client.get("/info").get_data(as_text=True)
        assert "/keys?db=5" in html
    finally:
        other.flushdb()
        other.close()


def test_a_refused_command_is_a_reason_not_a_crash(make_app, private_server):
    server = private_server("--rename-command", "SLOWLOG", '""')
    _, client = _app(make_app, server)
    data = _fresh(client, "slowlog", "/slowlog.json")
    assert data["entries"] == [] and any("SLOWLOG" in why for why in data["errors"].values())
    assert client.get("/slowlog").status_code == 200
