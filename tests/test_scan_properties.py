"""Invariants of the keyspace scan, for any generated keyspace, on the suite's real
redis-server (MEMORY USAGE, TYPE and ACLs are Redis behaviour: no stand-in here).

* every key SCAN returned is accounted for exactly once:
  ``analysed + vanished + refused + moved == scanned``;
* byte totals are the sum of MEMORY USAGE of the keys under a node, and equal the
  sum over the node's types; each node's bytes and keys are its direct ones plus
  its children's; the tree's key count is ``analysed``.

Examples are few (each one plants a keyspace and scans it twice): the properties are
about bookkeeping, which small keyspaces exercise as well as big ones.
"""

from __future__ import annotations

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.inspect.keyspace.rollup import Rollup, iter_nodes
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import scan_keyspace
from dashboard.keyid import encode_key

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TYPES = ("string", "hash", "list", "set", "zset", "stream")
WORDS = st.sampled_from([b"user", b"cache", b"s", b"queue", b"a-b", b"\xffbin", b"<i>"])
NAME = st.one_of(
    st.integers(0, 10**6).map(lambda i: str(i).encode()),
    st.binary(min_size=1, max_size=12),
)


@st.composite
def keyspaces(draw, max_keys: int = 30) -> dict[bytes, tuple[str, int, bool]]:
    """``{key: (type, size, with_ttl)}``: namespaces 0-3 deep, binary names, every type."""
    keys: dict[bytes, tuple[str, int, bool]] = {}
    for _ in range(draw(st.integers(1, max_keys))):
        path = draw(st.lists(WORDS, max_size=3))
        key = b":".join([*path, draw(NAME)])
        keys[key] = (draw(st.sampled_from(TYPES)), draw(st.integers(1, 40)), draw(st.booleans()))
    return keys


def plant(client: redis.Redis, keys: dict[bytes, tuple[str, int, bool]]) -> None:
    pipe = client.pipeline(transaction=False)
    for key, (kind, size, with_ttl) in keys.items():
        members = [f"m{i}" for i in range(size)]
        if kind == "string":
            pipe.set(key, "x" * size)
        elif kind == "hash":
            pipe.hset(key, mapping=dict.fromkeys(members, "v"))
        elif kind == "list":
            pipe.rpush(key, *members)
        elif kind == "set":
            pipe.sadd(key, *members)
        elif kind == "zset":
            pipe.zadd(key, {m: i for i, m in enumerate(members)})
        else:
            for i in range(1 + size % 4):
                pipe.xadd(key, {"n": i})
        if with_ttl:
            pipe.expire(key, 3600)
    pipe.execute()


def memory_of(client: redis.Redis, keys) -> dict[bytes, int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def check_accounting(snap: dict) -> None:
    parts = snap["analysed"] + snap["vanished"] + snap["refused"] + snap["moved"]
    assert parts == snap["scanned"], snap
    assert snap["result"]["tree"]["keys"] == snap["analysed"]


def check_tree_sums(tree: dict) -> None:
    """Sizes add up at every node: types, direct part plus children."""
    for node in iter_nodes(tree):
        kids = node["children"]
        assert node["keys"] == sum(t["keys"] for t in node["types"].values())
        if node["bytes"] is not None:
            assert node["bytes"] == sum(t["bytes"] for t in node["types"].values()), node["name"]
        if node["kind"] == "namespace":
            assert node["keys"] == node["direct_keys"] + sum(k["keys"] for k in kids)
            direct = node["direct_bytes"] or 0
            assert node["bytes"] == direct + sum(k["bytes"] for k in kids), node["name"]
        ttl = node["ttl"]
        assert ttl["with_ttl"] + ttl["without_ttl"] + ttl["unknown"] == node["keys"]
        assert sum(ttl["histogram"].values()) == node["keys"]
    total_kids = tree["children"]
    assert tree["keys"] == sum(k["keys"] for k in total_kids)
    assert tree["bytes"] == sum(k["bytes"] for k in total_kids)


def expected_by_node(keys, sizes: dict[bytes, int]) -> dict[str, tuple[int, int]]:
    """``{node id: (keys, bytes)}`` from MEMORY USAGE of each key and its namespace."""
    namespace = Rollup().namespace
    out: dict[str, list[int]] = {}
    for key in keys:
        ns = namespace(key)
        for level in range(1, len(ns) + 1):
            entry = out.setdefault(encode_key(b":".join(ns[:level])), [0, 0])
            entry[0] += 1
            entry[1] += sizes[key]
    return {k: (v[0], v[1]) for k, v in out.items()}


@PROPERTY
@given(keys=keyspaces())
def test_bytes_are_the_sum_of_memory_usage_on_both_paths(r, keys):
    r.flushdb()
    plant(r, keys)
    sizes = memory_of(r, list(keys))
    by_type: dict[str, list[int]] = {}
    for key, (kind, _, _) in keys.items():
        entry = by_type.setdefault(kind, [0, 0])
        entry[0] += 1
        entry[1] += sizes[key]
    expected = expected_by_node(keys, sizes)
    for path in ("lua", "pipeline"):
        snap = scan_keyspace(r, ScanOptions(path=path, min_count=1, start_count=7))
        assert snap["state"] == "done" and snap["path"] == path
        assert (snap["scanned"], snap["analysed"]) == (len(keys), len(keys))
        check_accounting(snap)
        tree = snap["result"]["tree"]
        check_tree_sums(tree)
        assert tree["bytes"] == sum(sizes.values())
        assert {t: [v["keys"], v["bytes"]] for t, v in tree["types"].items()} == by_type
        seen = {
            n["id"]: (n["keys"], n["bytes"]) for n in iter_nodes(tree) if n["kind"] == "namespace"
        }
        assert seen == expected


@PROPERTY
@given(keys=keyspaces(), data=st.data())
def test_keys_deleted_mid_scan_are_vanished_and_nothing_else(r, make_client, keys, data):
    r.flushdb()
    plant(r, keys)
    doomed = set(data.draw(st.lists(st.sampled_from(sorted(keys)), unique=True), label="doomed"))
    deleter = make_client()
    path = data.draw(st.sampled_from(["lua", "pipeline"]), label="path")

    def delete(page):  # between a page's SCAN and its facts
        gone = [k for k in page if k in doomed]
        if gone:
            deleter.delete(*gone)

    snap = scan_keyspace(r, ScanOptions(path=path, min_count=1, start_count=5), on_keys=delete)
    assert snap["state"] == "done"
    check_accounting(snap)
    assert (snap["vanished"], snap["refused"], snap["moved"]) == (len(doomed), 0, 0)
    assert snap["analysed"] == len(keys) - len(doomed)
    check_tree_sums(snap["result"]["tree"])


@settings(PROPERTY, max_examples=25)
@given(keys=keyspaces(max_keys=20), hidden=st.sets(st.integers(0, 50), max_size=8))
def test_keys_refused_by_acl_are_refused_and_nothing_else(acl_pair, keys, hidden):
    admin, limited = acl_pair
    admin.flushdb()
    keys = {b"ok:" + key: facts for key, facts in keys.items()}
    plant(admin, keys)
    secret = {f"secret:{i}".encode() for i in hidden}
    for key in secret:
        admin.set(key, "v")
    snap = scan_keyspace(limited)
    assert snap["state"] == "done"
    check_accounting(snap)
    assert (snap["refused"], snap["vanished"], snap["moved"]) == (len(secret), 0, 0)
    assert snap["analysed"] == len(keys)
    tree = snap["result"]["tree"]
    check_tree_sums(tree)
    assert tree["bytes"] == sum(memory_of(admin, list(keys)).values())


@pytest.fixture
def acl_pair(private_server):
    """An admin client and one whose ACL lets it read ``ok:*`` keys only."""
    server = private_server()
    admin = redis.Redis(port=server.port)
    admin.acl_setuser("scanner", enabled=True, passwords=["+pw"], keys=["ok:*"], commands=["+@all"])
    limited = redis.Redis(port=server.port, username="scanner", password="pw")
    yield admin, limited
    admin.close()
    limited.close()
