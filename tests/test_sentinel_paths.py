"""The Sentinel code paths on the suite's real Sentinel set (primary, replica, 3 Sentinels)."""

from __future__ import annotations

import redis

from dashboard import gate
from dashboard.connection import ConnectionOptions, connect
from dashboard.embedded import wait_for
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import ScanJob, scan_keyspace
from dashboard.inspect.nodes import refresh_topology
from dashboard.inspect.server.overview import server_overview


def gated(sentinel_set):
    return gate.install(connect(sentinel_set.url), allow_writes=False)


def plant(sentinel_set, n: int) -> None:
    """``n`` string keys on the primary, replicated before the test goes on."""
    with redis.Redis(port=sentinel_set.primary().port) as admin:
        pipe = admin.pipeline(transaction=False)
        for i in range(n):
            pipe.set(f"s:{i % 5}:{i}", i)
        pipe.execute()
    sentinel_set.sync_replicas()


def scan(sentinel_set, **options):
    client = gated(sentinel_set)
    try:
        return scan_keyspace(client, ScanOptions(**options))
    finally:
        client.close()


def served_by(client) -> int:
    """The port of the server that answered (INFO reports its own tcp_port)."""
    return int(client.info("server")["tcp_port"])


def test_sentinel_url_reads_the_primary_and_follows_a_failover(sentinel_set):
    old = sentinel_set.primary()
    with redis.Redis(port=old.port) as primary:
        primary.set("greeting", "hello")
    client = gated(sentinel_set)
    try:
        assert client.get("greeting") == b"hello"
        assert served_by(client) == old.port
        overview = server_overview(client)
        assert overview["mode"] == "sentinel-managed" and overview["role"] == "primary"
        assert overview["replication"]["replicas"][0]["state"] == "online"

        new = sentinel_set.failover()
        assert new is not old
        with redis.Redis(port=new.port) as primary:
            primary.set("greeting", "after failover")
        assert refresh_topology(client) is True  # the observer's call after errors
        assert refresh_topology(client) is False  # and only once
        # Sentinel drops the old primary's clients; the pool asks the Sentinels again.
        assert wait_for(lambda: served_by(client) == new.port, "the client to follow", 20)
        assert client.get("greeting") == b"after failover"
        assert server_overview(client)["role"] == "primary"
    finally:
        client.close()


def test_scan_totals_on_the_sentinel_primary_equal_the_ground_truth(sentinel_set):
    plant(sentinel_set, 1500)
    with redis.Redis(port=sentinel_set.primary().port) as primary:
        primary.hset("h", mapping={"a": 1})
        truth = primary.dbsize()
    snap = scan(sentinel_set, max_count=200)
    assert snap["state"] == "done" and truth == 1501
    assert snap["result"]["tree"]["keys"] == snap["dbsize"] == truth
    assert [n["node"] for n in snap["nodes"]] == [f"127.0.0.1:{sentinel_set.primary().port}"]


def test_scan_from_replica_through_the_sentinels(sentinel_set):
    plant(sentinel_set, 2000)
    primary = sentinel_set.primary()
    [replica] = sentinel_set.replicas()
    for node in (primary, replica):
        with redis.Redis(port=node.port) as admin:
            admin.config_resetstat()
    snap = scan(sentinel_set, scan_from="replica", max_count=200)
    assert snap["state"] == "done", snap["error"]
    assert snap["result"]["tree"]["keys"] == 2000
    [node] = snap["nodes"]
    assert node["read_from"] == "replica" and node["node"] == f"127.0.0.1:{replica.port}"
    assert node["primary"] == f"127.0.0.1:{primary.port}" and node["lag_bytes"] >= 0
    with redis.Redis(port=primary.port) as admin:
        stats = admin.info("commandstats")
    touched = {"cmdstat_scan", "cmdstat_evalsha_ro", "cmdstat_eval_ro", "cmdstat_type"}
    assert not touched & set(stats), "the scan touched the primary"
    assert not any(name.startswith("cmdstat_memory") for name in stats)
    with redis.Redis(port=replica.port) as admin:
        assert admin.info("commandstats")["cmdstat_scan"]["calls"] > 0


def test_a_sentinel_failover_during_a_scan_restarts_it_on_the_new_primary(sentinel_set):
    plant(sentinel_set, 4000)
    client = gated(sentinel_set)
    pages = 0
    promoted = []

    def failover(batch):
        nonlocal pages
        pages += 1
        if pages == 5:
            promoted.append(sentinel_set.failover())

    try:
        snap = ScanJob(client, ScanOptions(max_count=50, start_count=50), on_batch=failover).run()
    finally:
        client.close()
    assert snap["state"] == "done", snap["error"]
    new = promoted[0]
    with redis.Redis(port=new.port) as admin:
        assert snap["result"]["tree"]["keys"] == admin.dbsize() == 4000
    assert [n["node"] for n in snap["nodes"]] == [f"127.0.0.1:{new.port}"]
    assert snap["restarts"] == 1


def test_a_replica_lost_mid_scan_falls_back_to_the_primary_with_auto(sentinel_set):
    plant(sentinel_set, 3000)
    [replica] = sentinel_set.replicas()
    client = gate.install(
        connect(sentinel_set.url, ConnectionOptions(connect_timeout=0.5)), allow_writes=False
    )
    pages = 0

    def kill(batch):
        nonlocal pages
        pages += 1
        if pages == 5:
            replica.kill()

    try:
        options = ScanOptions(scan_from="auto", max_count=50, start_count=50)
        snap = ScanJob(client, options, on_batch=kill).run()
    finally:
        client.close()
    assert snap["state"] == "done", snap["error"]
    assert snap["result"]["tree"]["keys"] == 3000
    [node] = snap["nodes"]
    assert node["read_from"] == "primary" and "does not answer" in node["source_reason"]
    assert snap["restarts"] == 1
