"""Server facts: the overview and the helpers the audit reuses, on real and degraded servers."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

from dashboard.embedded import free_port
from dashboard.inspect.errors import RedisUnavailable
from dashboard.inspect.keyspace.keydetail import key_detail
from dashboard.inspect.server import overview as server
from dashboard.inspect.server.facts import (
    acl_default_user,
    acl_whoami,
    commandstats,
    config_get,
    info,
    parse_info,
    slowlog,
)
from dashboard.inspect.server.overview import PANELS, human_bytes, human_duration, server_overview

DOC = Path(__file__).resolve().parent.parent / "docs" / "overview.md"
PANEL_NAMES = [*PANELS, "keyspace"]


def wait_until(predicate, what: str, tries: int = 400):
    """Poll a condition the server reaches on its own (replication, cluster gossip)."""
    for _ in range(tries):
        value = predicate()
        if value:
            return value
        time.sleep(0.025)
    pytest.fail(f"never happened: {what}")


def paths(value, prefix: str = "") -> set[str]:
    """Dotted field paths of the overview; list items as ``name[].field``."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            if key != "unavailable":  # {field: reason}: keys are field names, not fields
                found |= paths(child, path)
    elif isinstance(value, list):
        for item in value:
            found |= paths(item, f"{prefix}[]")
    return found


def documented() -> set[str]:
    return set(re.findall(r"`([a-z_]+(?:\[\])?(?:\.[a-z_]+(?:\[\])?)*)`", DOC.read_text()))


def limited_user(srv, *rules: str) -> redis.Redis:
    admin = redis.Redis(port=srv.port)
    admin.execute_command("ACL", "SETUSER", "viewer", "on", ">pw", "~*", "&*", *rules)
    admin.close()
    return redis.Redis(port=srv.port, username="viewer", password="pw")


def test_overview_on_real_server_has_every_documented_field(private_server):
    srv = private_server("--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
    client = redis.Redis(port=srv.port)
    client.set("hit", "1", ex=100)
    client.get("hit")
    client.get("miss")
    redis.Redis(port=srv.port, db=2).set("other", "x")

    overview = server_overview(client)

    json.dumps(overview, allow_nan=False)
    assert overview["mode"] == "standalone"
    assert overview["role"] == "primary"
    assert re.fullmatch(r"\d+\.\d+\.\d+", overview["version"])
    for name in PANEL_NAMES:
        panel = overview[name]
        assert panel["available"] is True, (name, panel)
        assert panel["reason"] is None and panel["unavailable"] == {}
    memory, stats = overview["memory"], overview["stats"]
    assert memory["max"] == 100 * 1024 * 1024 and memory["max_human"] == "100.0 MiB"
    assert memory["policy"] == "allkeys-lru"
    assert 0 < memory["used_percent_of_max"] < 100
    assert memory["used"] > 0 and memory["used_human"].endswith("iB")
    assert memory["fragmentation_ratio"] > 0
    assert stats["keyspace_hits"] >= 1 and stats["keyspace_misses"] >= 1
    assert stats["hit_ratio"] == round(
        stats["keyspace_hits"] / (stats["keyspace_hits"] + stats["keyspace_misses"]), 4
    )
    assert overview["clients"]["connected"] >= 1 and overview["clients"]["maxclients"] > 0
    assert overview["server"]["uptime_seconds"] >= 0 and overview["server"]["uptime_human"]
    assert overview["persistence"]["aof_enabled"] is False
    assert overview["persistence"]["save_schedule"] == ""  # the suite runs with --save ""
    assert overview["persistence"]["rdb_last_bgsave_status"] == "ok"
    assert overview["cluster"]["enabled"] is False and overview["cluster"]["state"] is None
    db0, db2 = overview["keyspace"]["dbs"]
    assert db0 | {"avg_ttl_ms": 0} == {"db": 0, "keys": 1, "expires": 1, "avg_ttl_ms": 0}
    assert 0 <= db0["avg_ttl_ms"] <= 100_000
    assert db2 == {"db": 2, "keys": 1, "expires": 0, "avg_ttl_ms": None}
    assert overview["keyspace"]["total_keys"] == 2
    # Every documented field of these panels is really there (docs are not stale).
    present = paths(overview)
    for path in documented():
        head = path.split(".")[0].removesuffix("[]")
        if head in ("server", "memory", "clients", "stats", "persistence") and "[]" not in path:
            assert path in present, f"docs/overview.md documents {path} but it is not returned"


def test_every_overview_field_is_documented(private_server, cluster_client):
    primary = private_server("--repl-diskless-sync-delay", "0")
    private_server("--replicaof", "127.0.0.1", str(primary.port))
    client = redis.Redis(port=primary.port)
    client.set("k", "v", ex=100)
    wait_until(lambda: client.info("replication").get("slave0"), "replica attached")
    outputs = [server_overview(client), server_overview(cluster_client)]

    returned = set().union(*(paths(o) for o in outputs))
    missing = sorted(returned - documented())
    assert not missing, f"fields missing from docs/overview.md: {missing}"
    assert "replication.replicas[].lag" in returned and "nodes[].address" in returned
    stale = sorted(p for p in documented() if "." in p and p not in returned)
    assert not stale, f"docs/overview.md documents fields that are never returned: {stale}"


def test_overview_on_fakeredis_degrades_with_reasons(fake):
    fake.set("a", "1")
    overview = server_overview(fake)

    json.dumps(overview)
    assert overview["software"] == "fakeredis" and overview["version"]
    for name in PANELS:
        assert overview[name]["available"] is False
        assert overview[name]["reason"] == "INFO is not supported by this server (unknown command)"
        assert overview[name]["unavailable"] == {}
    keyspace = overview["keyspace"]
    assert keyspace["available"] is True and "DBSIZE" in keyspace["reason"]
    assert keyspace["total_keys"] == 1 and keyspace["dbs"][0]["expires"] is None
    assert set(keyspace["unavailable"]) == {"expires", "avg_ttl_ms"}
    for helper in (lambda: info(fake), lambda: config_get(fake, "*"), lambda: slowlog(fake)):
        result = helper()
        assert result["available"] is False and "not supported" in result["reason"]


def test_acl_user_without_info_and_config_gets_labelled_unavailable_fields(private_server):
    srv = private_server()
    viewer = limited_user(srv, "+@all", "-info", "-config")
    viewer.set("x", "1")

    overview = server_overview(viewer)

    for name in PANELS:
        assert overview[name]["available"] is False
        assert overview[name]["reason"] == "INFO refused by ACL (NOPERM)"
    assert overview["version"] and overview["role"] == "primary"  # from HELLO
    assert overview["keyspace"]["total_keys"] == 1
    assert config_get(viewer, "maxmemory") == {
        "available": False,
        "reason": "CONFIG GET refused by ACL (NOPERM)",
    }
    assert info(viewer, "memory")["reason"] == "INFO memory refused by ACL (NOPERM)"
    assert commandstats(viewer)["available"] is False
    assert acl_whoami(viewer) == {"available": True, "data": "viewer"}


def test_config_refused_marks_only_the_fields_that_need_it(private_server):
    srv = private_server()
    viewer = limited_user(srv, "+@all", "-config")
    overview = server_overview(viewer)

    persistence = overview["persistence"]
    assert persistence["available"] is True and persistence["aof_enabled"] is False
    assert persistence["save_schedule"] is None
    assert persistence["unavailable"] == {"save_schedule": "CONFIG GET refused by ACL (NOPERM)"}
    assert overview["memory"]["available"] is True and overview["memory"]["unavailable"] == {}


def test_unreachable_server_raises_redis_unavailable_without_the_password():
    client = redis.Redis.from_url(
        f"redis://admin:s3cret-pw@127.0.0.1:{free_port()}/0", socket_connect_timeout=1
    )
    with pytest.raises(RedisUnavailable) as caught:
        server_overview(client)
    message = str(caught.value)
    assert message.startswith("Redis is unavailable:") and "s3cret" not in message
    with pytest.raises(RedisUnavailable):
        key_detail(client, b"k")


def test_helpers_on_a_real_server(private_server):
    srv = private_server("--slowlog-log-slower-than", "0")
    client = redis.Redis(port=srv.port)
    client.set(b"bin\xff<b>", "v")
    for _ in range(3):
        client.get("x")

    log = slowlog(client, 5)
    assert log["available"] and 1 <= len(log["data"]) <= 5
    commands = [e["command"] for e in log["data"]]
    assert "SET bin\\xff<b> v" in commands  # escaped bytes, HTML left as plain text
    assert all(isinstance(e["duration_us"], int) for e in log["data"])

    stats = commandstats(client)["data"]
    assert {"get", "set"} <= {row["command"] for row in stats}
    assert [row["usec"] for row in stats] == sorted((row["usec"] for row in stats), reverse=True)
    assert next(row for row in stats if row["command"] == "get")["calls"] == 3

    assert acl_whoami(client)["data"] == "default"
    assert acl_default_user(client)["data"] == {
        "enabled": True,
        "nopass": True,
        "open_to_anyone": True,
    }
    client.execute_command("ACL", "SETUSER", "default", "resetpass", ">pw")
    locked = redis.Redis(port=srv.port, password="pw")
    assert acl_default_user(locked)["data"]["open_to_anyone"] is False
    assert config_get(locked, "maxmemory-policy")["data"] == {"maxmemory-policy": "noeviction"}
    assert info(locked, "server")["data"]["redis_version"]


def test_parse_info_handles_raw_text_and_parsed_dicts(r):
    r.set("k", "v")
    parsed = r.info()
    conn = r.connection_pool.get_connection()
    try:  # the raw reply, before redis-py's INFO callback parses it
        conn.send_command("INFO", "everything")
        raw = conn.read_response()
    finally:
        r.connection_pool.release(conn)
    assert isinstance(raw, bytes)
    from_text = parse_info(raw)
    assert from_text["redis_version"] == parsed["redis_version"]
    assert from_text["db0"] == {"keys": 1, "expires": 0, "avg_ttl": 0} == parsed["db0"]
    assert isinstance(from_text["cmdstat_info"], dict) and from_text["cmdstat_info"]["calls"] >= 1
    assert parse_info({b"a": b"1"}) == {"a": "1"}
    text = "# Keyspace\r\ndb3:keys=5,expires=1,avg_ttl=10\r\nredis_version:7.0.0\r\n"
    assert parse_info(text) == {
        "db3": {"keys": 5, "expires": 1, "avg_ttl": 10},
        "redis_version": "7.0.0",
    }


def test_replica_mode_and_replication_facts(private_server):
    primary = private_server("--repl-diskless-sync-delay", "0")
    replica = private_server("--replicaof", "127.0.0.1", str(primary.port))
    to_replica = redis.Redis(port=replica.port)
    wait_until(lambda: to_replica.info("replication").get("master_link_status") == "up", "link up")
    to_primary = redis.Redis(port=primary.port)
    wait_until(
        lambda: to_primary.info("replication").get("slave0", {}).get("state") == "online",
        "primary sees the replica online",
    )

    overview = server_overview(to_replica)
    assert overview["mode"] == "replica" and overview["role"] == "replica"
    assert overview["replication"]["master_link_status"] == "up"
    assert overview["replication"]["master_port"] == primary.port
    replicas = server_overview(to_primary)["replication"]["replicas"]
    assert [(x["port"], x["state"]) for x in replicas] == [(replica.port, "online")]


def test_mode_recognises_sentinel_managed_clients():
    pool = SentinelConnectionPool("mymaster", sentinel_manager=None)
    client = redis.Redis(connection_pool=pool)
    node = {"redis_mode": "standalone", "role": "primary"}
    assert server._mode(client, node) == "sentinel-managed"
    assert server._mode(redis.Redis(), {"redis_mode": "sentinel", "role": None}) == "sentinel"
    assert server._mode(redis.Redis(), {"redis_mode": None, "role": None}) == "unknown"


def test_human_units():
    assert human_bytes(None) is None and human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(3 * 1024**3) == "3.0 GiB"
    assert human_duration(5) == "5s" and human_duration(3 * 86400 + 4 * 3600 + 5) == "3d 4h"
    assert human_duration(0) == "0s" and human_duration(61) == "1m 1s"
