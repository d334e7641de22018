"""The scan under topology change, on the suite's real cluster: slots migrating, a primary
killed, a manual failover. Whatever happens mid-scan, the finished scan's totals equal the
ground truth (DBSIZE on the primaries once things settle) and the snapshot says what it did."""

from __future__ import annotations

import threading

import redis
from redis.crc import key_slot

from dashboard import gate
from dashboard.connection import connect
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import DONE, ScanJob

KEYS = 6000


def plant(cluster, client, n: int = KEYS) -> set[bytes]:
    names = {f"item:{i}".encode() for i in range(n)}
    pipe = client.pipeline()
    for name in names:
        pipe.set(name, b"x" * 20)
    pipe.execute()
    cluster.sync_replicas()  # a replica taking over must not lose keys the test counts
    return names


def scan_with(url, hook, **options):
    """A small-paged scan through the dashboard's own (gated) client; ``hook(n, node)``
    runs after the n-th page (read from ``node``) is folded in (in the job thread: the
    other shards' walks go on meanwhile)."""
    client = gate.install(connect(url), allow_writes=False)
    pages = 0

    def on_batch(batch):
        nonlocal pages
        pages += 1
        hook(pages, batch.node)

    opts = {"max_count": 50, "start_count": 50, **options}
    try:
        return ScanJob(client, ScanOptions(**opts), on_batch=on_batch).run()
    finally:
        client.close()


def assert_exact(snap, cluster, planted):
    assert snap["state"] == DONE, snap["error"]
    cluster.wait_converged()  # the live primaries agree on who owns what: DBSIZE is the truth
    truth = cluster.dbsize()
    assert truth == len(planted)
    assert snap["result"]["tree"]["keys"] == truth, story(snap)
    assert snap["result"]["estimated"] is False
    assert snap["vanished"] == 0  # nothing was deleted: a MOVED key is not "vanished"
    assert snap["refused"] == 0  # nor refused: a CLUSTERDOWN page is read again


def story(snap) -> str:
    """What the scan did, one line per event and per pass (shown in full when it fails)."""
    lines = [f"{e['kind']} {e['node']}: {e['reason']}" for e in snap["events"]]
    keep = (
        "node",
        "read_from",
        "primary",
        "slots",
        "attempt",
        "scanned",
        "analysed",
        "moved",
        "skipped",
    )
    keep += ("vanished", "refused", "fallbacks", "done")
    lines += [" ".join(f"{k}={n.get(k)}" for k in keep) for n in snap["nodes"]]
    return "\n" + "\n".join(lines)


def busiest_slots(names, owned, count):
    per_slot = {}
    for name in names:
        slot = key_slot(name)
        if slot in owned:
            per_slot[slot] = per_slot.get(slot, 0) + 1
    return sorted(per_slot, key=per_slot.get, reverse=True)[:count]


def test_slots_resharded_during_a_scan(cluster, cluster_client):
    planted = plant(cluster, cluster_client)
    source, target = cluster.primaries()[:2]
    slots = busiest_slots(planted, set(cluster.slots_of(source)), 40)
    moved = []

    def reshard(page, _node):
        if page == 8:
            moved.append(cluster.migrate(slots, source, target))

    snap = scan_with(cluster.url, reshard)
    assert moved and moved[0] > 0
    assert_exact(snap, cluster, planted)
    assert snap["restarts"] >= 1
    restarts = [e for e in snap["events"] if e["kind"] == "restart"]
    assert any("slot" in e["reason"] or "MOVED" in e["reason"] for e in restarts)


def test_a_migration_in_progress_is_waited_out(cluster, cluster_client):
    """Keys half moved (MIGRATING/IMPORTING, some keys on each side) while the scan runs:
    keys answered with ASK are not counted as vanished, and nothing is counted twice."""
    planted = plant(cluster, cluster_client)
    source, target = cluster.primaries()[1:3]
    slots = busiest_slots(planted, set(cluster.slots_of(source)), 10)

    def reshard(page, _node):
        if page == 5:
            cluster.begin_migration(slots, source, target)
            cluster.move_keys(slots, source, target, limit=40)
        elif page == 60:
            cluster.move_keys(slots, source, target)
            cluster.finish_migration(slots, target)

    snap = scan_with(cluster.url, reshard, parallel=1)
    assert_exact(snap, cluster, planted)


def test_keys_migrated_under_a_page_fall_back_and_the_totals_stay_exact(cluster, cluster_client):
    """A page's keys go in ARGV to the node that returned them; keys migrated between
    the page's SCAN and its facts make that node refuse the call, the page is read again
    one call per slot (ASK: moved, not vanished) and the walk is redone once the slot
    has settled."""
    planted = plant(cluster, cluster_client)
    primaries = cluster.primaries()
    owner = {slot: node for node in primaries for slot in cluster.slots_of(node)}
    lock = threading.Lock()
    pages, moving = [], []

    def migrate(keys):  # a worker thread, between a page's SCAN and its facts
        with lock:
            if moving:
                return
            slot = key_slot(keys[-1])
            source = owner[slot]
            target = next(n for n in primaries if n is not source)
            cluster.begin_migration([slot], source, target)
            cluster.move_keys([slot], source, target)
            moving.append(([slot], target))

    def on_batch(batch):  # the job thread: let the slot settle some pages later
        pages.append(batch)
        if len(pages) == 30 and moving:
            cluster.finish_migration(*moving[0])

    client = gate.install(connect(cluster.url), allow_writes=False)
    options = ScanOptions(max_count=50, start_count=50)
    try:
        snap = ScanJob(client, options, on_batch=on_batch, on_keys=migrate).run()
    finally:
        client.close()
    assert moving and len(pages) > 30
    assert_exact(snap, cluster, planted)
    fallbacks = [b for b in pages if b.fallback]
    assert fallbacks and sum(b.moved for b in fallbacks) >= 1
    assert all(b.vanished == 0 for b in pages)
    assert snap["restarts"] >= 1


def test_a_primary_killed_during_a_scan(cluster, cluster_client):
    planted = plant(cluster, cluster_client)
    victim = cluster.primaries()[0]

    def kill(page, node):  # mid-walk of the victim's own shard, whatever the thread timing
        if page >= 10 and node == f"127.0.0.1:{victim.port}" and victim.alive():
            victim.kill()

    snap = scan_with(cluster.url, kill)
    assert_exact(snap, cluster, planted)
    address = f"127.0.0.1:{victim.port}"
    assert address not in [n["node"] for n in snap["nodes"]]  # read from the new primary
    kinds = {e["kind"] for e in snap["events"]}
    assert {"retry", "refresh"} <= kinds
    assert any(e["kind"] == "restart" and e["node"] == address for e in snap["events"])


def test_a_manual_failover_during_a_scan(cluster, cluster_client):
    planted = plant(cluster, cluster_client)
    primary = cluster.primaries()[2]
    promoted = []

    def failover(page, node):
        if page >= 10 and node == f"127.0.0.1:{primary.port}" and not promoted:
            promoted.append(cluster.failover(primary))

    snap = scan_with(cluster.url, failover)
    assert_exact(snap, cluster, planted)
    assert promoted and f"127.0.0.1:{promoted[0].port}" in [n["node"] for n in snap["nodes"]]
    assert snap["restarts"] >= 1


def test_a_standalone_restart_during_a_scan_restarts_the_pass(private_server):
    server = private_server("--appendonly", "yes", "--appendfsync", "always")
    with redis.Redis(port=server.port) as admin:
        pipe = admin.pipeline(transaction=False)
        for i in range(3000):
            pipe.set(f"k:{i}", i)
        pipe.execute()

    def restart(page, _node):
        if page == 5:
            server.restart()

    snap = scan_with(server.url, restart)
    assert snap["state"] == DONE, snap["error"]
    assert snap["result"]["tree"]["keys"] == 3000
    assert snap["restarts"] == 1
    assert any("restarted" in e["reason"] for e in snap["events"] if e["kind"] == "restart")


def test_refresh_topology_follows_a_failover(cluster, cluster_client):
    """What the observer calls after connection errors: the map catches up, pages work."""
    from dashboard.embedded import wait_for
    from dashboard.inspect.live.streams import StreamFinder
    from dashboard.inspect.nodes import is_topology_error, node_clients, refresh_topology

    for i in range(6):
        cluster_client.xadd(f"orders:{i}", {"n": i})
    cluster.sync_replicas()
    client = gate.install(connect(cluster.url), allow_writes=False)
    try:
        assert StreamFinder(client).find()["complete"]
        assert refresh_topology(client) is False  # nothing moved
        victim = cluster.primaries()[0]
        heir = cluster.replica_of(victim)
        victim.kill()
        wait_for(lambda: heir in cluster.primaries(), "the replica to take over", 60)
        cluster.wait_converged()
        stale = {address for address, _, _ in node_clients(client)}
        assert f"127.0.0.1:{victim.port}" in stale  # the client still has the old map
        try:
            StreamFinder(client).find()
        except Exception as exc:  # the dead primary: a topology error, not a bug
            assert is_topology_error(exc)
        assert refresh_topology(client) is True
        fresh = {address for address, _, _ in node_clients(client)}
        assert fresh == {f"127.0.0.1:{n.port}" for n in cluster.primaries()}
        found = StreamFinder(client).find()
        assert found["complete"] and len(found["streams"]) == 6
    finally:
        client.close()


def test_refresh_topology_on_standalone_and_error_kinds(r):
    from redis import exceptions as rx

    from dashboard.inspect.nodes import is_topology_error, is_transient_error, refresh_topology

    assert refresh_topology(r) is False
    topology = [
        rx.ConnectionError("Connection refused"),
        rx.TimeoutError("Timeout reading from socket"),
        rx.ClusterDownError("CLUSTERDOWN The cluster is down"),
        rx.TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
        rx.MovedError("3999 127.0.0.1:6381"),
        rx.AskError("3999 127.0.0.1:6381"),
        rx.ResponseError("MASTERDOWN Link with MASTER is down"),
        rx.RedisClusterException("Redis Cluster cannot be connected. Please provide..."),
    ]
    other = [
        rx.AuthenticationError("WRONGPASS invalid username-password pair"),
        rx.NoPermissionError("NOPERM this user has no permissions to run the 'scan' command"),
        rx.BusyLoadingError("LOADING Redis is loading the dataset in memory"),
        rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        rx.MaxConnectionsError("Too many connections"),
        ValueError("not redis"),
    ]
    assert all(is_topology_error(e) for e in topology)
    assert not any(is_topology_error(e) for e in other)
    assert is_transient_error(other[2]) and not is_transient_error(other[0])
