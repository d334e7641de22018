"""scan_from=replica|auto on the real cluster (and a standalone primary with a replica):
the primaries see no SCAN, EVALSHA_RO, TYPE or MEMORY from the scan, totals stay exact."""

from __future__ import annotations

import pytest
import redis

from dashboard import gate
from dashboard.connection import ConnectionOptions, connect
from dashboard.embedded import wait_for
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import DONE, FAILED, ScanJob, scan_keyspace

# What reading key facts sends (directly, or from inside the script: commandstats
# counts the commands a script calls too).
SCAN_COMMANDS = {
    "scan", "evalsha_ro", "eval_ro", "type", "pttl", "memory|usage",
    "strlen", "hlen", "llen", "scard", "zcard", "xlen", "dbsize",
}  # fmt: skip


def plant(client, n: int = 3000) -> None:
    pipe = client.pipeline()
    for i in range(n):
        if i % 3 == 0:
            pipe.hset(f"user:{i}", mapping={"a": i})
        elif i % 3 == 1:
            pipe.rpush(f"jobs:{i}", i, i + 1)
        else:
            pipe.set(f"page:{i}", "x" * (i % 40), ex=600)
    pipe.execute()


def scan_calls(port: int) -> dict[str, int]:
    with redis.Redis(port=port) as admin:
        stats = admin.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): data["calls"]
        for name, data in stats.items()
        if name.removeprefix("cmdstat_") in SCAN_COMMANDS
    }


def reset_stats(ports) -> None:
    for port in ports:
        with redis.Redis(port=port) as admin:
            admin.config_resetstat()


def scan(url: str, connection: dict | None = None, **options):
    """A scan through the dashboard's own (gated) client built from ``url``."""
    client = gate.install(connect(url, ConnectionOptions(**(connection or {}))), False)
    try:
        return scan_keyspace(client, ScanOptions(**options))
    finally:
        client.close()


@pytest.mark.parametrize("path", ["lua", "pipeline"])
def test_scan_from_replica_leaves_the_primaries_alone(cluster, cluster_client, path):
    plant(cluster_client)
    cluster.sync_replicas()
    primaries, replicas = cluster.primaries(), cluster.replicas()
    reset_stats(n.port for n in cluster.nodes)
    snap = scan(cluster.url, scan_from="replica", path=path, max_count=200)
    assert snap["state"] == DONE, snap["error"]
    for node in primaries:  # before the test's own DBSIZE calls below
        assert scan_calls(node.port) == {}, f"the scan touched primary {node.port}"
    assert snap["result"]["tree"]["keys"] == cluster.dbsize() == 3000
    touched = [scan_calls(n.port) for n in replicas]
    assert all(calls.get("scan") for calls in touched)
    script = "evalsha_ro" if path == "lua" else "type"
    assert all(calls.get(script) or calls.get("eval_ro") for calls in touched)
    if path == "lua":  # a page's keys in ARGV on the replica: one call a page, not a key
        assert sum(calls.get("evalsha_ro", 0) for calls in touched) <= snap["batches"] < 100
        assert all(n["fallbacks"] == 0 for n in snap["nodes"])  # READONLY: all local
    by_primary = {
        f"127.0.0.1:{p.port}": f"127.0.0.1:{cluster.replica_of(p).port}" for p in primaries
    }
    assert {n["primary"]: n["node"] for n in snap["nodes"]} == by_primary
    for node in snap["nodes"]:
        assert node["read_from"] == "replica" and "healthy replica" in node["source_reason"]
        assert node["lag_bytes"] >= 0 and node["lag_s"] is not None


def test_auto_reads_replicas_and_falls_back_to_a_primary(cluster, cluster_client):
    plant(cluster_client)
    cluster.sync_replicas()
    lonely = cluster.primaries()[0]
    cluster.replica_of(lonely).kill()
    snap = scan(cluster.url, {"connect_timeout": 0.5}, scan_from="auto")
    assert snap["state"] == DONE, snap["error"]
    assert snap["result"]["tree"]["keys"] == cluster.dbsize() == 3000
    sources = {n["primary"]: n for n in snap["nodes"]}
    fallback = sources.pop(f"127.0.0.1:{lonely.port}")
    assert fallback["read_from"] == "primary" and fallback["node"] == fallback["primary"]
    assert fallback["source_reason"].startswith("scan_from=auto: ")
    assert "does not answer" in fallback["source_reason"]
    assert all(n["read_from"] == "replica" for n in sources.values())


def test_replica_only_fails_clearly_when_a_shard_has_none(cluster, cluster_client):
    plant(cluster_client, 300)
    lonely = cluster.primaries()[1]
    before = scan_calls(lonely.port)
    cluster.replica_of(lonely).kill()
    snap = scan(cluster.url, {"connect_timeout": 0.5}, scan_from="replica")
    assert snap["state"] == FAILED and snap["resumable"]
    assert f"no replica of 127.0.0.1:{lonely.port} answers" in snap["error"]
    assert scan_calls(lonely.port) == before  # it did not fall back to the primary


def test_standalone_primary_reads_its_replica(private_server):
    primary = private_server("--repl-diskless-sync-delay", "0")
    replica = private_server("--replicaof", "127.0.0.1", str(primary.port))
    with redis.Redis(port=primary.port) as admin:
        plant(admin, 900)
        wait_for(lambda: admin.execute_command("WAIT", 1, 1000) == 1, "the replica to sync")
    reset_stats([primary.port, replica.port])
    snap = scan(primary.url, scan_from="auto")
    assert snap["state"] == DONE and snap["result"]["tree"]["keys"] == 900
    [node] = snap["nodes"]
    assert node["read_from"] == "replica" and node["node"] == f"127.0.0.1:{replica.port}"
    assert scan_calls(primary.port) == {} and scan_calls(replica.port)["scan"] > 0


def test_a_cluster_without_replicas():
    """auto falls back to every primary; replica says there is none to read."""
    from dashboard.embedded_cluster import EmbeddedCluster

    with EmbeddedCluster(primaries=2, replicas=0) as bare:
        with bare.client() as client:
            plant(client, 500)
        snap = scan(bare.url, scan_from="auto")
        assert snap["state"] == DONE and snap["result"]["tree"]["keys"] == 500
        assert {n["read_from"] for n in snap["nodes"]} == {"primary"}
        assert all("the shard has no replica" in n["source_reason"] for n in snap["nodes"])
        snap = scan(bare.url, scan_from="replica")
        assert snap["state"] == FAILED and "the shard has no replica" in snap["error"]


def test_pinned_replica_clients_keep_the_gate_the_name_and_send_readonly(
    cluster, cluster_client, sentinel_set
):
    from dashboard.inspect.nodes import node_client, pinned_client

    cluster_client.set("greeting", "hi")
    cluster.sync_replicas()
    owner = cluster_client.get_node_from_key("greeting")
    replica = f"127.0.0.1:{cluster.replica_of(cluster.node(owner.port)).port}"
    client = gate.install(connect(cluster.url), allow_writes=False)
    sentinel = gate.install(connect(sentinel_set.url), allow_writes=False)
    try:
        template = node_client(client, owner.name)
        for pinned in (
            pinned_client(template, replica, readonly=True),
            pinned_client(sentinel, f"127.0.0.1:{sentinel_set.replicas()[0].port}"),
        ):
            assert pinned.client_getname() == "redis-dashboard"
            with pytest.raises(gate.CommandRefused):
                pinned.set("greeting", "changed")
            pinned.close()
        reader = pinned_client(template, replica, readonly=True)
        assert reader.get("greeting") == b"hi"  # READONLY: the replica serves the read
        reader.connection_pool.disconnect()
        with pytest.raises(redis.exceptions.MovedError):
            pinned_client(template, replica).get("greeting")
    finally:
        client.close()
        sentinel.close()


def test_a_finished_scan_leaves_no_connection_open_on_the_replicas(cluster, cluster_client):
    plant(cluster_client, 600)
    cluster.sync_replicas()

    def dashboard_connections():
        found = set()
        for node in cluster.replicas():
            with redis.Redis(port=node.port) as admin:
                found |= {
                    (node.port, c["id"])
                    for c in admin.client_list()
                    if c["name"] == "redis-dashboard"
                }
        return found

    # Another test's client may still be connected (the cluster is shared): only the
    # connections this scan opens count.
    before = dashboard_connections()

    def scan_connections():
        return len(dashboard_connections() - before)

    client = gate.install(connect(cluster.url), allow_writes=False)
    job = ScanJob(client, ScanOptions(scan_from="replica"))  # kept: its passes stay alive
    try:
        snap = job.run()
        assert snap["state"] == DONE and snap["result"]["tree"]["keys"] == 600
        wait_for(lambda: scan_connections() == 0, "the scan's replica connections to close", 5)
    finally:
        client.close()


def test_the_keyspace_page_says_which_node_each_shard_was_read_from(
    cluster, cluster_client, make_app
):
    import re

    from observer_support import wait_scan

    for i in range(300):
        cluster_client.set(f"user:{i}", i)
    cluster.sync_replicas()
    web = make_app(url=cluster.url, scan_from="replica", rescan_interval=0).test_client()
    data = wait_scan(web)
    replicas = {f"127.0.0.1:{n.port}" for n in cluster.replicas()}
    shards = data["scan"]["nodes"]
    assert len(shards) == 3 and {s["node"] for s in shards} <= replicas
    assert all(s["read_from"] == "replica" and s["primary"] != s["node"] for s in shards)
    html = web.get("/keyspace").get_data(as_text=True)
    table = re.search(r'<details class="panel" id="scan-shards".*?</details>', html, re.S)[0]
    assert table.count('<tr class="shard">') == 3 and "3 replicas" in table
    for shard in shards:
        assert shard["node"] in table and shard["primary"] in table
