"""The namespace rollup's JSON, whole, for a handful of facts chosen here: every field of
every node, the order of children, the heaps, the namespace cap, unknown sizes and TTLs.
No Redis: the facts are what a scan page would hand over (docs/scan.md has the shape)."""

from dashboard.inspect.keyspace.rollup import NO_SIZES, Rollup
from dashboard.keyid import encode_key

FACTS = [
    # key, type, pttl (ms; -1 none; None unknown), bytes (None: unsized), count
    (b"user:1:name", "string", -1, 100, 5),
    (b"user:2:name", "string", 30_000, 50, 3),  # < 1 min
    (b"user:1:cart", "hash", 7_200_000, 300, 4),  # < 1 day
    (b"cache:p:9", "string", None, None, 10),  # TTL and size unknown
    (b"plain", "set", -1, 40, 2),  # no delimiter: the root bucket
    (b"z:a:1", "zset", 100_000_000, 10, 1),  # past the namespace cap: (other)
    (b"z:b:2", "zset", 700_000_000, 20, 6),  # >= 7 days, (other) too
]
HIST = ("<1m", "<1h", "<1d", "<7d", ">=7d", "none", "unknown")


def _ttl(*counts):
    hist = dict(zip(HIST, counts, strict=True))
    with_ttl = sum(counts[:5])
    return {
        "with_ttl": with_ttl,
        "without_ttl": hist["none"],
        "unknown": hist["unknown"],
        "histogram": hist,
    }


def _entry(key, kind, ttl, size, count):
    return {
        "key": key.decode(),
        "id": encode_key(key),
        "length": len(key),
        "type": kind,
        "bytes": size,
        "count": count,
        "ttl_ms": ttl,
    }


E = {f[0]: _entry(*f) for f in FACTS}


def _node(
    kind,
    name,
    path,
    keys,
    size,
    direct_keys,
    direct_bytes,
    types,
    ttl,
    top_bytes,
    top_count,
    children=(),
    unsized=0,
    unavailable=None,
):
    return {
        "kind": kind,
        "name": name,
        "path": path,
        "id": None if path is None else encode_key(path.encode()),
        "depth": 0 if path is None else path.count(":") + 1,
        "keys": keys,
        "bytes": size,
        "bytes_unavailable": unavailable,
        "unsized_keys": unsized,
        "direct_keys": direct_keys,
        "direct_bytes": direct_bytes,
        "types": types,
        "ttl": ttl,
        "top_bytes": top_bytes,
        "top_count": top_count,
        "owner": None,
        "children": list(children),
    }


def test_the_whole_tree():
    rollup = Rollup(top_n=2, max_namespaces=2)
    rollup.add_batch(FACTS)
    user = _node(
        "namespace",
        "user",
        "user",
        3,
        450,
        3,
        450,
        {"hash": {"keys": 1, "bytes": 300}, "string": {"keys": 2, "bytes": 150}},
        _ttl(1, 0, 1, 0, 0, 1, 0),
        [E[b"user:1:cart"], E[b"user:1:name"]],
        {"hash": [E[b"user:1:cart"]], "string": [E[b"user:1:name"], E[b"user:2:name"]]},
    )
    cache_p = _node(
        "namespace",
        "p",
        "cache:p",
        1,
        None,
        1,
        None,
        {"string": {"keys": 1, "bytes": None}},
        _ttl(0, 0, 0, 0, 0, 0, 1),
        [],
        {"string": [E[b"cache:p:9"]]},
        unsized=1,
        unavailable=NO_SIZES,
    )
    cache = _node(
        "namespace",
        "cache",
        "cache",
        1,
        None,
        0,
        0,
        {"string": {"keys": 1, "bytes": None}},
        _ttl(0, 0, 0, 0, 0, 0, 1),
        [],
        {"string": [E[b"cache:p:9"]]},
        children=[cache_p],
        unsized=1,
        unavailable=NO_SIZES,
    )
    root = _node(
        "root",
        "(root)",
        None,
        1,
        40,
        1,
        40,
        {"set": {"keys": 1, "bytes": 40}},
        _ttl(0, 0, 0, 0, 0, 1, 0),
        [E[b"plain"]],
        {"set": [E[b"plain"]]},
    )
    other = _node(
        "other",
        "(other)",
        None,
        2,
        30,
        2,
        30,
        {"zset": {"keys": 2, "bytes": 30}},
        _ttl(0, 0, 0, 1, 1, 0, 0),
        [E[b"z:b:2"], E[b"z:a:1"]],
        {"zset": [E[b"z:b:2"], E[b"z:a:1"]]},
    )
    other["folded_keys"] = 2
    other["owner"], other["children"] = other.pop("owner"), other.pop("children")
    total = _node(
        "total",
        "(all keys)",
        None,
        7,
        520,
        1,
        40,
        {
            "hash": {"keys": 1, "bytes": 300},
            "string": {"keys": 3, "bytes": 150},
            "set": {"keys": 1, "bytes": 40},
            "zset": {"keys": 2, "bytes": 30},
        },
        _ttl(1, 0, 1, 1, 1, 2, 1),
        [E[b"user:1:cart"], E[b"user:1:name"]],
        {
            "hash": [E[b"user:1:cart"]],
            "set": [E[b"plain"]],
            "string": [E[b"cache:p:9"], E[b"user:1:name"]],
            "zset": [E[b"z:b:2"], E[b"z:a:1"]],
        },
        children=[user, cache, root, other],
        unsized=1,
    )
    result = rollup.to_json()
    assert result == {
        "tree": total,
        "namespaces": 2,
        "folded_keys": 2,
        "analysed_keys": 7,
        "known_layouts": [],
        "settings": {"delimiter": ":", "depth": 3, "top_n": 2, "max_namespaces": 2},
    }
    assert list(result["tree"]["types"]) == ["hash", "string", "set", "zset"]  # by bytes


def test_sampled_counters_are_scaled_and_rounded():
    rollup = Rollup()
    rollup.add_batch([(b"a:1", "string", -1, 10, 1), (b"a:2", "string", 5000, 15, 1)])
    tree = rollup.to_json(factor=2.5)["tree"]
    assert (tree["keys"], tree["bytes"], tree["direct_keys"]) == (5, 62, 0)  # 62.5 -> 62
    assert tree["ttl"]["with_ttl"] == 2 and tree["ttl"]["without_ttl"] == 2
    assert tree["types"]["string"] == {"keys": 5, "bytes": 62}
    assert tree["top_bytes"][0]["bytes"] == 15  # a key's own size is never scaled
    doubled = rollup.to_json(factor=2.0)["tree"]  # a sample of half the keys
    assert (doubled["keys"], doubled["bytes"], doubled["ttl"]["with_ttl"]) == (4, 50, 2)


def test_a_reason_given_by_the_scan_replaces_the_generic_one():
    rollup = Rollup()
    rollup.bytes_reason = "MEMORY USAGE refused by ACL"
    rollup.add(b"k", "string", -1, None, 1)
    tree = rollup.to_json()["tree"]
    assert tree["bytes"] is None and tree["bytes_unavailable"] == "MEMORY USAGE refused by ACL"
    assert tree["direct_bytes"] is None


def test_shard_rollups_merged_past_the_namespace_cap_count_every_folded_key():
    """A scan keeps one rollup per shard and merges them: namespaces past the cap fold
    into (other) with their keys counted as folded, whichever rollup folded them."""

    def shard(*keys):
        rollup = Rollup(max_namespaces=1)
        rollup.add_batch([(key, "string", -1, 10, 1) for key in keys])
        return rollup

    first, second = shard(b"a:1", b"b:1"), shard(b"c:1", b"c:2", b"d:1")
    assert (first.folded_keys, second.folded_keys) == (1, 1)  # b:1 and d:1
    merged = Rollup(max_namespaces=1)
    merged.merge(first)
    merged.merge(second)  # c has no room left in the merged tree: its 2 keys fold too
    data = merged.to_json()
    assert data["folded_keys"] == 4
    assert [(n["name"], n["keys"]) for n in data["tree"]["children"]] == [
        ("a", 1),
        ("(other)", 4),
    ]


def test_types_are_listed_by_bytes_then_keys_then_name():
    rollup = Rollup()
    rollup.add_batch(
        [
            (b"t:z1", "zset", -1, 5, 1),
            (b"t:z2", "zset", -1, 5, 1),
            (b"t:l1", "list", -1, 4, 1),
            (b"t:l2", "list", -1, 6, 1),
            (b"t:h1", "hash", -1, 10, 1),
            (b"t:s1", "set", -1, 20, 1),
        ]
    )
    types = rollup.to_json()["tree"]["types"]
    assert list(types) == ["set", "list", "zset", "hash"]  # 20 B; 10 B in 2 keys x2; 1 key
    assert types["list"] == {"keys": 2, "bytes": 10}


def test_children_by_bytes_then_keys_then_name_unknown_sizes_last_root_before_other():
    rollup = Rollup(max_namespaces=4)
    rollup.add_batch(
        [
            (b"tiny:1", "string", -1, 1, 1),
            (b"unsized:1", "string", -1, None, 1),
            (b"unsized:2", "string", -1, None, 1),
            (b"pair:1", "string", -1, 50, 1),
            (b"pair:2", "string", -1, 50, 1),
            (b"one:1", "string", -1, 100, 1),
            (b"plain", "string", -1, 10, 1),  # the root bucket
            (b"far:1", "string", -1, 500, 1),  # past the cap: (other), bigger than the root
        ]
    )
    names = [n["name"] for n in rollup.to_json()["tree"]["children"]]
    assert names == ["pair", "one", "tiny", "unsized", "(root)", "(other)"]


def test_id_segments_at_the_edges_of_their_rules():
    from dashboard.inspect.keyspace.rollup import is_id_segment

    assert not is_id_segment(b"w" * 64) and is_id_segment(b"w" * 65)  # over 64 bytes
    assert not is_id_segment(b"my key")  # a space is printable: a word
    assert is_id_segment(b"a\x7fb") and is_id_segment(b"a\x1fb")  # control characters
    assert is_id_segment(b"ab1cd2ef3gh4ijklm")  # a token switching 4 times
    assert not is_id_segment(b"ab1cd2ef3ghijklmn")  # 3 times: a word with digits


def test_counts_over_several_pages_and_a_key_with_one_ms_left():
    rollup = Rollup()
    rollup.add_batch([(b"a:1", "string", 1, None, 1), (b"a:2", "string", -1, 10, 1)])
    rollup.add_batch([(b"a:3", "string", -1, None, 1)])
    tree = rollup.to_json()["tree"]
    assert tree["unsized_keys"] == 2 and tree["keys"] == 3
    assert tree["ttl"]["histogram"]["<1m"] == 1 and tree["ttl"]["histogram"]["none"] == 2
