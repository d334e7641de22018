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

from dashboard.inspect.keyspace.passes import ShardPass, _verdict
from dashboard.inspect.keyspace.rollup import Rollup
from dashboard.inspect.keyspace.scan import NodeScanner, ScanOptions

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
