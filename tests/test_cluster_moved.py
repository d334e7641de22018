"""MOVED and ASK at the level where they are handled: one page of one node's scan, on the
suite's real cluster, with the slots of the page's keys moved between its SCAN and its
facts. The job-level tests (test_cluster_topology.py) redo a pass whose node lost slots
anyway, so they pass even when the scanner's own MOVED/ASK handling is gone; these do
not: a key whose slot left the node is ``moved``, never ``vanished`` nor a fact, and a
pass that saw one is never committed as exact."""

from __future__ import annotations

import pytest
import redis
from redis.crc import key_slot

from dashboard.embedded import wait_for
from dashboard.embedded_cluster import EmbeddedCluster
from dashboard.inspect.keyspace.passes import ShardPass, _verdict
from dashboard.inspect.keyspace.rollup import Rollup
from dashboard.inspect.keyspace.scan import NodeScanner, ScanOptions
from dashboard.inspect.nodes import is_topology_error

PATHS = ["lua", "pipeline"]


def _plant(client, n: int = 800) -> None:
    pipe = client.pipeline()
    for i in range(n):
        pipe.set(f"m:{i}", "v")
    pipe.execute()


def _first_page(cluster, path, move):
    """Scan one page of the first primary; ``move(slots, source, target)`` runs between
    the page's SCAN and its facts. Returns (batch, keys of the moved slots, scanner)."""
    source, target = cluster.primaries()[:2]
    conn = redis.Redis(port=source.port, socket_timeout=10)
    seen: list[bytes] = []

    def hook(page):
        if not seen:
            seen.extend(page)
            move(sorted({key_slot(k) for k in page}), source, target)

    options = ScanOptions(path=path, start_count=40, min_count=40, max_count=40)
    scanner = NodeScanner(conn, options, name="first", cluster=True, on_keys=hook)
    try:
        batch = scanner.next_batch()
    finally:
        conn.close()
    return batch, seen, scanner


@pytest.mark.parametrize("path", PATHS)
def test_a_slot_resharded_under_a_page_gives_moved_keys(cluster, cluster_client, path):
    _plant(cluster_client)
    batch, page, scanner = _first_page(cluster, path, cluster.migrate)
    assert page and batch.scanned == len(page)
    assert (batch.moved, batch.vanished, batch.refused) == (len(page), 0, 0)
    assert batch.facts == []
    assert scanner.moved == len(page)
    while not scanner.done:  # the rest of the walk finds no more: the count stays
        scanner.next_batch()
    assert scanner.moved == len(page)


@pytest.mark.parametrize("path", PATHS)
def test_keys_already_migrated_answer_ask_and_are_moved(cluster, cluster_client, path):
    _plant(cluster_client)
    moved_keys: list[int] = []

    def half(slots, source, target):  # MIGRATING: keys moved so far answer ASK
        cluster.begin_migration(slots, source, target)
        moved_keys.append(cluster.move_keys(slots, source, target))

    batch, page, _ = _first_page(cluster, path, half)
    assert moved_keys[0] >= len(page) > 0  # (other keys of those slots moved too)
    assert (batch.moved, batch.vanished, batch.refused) == (len(page), 0, 0)
    assert batch.facts == []


def test_a_pass_that_saw_moved_keys_is_redone_not_committed():
    scanner = NodeScanner(None, ScanOptions(), name="n", cluster=True)
    scanner.done = True
    p = ShardPass(source=None, assigned=None, scanner=scanner, rollup=Rollup())
    assert _verdict(None, p) == ("verified", None)
    scanner.moved = 3
    outcome, why = _verdict(None, p)
    assert outcome == "changed" and "3 key(s) answered MOVED/ASK" in why
    scanner.done = False
    assert _verdict(None, p) == ("sampled", None)  # a sample does not end on a verdict


@pytest.fixture(scope="module")
def lone_cluster():
    """A one-node cluster of this module's own: its slots are taken away and given back."""
    with EmbeddedCluster(primaries=1, replicas=0) as c:
        yield c


@pytest.mark.parametrize("path", ["auto", *PATHS])
def test_a_cluster_down_mid_scan_is_retried_never_counted_as_refused(lone_cluster, path):
    """CLUSTERDOWN (here: a slot left without owner) answers every keyed command for a
    while. The page must fail as a topology error and be read again once the cluster is
    back; counting its keys as refused, or leaving the Lua path for it, loses keys."""
    admin = redis.Redis(port=lone_cluster.nodes[0].port, socket_timeout=10)
    admin.flushall()
    pipe = admin.pipeline(transaction=False)
    for i in range(300):
        pipe.set(f"d:{{{i % 7}}}:{i}", "v")  # a few slots, each with keys in most pages
    pipe.execute()
    pages: list[int] = []

    def down(page):
        pages.append(len(page))
        if len(pages) == 2:  # the first page went through: its path is in use
            admin.execute_command("CLUSTER", "DELSLOTS", 0)

    options = ScanOptions(path=path, start_count=40, min_count=40, max_count=40)
    scanner = NodeScanner(admin, options, name="lone", cluster=True, on_keys=down)
    batches = [scanner.next_batch()]
    used = scanner.path
    try:
        with pytest.raises(redis.RedisError) as caught:
            scanner.next_batch()
        assert is_topology_error(caught.value), caught.value
    finally:
        admin.execute_command("CLUSTER", "ADDSLOTS", 0)
        wait_for(lambda: admin.cluster("info")["cluster_state"] == "ok", "the slot back", 30)
    while not scanner.done:
        batches.append(scanner.next_batch())
    assert scanner.path == used  # a topology error is not a reason to change path
    assert sum(len(b.facts) for b in batches) == 300
    assert sum(b.refused + b.vanished + b.moved for b in batches) == 0
    admin.close()


def test_pages_without_a_key_of_ours_still_walk_at_full_size(lone_cluster):
    """A scanner assigned none of the node's slots (they are another pass's) skips every
    key, yet its pages keep their size (the next SCAN rides with COUNT), say they did
    not fall back, and time themselves by the scanner's clock."""
    admin = redis.Redis(port=lone_cluster.nodes[0].port, socket_timeout=10)
    admin.flushall()
    pipe = admin.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"o:{i}", "v")
    pipe.execute()
    ticks = iter(range(10_000))
    options = ScanOptions(start_count=50, min_count=50, max_count=50)
    scanner = NodeScanner(admin, options, name="lone", cluster=True, slots=frozenset())
    scanner.clock = lambda: 100.0 + next(ticks) * 2.0  # each call two seconds on
    batches = []
    while not scanner.done:
        batches.append(scanner.next_batch())
    admin.close()
    assert sum(b.scanned for b in batches) == sum(b.skipped for b in batches) == 500
    assert not any(b.facts for b in batches)
    assert all(b.fallback is False for b in batches)
    assert all(b.wall_us == 2_000_000 for b in batches)
    assert len(batches) <= 2 * 500 // 50  # SCAN's default COUNT 10 would take ~50 pages
