"""The cluster code paths on the suite's real 3-primary/3-replica Redis Cluster."""

from __future__ import annotations

import json
import time

import pytest
import redis
from observer_support import fresh_get
from redis.cluster import RedisCluster

from dashboard import gate
from dashboard.connection import connect, is_cluster
from dashboard.embedded import wait_for
from dashboard.inspect.errors import RedisUnavailable
from dashboard.inspect.keyspace.keydetail import key_detail
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import ScanJob, scan_keyspace
from dashboard.inspect.live.streams import StreamFinder, key_client
from dashboard.inspect.live.tails import TailRegistry
from dashboard.inspect.nodes import node_clients
from dashboard.inspect.server.facts import slowlog
from dashboard.inspect.server.overview import server_overview
from dashboard.patterns.locks import Lock
from dashboard.patterns.ratelimit import RateLimiter


def gated(cluster) -> RedisCluster:
    """The client the dashboard itself builds from the URL: read-only gate on."""
    return gate.install(connect(cluster.url), allow_writes=False)


def addresses(nodes) -> set[str]:
    return {f"127.0.0.1:{n.port}" for n in nodes}


def plant(client, n: int = 900) -> None:
    """Keys of every type on every primary (names hash all over the slot space)."""
    pipe = client.pipeline()
    for i in range(n):
        kind = i % 6
        if kind == 0:
            pipe.set(f"str:{i}", "v" * (i % 50), ex=3600 if i % 4 else None)
        elif kind == 1:
            pipe.hset(f"user:{i}:profile", mapping={"name": "n", "age": i})
        elif kind == 2:
            pipe.rpush(f"queue:{i}", *range(i % 7 + 1))
        elif kind == 3:
            pipe.sadd(f"tags:{i}", "a", "b", i)
        elif kind == 4:
            pipe.zadd(f"board:{i}", {"x": 1, "y": 2})
        else:
            pipe.xadd(f"events:{i}", {"f": i})
    pipe.execute()


def test_cluster_url_gives_a_cluster_client_that_sees_every_node(cluster, cluster_client):
    client = gated(cluster)
    try:
        assert is_cluster(client)
        cluster_client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        with pytest.raises(gate.CommandRefused):
            client.set("greeting", "changed")  # read-only by default, on every node
        primaries = node_clients(client)
        assert {a for a, _, _ in primaries} == addresses(cluster.primaries())
        assert {role for _, role, _ in primaries} == {"primary"}
        every = node_clients(client, replicas=True)
        replicas = [(a, c) for a, role, c in every if role == "replica"]
        assert {a for a, _ in replicas} == addresses(cluster.replicas())
        for _address, conn in replicas:  # each plain client really talks to that replica
            assert conn.execute_command("ROLE")[0] == b"slave"
        for node in cluster.replicas():  # CLIENT SETNAME on the node connections too
            with redis.Redis(port=node.port) as direct:
                assert "redis-dashboard" in [c["name"] for c in direct.client_list()]
    finally:
        client.close()


@pytest.mark.parametrize("path", ["lua", "pipeline"])
def test_scan_totals_equal_the_ground_truth(cluster, cluster_client, path):
    plant(cluster_client)
    client = gated(cluster)
    try:
        snap = scan_keyspace(client, ScanOptions(path=path, max_count=200))
    finally:
        client.close()
    truth = cluster.dbsize()
    assert truth == 900
    assert snap["state"] == "done" and snap["path"] == path
    tree = snap["result"]["tree"]
    assert tree["keys"] == snap["analysed"] == snap["dbsize"] == truth
    assert snap["vanished"] == snap["refused"] == 0
    assert {t: v["keys"] for t, v in tree["types"].items()} == {
        t: 150 for t in ("string", "hash", "list", "set", "zset", "stream")
    }
    per_node = {n["node"]: n["analysed"] for n in snap["nodes"]}
    assert set(per_node) == addresses(cluster.primaries())
    for node in cluster.primaries():
        with redis.Redis(port=node.port) as direct:
            assert per_node[f"127.0.0.1:{node.port}"] == direct.dbsize() > 0


def test_sampling_a_cluster_in_parallel_extrapolates_per_shard(cluster, cluster_client):
    pipe = cluster_client.pipeline()
    for i in range(6000):
        pipe.set(f"{'hot' if i % 5 == 0 else 'cold'}:item:{i}", "v")
    pipe.execute()
    client = gated(cluster)
    try:
        snap = scan_keyspace(client, ScanOptions(sample_keys=1500, max_count=100))
    finally:
        client.close()
    result = snap["result"]
    assert snap["state"] == "done" and result["estimated"] is True
    assert 1500 <= snap["analysed"] < 6000
    assert result["factor"] == pytest.approx(6000 / snap["scanned"], rel=1e-4)
    assert result["tree"]["keys"] == pytest.approx(6000, rel=0.03)
    hot = next(c for c in result["tree"]["children"] if c["name"] == "hot")
    assert 700 <= hot["keys"] <= 1700  # truly 1200
    for node in snap["nodes"]:  # each shard took its share, by its DBSIZE
        assert node["quota"] == pytest.approx(1500 * node["dbsize"] / 6000, abs=1)
        assert node["analysed"] >= node["quota"]


def test_partial_and_snapshot_are_safe_while_shards_fold_in_parallel(cluster, cluster_client):
    import threading

    plant(cluster_client, 3000)
    client = gated(cluster)
    job = ScanJob(client, ScanOptions(max_count=30, start_count=30))
    seen = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            seen.append((job.partial()["tree"]["keys"], job.snapshot(include_result=False)))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        snap = job.run()
    finally:
        stop.set()
        poller.join()
        client.close()
    assert snap["state"] == "done" and snap["result"]["tree"]["keys"] == 3000
    keys = [k for k, _ in seen]
    assert len(seen) > 3 and max(keys) <= 3000
    assert any(0 < k < 3000 for k in keys)  # polled mid-scan, from another thread
    assert json.dumps([s for _, s in seen])


def test_overview_aggregates_primaries_and_lists_every_node(cluster, cluster_client):
    for i in range(40):
        cluster_client.set(f"k{i}", i)
    cluster_client.hset("profile:{7}", mapping={"a": 1, "b": 2})
    client = gated(cluster)
    try:
        overview = server_overview(client)
        json.dumps(overview)
        assert overview["mode"] == "cluster" and len(overview["nodes"]) == 6
        primaries = [n for n in overview["nodes"] if n["role"] == "primary"]
        replicas = [n for n in overview["nodes"] if n["role"] == "replica"]
        assert {n["address"] for n in primaries} == addresses(cluster.primaries())
        assert {n["address"] for n in replicas} == addresses(cluster.replicas())
        assert all(n["master_link_status"] == "up" for n in replicas)
        assert overview["keyspace"]["total_keys"] == sum(n["keys"] for n in primaries) == 41
        assert overview["memory"]["used"] == sum(n["used_memory"] for n in primaries)
        assert overview["cluster"] | {"reason": None} == {
            "available": True,
            "reason": None,
            "enabled": True,
            "state": "ok",
            "slots_assigned": 16384,
            "slots_ok": 16384,
            "slots_pfail": 0,
            "slots_fail": 0,
            "known_nodes": 6,
            "size": 3,
            "unavailable": {},
        }
        assert set(slowlog(client, 3)["data"]) == {n["address"] for n in primaries}
        detail = key_detail(client, b"profile:{7}")
        assert detail["type"] == "hash" and detail["length"] == 2

        victim = cluster.node(int(primaries[0]["address"].rsplit(":", 1)[1]))
        victim.kill()  # before the cluster fails it over, the client still knows it
        partial = server_overview(client)
        down = [n for n in partial["nodes"] if not n["available"]]
        assert [n["address"] for n in down] == [primaries[0]["address"]]
        assert "unavailable" in down[0]["reason"]
        assert partial["keyspace"]["reason"] == "partial: 2 of 3 primaries answered"
        for node in cluster.nodes:
            node.kill()
        with pytest.raises(RedisUnavailable, match="no cluster primary"):
            server_overview(client)
    finally:
        client.close()


def test_streams_are_found_on_every_primary_and_read_where_they_live(cluster, cluster_client):
    for i in range(12):
        cluster_client.xadd(f"orders:{i}", {"n": i})
        cluster_client.xgroup_create(f"orders:{i}", "billing", id="0")
    cluster_client.xreadgroup("billing", "worker", {"orders:3": ">"}, count=1)
    cluster_client.set("not-a-stream", 1)
    client = gated(cluster)
    try:
        found = StreamFinder(client, scan_count=5).find()
        assert found["complete"] and not found["errors"]
        streams = dict(found["streams"])
        assert set(streams) == {f"orders:{i}".encode() for i in range(12)}
        assert set(streams.values()) == addresses(cluster.primaries())  # on all three
        for key, address in streams.items():
            owner = cluster_client.get_node_from_key(key)
            assert address == owner.name
            conn = key_client(client, key)
            port = conn.connection_pool.connection_kwargs["port"]
            assert f"127.0.0.1:{port}" == address
            assert conn.xlen(key) == 1
    finally:
        client.close()


def test_streams_page_on_the_cluster(cluster, cluster_client, make_app):
    cluster_client.xadd("{jobs}:in", {"n": 1})
    cluster_client.xgroup_create("{jobs}:in", "workers", id="0")
    for i in range(5):
        cluster_client.xadd("{jobs}:in", {"n": i})
    web = make_app(url=cluster.url).test_client()
    data = fresh_get(web, "/streams.json").get_json()
    assert data["cluster"] is True and data["discovery"]["complete"]
    [stream] = data["streams"]
    assert stream["key"] == "{jobs}:in" and stream["length"] == 6
    [group] = stream["groups"]
    assert group["name"] == "workers" and group["lag"] == 6
    assert stream["node"] == cluster_client.get_node_from_key("{jobs}:in").name


def test_rate_limits_and_locks_are_found_on_every_primary(cluster, cluster_client, make_app):
    limiter = RateLimiter(cluster_client, "api", 3, 60, algorithm="gcra")
    for i in range(20):
        limiter.hit(f"user{i}")
    Lock(cluster_client, "job:a", ttl=30).acquire()
    Lock(cluster_client, "job:b", ttl=30).acquire()
    web = make_app(url=cluster.url).test_client()
    data = fresh_get(web, "/ratelimits.json").get_json()
    assert data["search"]["nodes"] == 3 and data["totals"]["identities"] == 20
    entries = [e for g in data["limiters"] for e in g["entries"]]
    assert {e["node"] for e in entries} == addresses(cluster.primaries())
    locks = fresh_get(web, "/locks.json").get_json()
    assert sorted(e["resource"] for e in locks["locks"]) == ["job:a", "job:b"]
    for entry in locks["locks"]:
        assert entry["node"] == cluster_client.get_node_from_key(entry["key"]).name


def test_pubsub_channels_are_merged_over_every_node(cluster, make_app):
    """Each node knows only its own clients' subscriptions, replicas included."""
    nodes = cluster.nodes
    subscriptions = []
    wanted = {"a": 0, "b": 0}
    for n, node in enumerate(nodes):
        conn = redis.Redis(port=node.port)
        p = conn.pubsub()
        channels = ["a", "b"] if n % 2 else ["a"]
        p.subscribe(*channels)
        for channel in channels:
            wanted[channel] += 1
        subscriptions.append((conn, p))
    shard_owner = cluster.client().get_node_from_key("orders:{1}")
    sharded = redis.Redis(host=shard_owner.host, port=shard_owner.port).pubsub()
    sharded.ssubscribe("orders:{1}")
    patterned = redis.Redis(port=nodes[1].port).pubsub()
    patterned.psubscribe("x*")
    try:
        for _, p in subscriptions:
            wait_for(lambda p=p: p.get_message(timeout=0.1) or p.subscribed, "subscribed")
        wait_for(lambda: sharded.get_sharded_message(timeout=0.1) or True, "ssubscribed")
        wait_for(lambda: patterned.get_message(timeout=0.1), "psubscribed")
        web = make_app(url=cluster.url).test_client()

        def merged():
            data = fresh_get(web, "/pubsub.json").get_json()
            counts = {c["name"]: c["subscribers"] for c in data["channels"]}
            return data if counts == wanted else None

        data = wait_for(merged, "every node's subscribers counted", 10)
        assert data["channel_count"] == 2 and data["pattern_subscriptions"] == 1
        shard = data["shard_channels"]
        assert shard["available"]
        assert shard["data"]["channels"] == [{"name": "orders:{1}", "subscribers": 1}]
    finally:
        for conn, p in subscriptions:
            p.close()
            conn.close()
        sharded.close()
        patterned.close()


def test_a_tail_on_the_cluster_hears_publishes_sent_to_any_node(cluster):
    client = gated(cluster)
    registry = TailRegistry(client, max_tails=1, buffer=100)
    tail = registry.open(channel="news")
    try:
        assert tail.subscriber.wait_subscribed(10)
        for n, node in enumerate(cluster.nodes):  # PUBLISH is broadcast over the bus
            with redis.Redis(port=node.port) as direct:
                direct.publish("news", f"from node {n}")
        got: list[str] = []
        deadline = time.monotonic() + 10
        while len(got) < len(cluster.nodes) and time.monotonic() < deadline:
            got += [m.text for m in tail.take(0.2)]
        assert sorted(got) == sorted(f"from node {n}" for n in range(len(cluster.nodes)))
    finally:
        registry.close_all()
        client.close()
