"""The rollup at its edges: the settings it refuses (each at its boundary, with the
message the CLI and the web form show), a text delimiter, the top-N heaps when a page's
keys arrive in heap order or a key is read twice, and the owner of the last namespace
kept under ``max_namespaces``. No Redis: facts as a scan page hands them over."""

from __future__ import annotations

import pytest

from dashboard.inspect.keyspace.rollup import Rollup, Stats

REFUSED = "need a delimiter, depth >= 1, top_n >= 1 and max_namespaces >= 1"


@pytest.mark.parametrize(
    "settings",
    [
        {"delimiter": b""},
        {"delimiter": ""},
        {"depth": 0},
        {"top_n": 0},
        {"max_namespaces": 0},
        {"depth": -1, "top_n": 5},
    ],
)
def test_a_setting_below_its_minimum_is_refused_with_the_rule(settings):
    with pytest.raises(ValueError) as refused:
        Rollup(**settings)
    assert str(refused.value) == REFUSED


def test_each_setting_at_its_minimum_is_accepted():
    rollup = Rollup(b"/", depth=1, top_n=1, max_namespaces=1)
    rollup.add_batch([(b"a/b/c", "string", -1, 10, 1), (b"x/y", "string", -1, 20, 1)])
    assert rollup.namespace(b"a/b/c") == (b"a",)  # depth 1: one segment at most
    assert rollup.folded_keys == 1  # max 1 namespace: x folds into (other)
    assert [e[0] for e in rollup.nodes[(b"a",)].top_bytes] == [10]


@pytest.mark.parametrize("delimiter", [":", "·", "::"])
def test_a_text_delimiter_splits_like_its_utf8_bytes(delimiter):
    raw = delimiter.encode("utf-8")
    key = raw.join([b"shop", b"cart", b"42", b"items"])
    assert Rollup(delimiter).delimiter == raw
    assert Rollup(delimiter).namespace(key) == Rollup(raw).namespace(key) == (b"shop", b"cart")


def _sizes(heap):
    return sorted((entry[0] for entry in heap), reverse=True)


def test_the_top_n_keeps_the_biggest_whatever_the_heap_order():
    """Three keys pushed as 10, 30, 20 leave the heap as [10, 30, 20]: a later 25 must
    still replace 10 (the smallest), in the same page or the next."""
    facts = [(f"k:{size}".encode(), "zset", -1, size, size) for size in (10, 30, 20)]
    late = [(b"k:25", "zset", -1, 25, 25)]
    for pages in ([facts + late], [facts, late]):
        stats = Stats()
        for page in pages:
            stats.add_many(page, 3)
        assert _sizes(stats.top_bytes) == [30, 25, 20]
        assert _sizes(stats.top_count["zset"]) == [30, 25, 20]


def test_a_key_read_twice_is_listed_once_with_its_first_reading():
    """SCAN may return a key twice while the table rehashes; its TTL has moved on by the
    second reading. The top list keeps one entry for it, and every other key."""
    stats = Stats()
    stats.add_many([(b"a", "string", 5000, 10, None), (b"b", "string", -1, 20, None)], 2)
    stats.add_many([(b"a", "string", 4000, 10, None)], 2)
    assert sorted(stats.top_bytes) == [
        (10, b"a", "string", 5000, 10, None),
        (20, b"b", "string", -1, 20, None),
    ]


CELERY_ROOT = [
    (b"unacked", "hash", -1, 100, 1),
    (b"unacked_index", "zset", -1, 100, 1),
    (b"_kombu.binding.celery", "set", -1, 100, 1),
]


def test_the_last_namespace_kept_still_gets_its_owner():
    """``max_namespaces`` does not count the root bucket; the owner evidence must not
    either, or the last namespace kept loses its owner when the root holds a library's
    keys (here celery's, and one namespace of rq's)."""
    rollup = Rollup(b":", 3, 10, max_namespaces=1)
    rollup.add_batch(CELERY_ROOT)
    rollup.add_batch([(b"rq:queues", "set", -1, 100, 1)])
    rollup.add_batch([(b"rq:job:abc", "hash", -1, 100, 1)])  # a second namespace: (other)
    tree = rollup.to_json()["tree"]
    owners = {child["name"]: child["owner"] for child in tree["children"]}
    assert owners == {"rq": "rq", "(root)": "celery/kombu", "(other)": None}


def test_the_owner_evidence_is_bounded_like_the_namespaces():
    """The tally behind ``owner`` keeps as many namespaces as the rollup (plus the root
    bucket); the rest share one overflow entry, so memory stays bounded."""
    rollup = Rollup(b":", 3, 10, max_namespaces=3)
    queues = ["orders", "mails", "sms", "push", "ship", "bill"]
    rollup.add_batch(
        [(f"bull:{q}:{i}".encode(), "hash", -1, 100, 1) for q in queues for i in (1, 2)]
    )
    assert len(rollup.nodes) == 3 + 1  # 3 namespaces and the root bucket
    kept = [ns for ns in rollup.layouts.by_ns if ns is not None]
    assert len(kept) == 3 + 1 and None in rollup.layouts.by_ns
