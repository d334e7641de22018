"""The scan engine and the namespace rollup, on the suite's real redis-server
(unless noted: the id rule is pure, and one test runs on fakeredis)."""

import json
from pathlib import Path

import pytest
import redis

from dashboard import gate
from dashboard.inspect.keyspace.rollup import Rollup, is_id_segment, iter_nodes, ttl_bucket
from dashboard.inspect.keyspace.scan import NodeScanner, ScanOptions
from dashboard.inspect.keyspace.scanjob import scan_keyspace
from dashboard.keyid import resolve_address
from dashboard.patterns import scripts

HTML_KEY = b"<img src=x onerror=alert(1)>"
BAD_UTF8 = b"bin:\xff\xfe:x"


def plant(r):
    """Every type, with and without TTL, in several namespaces (10 keys)."""
    r.set("user:1:name", "alice")
    r.set("user:2:name", "bob", ex=2 * 3600)  # TTL < 1 day
    r.hset("user:1:profile", mapping={"a": "1", "b": "2", "c": "3"})
    r.rpush("queue:jobs:high", *range(5))
    r.sadd("tags:red", "a", "b", "c", "d")
    r.zadd("leaderboard:daily", {"a": 1, "b": 2})
    r.expire("leaderboard:daily", 30)  # TTL < 1 minute
    r.xadd("events:clicks", {"x": 1})
    r.xadd("events:clicks", {"x": 2})
    r.pfadd("hll:visitors", "a", "b", "c")
    r.set("plain", "v")  # no delimiter: the root bucket
    r.set("cache:product:42", "x" * 1000, ex=10 * 86400)  # TTL >= 7 days


def node(tree, path):
    found = [n for n in iter_nodes(tree) if n["kind"] == "namespace" and n["path"] == path]
    assert len(found) == 1, f"no namespace {path!r}"
    return found[0]


def strip_ttl(data):
    """Entries carry the live PTTL, which moves between two scans."""
    if isinstance(data, dict):
        return {k: strip_ttl(v) for k, v in data.items() if k != "ttl_ms"}
    if isinstance(data, list):
        return [strip_ttl(v) for v in data]
    return data


def test_script_returns_facts_and_server_time(r):
    plant(r)
    keys = [b"user:1:profile", b"queue:jobs:high", b"gone", b"hll:visitors"]
    reply = scripts.load("scan_batch").call_ro(r, keys, [b""])
    fields = reply.split(b"\t")  # one string: the client parses one reply per page
    assert int(fields[0]) >= 0  # server µs between TIME calls
    rows = [fields[1 + 4 * i : 5 + 4 * i] for i in range(len(keys))]
    assert rows[0][:2] == [b"hash", b"-1"] and int(rows[0][2]) > 0 and rows[0][3] == b"3"
    assert rows[1][0] == b"list" and rows[1][3] == b"5"
    assert rows[2] == [b"none", b"-2", b"", b""]
    assert rows[3][0] == b"string" and int(rows[3][3]) == r.strlen("hll:visitors")
    assert len(fields) == 1 + 4 * len(keys)


def test_script_numbers_stay_digits(r):
    """Lua numbers are doubles: a far-future PTTL or a big size must not become 1e+15."""
    r.set("far", "v")
    r.pexpireat("far", 10**15)  # year ~33658
    fields = scripts.load("scan_batch").call_ro(r, [b"far"], [b""]).split(b"\t")
    assert fields[2].isdigit() and int(fields[2]) > 10**14


@pytest.mark.parametrize("path", ["lua", "pipeline"])
def test_planted_keys_give_exact_counts_types_and_ttl(r, path):
    plant(r)
    snap = scan_keyspace(r, ScanOptions(path=path))
    assert snap["state"] == "done" and snap["path"] == path
    assert (snap["scanned"], snap["analysed"], snap["vanished"]) == (10, 10, 0)
    tree = snap["result"]["tree"]
    assert tree["keys"] == 10 and tree["bytes"] > 0 and tree["unsized_keys"] == 0
    assert {t: v["keys"] for t, v in tree["types"].items()} == {
        "string": 5,
        "hash": 1,
        "list": 1,
        "set": 1,
        "zset": 1,
        "stream": 1,
    }
    assert all(v["bytes"] > 0 for v in tree["types"].values())
    assert (tree["ttl"]["with_ttl"], tree["ttl"]["without_ttl"]) == (3, 7)
    hist = tree["ttl"]["histogram"]
    assert (hist["<1m"], hist["<1h"], hist["<1d"], hist["<7d"], hist[">=7d"]) == (1, 0, 1, 0, 1)
    assert hist["none"] == 7 and hist["unknown"] == 0

    user = node(tree, "user")
    assert (user["keys"], user["direct_keys"]) == (3, 3)
    assert user["types"]["string"]["keys"] == 2 and user["types"]["hash"]["keys"] == 1
    assert (user["ttl"]["with_ttl"], user["ttl"]["without_ttl"]) == (1, 2)
    cache = node(tree, "cache")
    assert (cache["keys"], cache["direct_keys"]) == (1, 0)  # aggregates its child
    assert [c["path"] for c in cache["children"]] == ["cache:product"]
    assert node(tree, "cache:product")["bytes"] == cache["bytes"] > 1000
    root = [c for c in tree["children"] if c["kind"] == "root"]
    assert len(root) == 1 and root[0]["keys"] == 1 and root[0]["top_bytes"][0]["key"] == "plain"

    counts = {t: [(e["key"], e["count"]) for e in v] for t, v in tree["top_count"].items()}
    assert counts["hash"] == [("user:1:profile", 3)]
    assert counts["list"] == [("queue:jobs:high", 5)]
    assert counts["set"] == [("tags:red", 4)]
    assert counts["zset"] == [("leaderboard:daily", 2)]
    assert counts["stream"] == [("events:clicks", 2)]
    assert counts["string"][0] == ("cache:product:42", 1000)
    assert ("hll:visitors", r.strlen("hll:visitors")) in counts["string"]
    json.dumps(snap)  # plain data all the way down


def test_lua_and_pipeline_paths_give_the_same_rollup(r):
    pipe = r.pipeline(transaction=False)
    for i in range(1500):
        pipe.set(f"s:{i % 7}:item:{i}", "v" * (i % 50))
        pipe.hset(f"h:{i % 3}:{i}", mapping={"a": i, "b": "x" * (i % 9)})
        if i % 5 == 0:
            pipe.rpush(f"l:{i}", *range(i % 11 + 1))
            pipe.zadd(f"z:{i}", {"m": 1, "n": 2})
            pipe.sadd(f"st:{i}", *range(i % 4 + 1))
            pipe.expire(f"l:{i}", 3600)
    pipe.execute()
    lua = scan_keyspace(r, ScanOptions(path="lua"))
    piped = scan_keyspace(r, ScanOptions(path="pipeline"))
    assert (lua["path"], piped["path"]) == ("lua", "pipeline")
    assert lua["result"]["tree"]["keys"] == r.dbsize()
    assert strip_ttl(lua["result"]["tree"]) == strip_ttl(piped["result"]["tree"])


def test_top_n_is_ordered_biggest_first(r):
    for i in range(30):
        r.set(f"blob:{i}", "x" * (100 * i + 1))
        r.rpush(f"list:{i}", *range(i + 1))
    tree = scan_keyspace(r, ScanOptions(top_n=4))["result"]["tree"]
    top = tree["top_bytes"]
    assert [e["key"] for e in top] == ["blob:29", "blob:28", "blob:27", "blob:26"]
    assert [e["bytes"] for e in top] == sorted((e["bytes"] for e in top), reverse=True)
    assert [e["count"] for e in tree["top_count"]["list"]] == [30, 29, 28, 27]
    assert [e["count"] for e in tree["top_count"]["string"]] == [2901, 2801, 2701, 2601]
    assert len(node(tree, "list")["top_bytes"]) == 4


@pytest.mark.parametrize(
    ("segment", "is_id"),
    [
        (b"user", False),
        (b"product", False),
        (b"v2", False),
        (b"product_catalog_2024", False),
        (b"", False),
        ("пользователь".encode(), False),
        (b"123", True),
        (b"2024-01-31", True),
        (b"10.0.0.1", True),
        (b"550e8400-e29b-41d4-a716-446655440000", True),
        (b"550e8400e29b41d4a716446655440000", True),
        (b"507f1f77bcf86cd799439011", True),  # ObjectId
        (b"01ARZ3NDEKTSV4RRFFQ69G5FAV", True),  # ULID
        (b"a8Fk29dkLq0pZ7mN3xQw", True),  # random token
        (b"\xff\xfe", True),
        (b"tab\there", True),
        (b"x" * 65, True),
    ],
)
def test_id_segment_rule(segment, is_id):
    assert is_id_segment(segment) is is_id


@pytest.mark.parametrize(
    ("key", "namespace"),
    [
        (b"user:123:profile", (b"user",)),
        (b"cache:product:42", (b"cache", b"product")),
        (b"session", ()),
        (b"123:orders", ()),
        (b"a:b:c:d:e", (b"a", b"b", b"c")),  # depth 3
        (b"tenant:acme:user:9:cart", (b"tenant", b"acme", b"user")),
        (b"sess:550e8400-e29b-41d4-a716-446655440000", (b"sess",)),
        (b"metrics:2024-01-31:hits", (b"metrics",)),
    ],
)
def test_namespace_of_a_key(key, namespace):
    assert Rollup().namespace(key) == namespace


def test_ttl_buckets():
    assert [ttl_bucket(t) for t in (-1, None, 0, 59_999, 60_000, 86_400_000, 10**10)] == [
        "none",
        "unknown",
        "<1m",
        "<1m",
        "<1h",
        "<7d",
        ">=7d",
    ]


def test_non_utf8_and_html_keys_survive_with_reversible_ids(r):
    r.set(BAD_UTF8, "v")
    r.set(HTML_KEY, "v")
    r.hset(b"\xc3(:\x00:x", "f", "v")
    result = scan_keyspace(r)["result"]
    text = json.dumps(result)  # JSON-safe
    entries = {e["key"]: e for e in result["tree"]["top_bytes"]}
    assert set(entries) == {"bin:\\xff\\xfe:x", "<img src=x onerror=alert(1)>", "\\xc3(:\\x00:x"}
    for raw in (BAD_UTF8, HTML_KEY, b"\xc3(:\x00:x"):
        matching = [e for e in entries.values() if resolve_address(e["id"]) == raw]
        assert len(matching) == 1 and matching[0]["length"] == len(raw)
    assert node(result["tree"], "bin")["keys"] == 1  # \xff\xfe is an id: stop there
    assert "\\xff" in text


def test_a_megabyte_key_name_does_not_break_anything(r):
    huge = b"big:" + b"k" * (1024 * 1024)
    r.set(huge, "v")
    r.set("small:1", "v")
    snap = scan_keyspace(r)
    assert snap["state"] == "done" and snap["analysed"] == 2
    entry = next(e for e in snap["result"]["tree"]["top_bytes"] if e["length"] > 1000)
    assert resolve_address(entry["id"]) == huge
    assert len(entry["key"]) < 1000  # the display string is cut, the id is exact
    assert node(snap["result"]["tree"], "big")["keys"] == 1


def test_pages_are_capped_by_key_name_bytes(r, monkeypatch):
    from dashboard.inspect.keyspace import scan

    monkeypatch.setattr(scan, "MAX_PAGE_KEY_BYTES", 100)
    for i in range(200):
        r.set(f"key:{i:026d}", "v")  # 30-byte names: at most 3 a page
    scanner = NodeScanner(r, ScanOptions(start_count=50))
    pages = []
    while not scanner.done:
        pages.append(scanner.next_batch().scanned)
    assert sum(pages) == 200 and max(pages) == 3


def test_keys_deleted_mid_scan_are_counted_as_vanished(r, make_client):
    for i in range(2000):
        r.set(f"k:{i}", i)
    deleter = make_client()
    deleted = []

    def delete_some(keys):  # between a page's SCAN and its facts
        gone = keys[::3]
        deleter.delete(*gone)
        deleted.extend(gone)

    for path in ("lua", "pipeline"):
        deleted.clear()
        snap = scan_keyspace(r, ScanOptions(path=path), on_keys=delete_some)
        assert snap["state"] == "done"
        assert snap["vanished"] == len(deleted) > 0
        assert snap["analysed"] + snap["vanished"] == snap["scanned"]
        assert snap["result"]["tree"]["keys"] == snap["analysed"]


def test_keys_deleted_between_pages_do_not_crash(r, make_client):
    for i in range(3000):
        r.set(f"k:{i}", i)
    deleter = make_client()
    remaining = [f"k:{i}" for i in range(3000)]

    def delete_ahead(batch):
        if remaining:
            deleter.delete(*remaining[-300:])
            del remaining[-300:]

    snap = scan_keyspace(r, ScanOptions(max_count=200), on_batch=delete_ahead)
    assert snap["state"] == "done"
    assert snap["result"]["tree"]["keys"] == snap["analysed"] <= 3000


def test_namespace_cap_folds_into_other(r):
    for ns in range(20):
        for i in range(5):
            r.set(f"ns{ns}:item:{i}", "v")
    r.set("loose", "v")
    result = scan_keyspace(r, ScanOptions(max_namespaces=5))["result"]
    assert result["namespaces"] == 5
    assert result["folded_keys"] == 75
    kinds = [c["kind"] for c in result["tree"]["children"]]
    assert kinds.count("namespace") == 5 and kinds.count("root") == 1
    other = next(c for c in result["tree"]["children"] if c["kind"] == "other")
    assert other["keys"] == other["folded_keys"] == 75 and other["name"] == "(other)"
    assert result["tree"]["keys"] == 101


def test_memory_is_bounded_by_namespaces_not_keys():
    rollup = Rollup(top_n=3, max_namespaces=50)
    for i in range(20_000):
        rollup.add(f"ns{i % 200}:x:{i}".encode(), "string", -1, i, 1)
    assert len(rollup.nodes) == 51  # 50 namespaces + the root bucket
    assert all(len(s.top_bytes) <= 3 for s in rollup.nodes.values())
    assert rollup.folded_keys == 20_000 - sum(s.keys for s in rollup.nodes.values())


def _acl_client(private_server, rules):
    server = private_server()
    admin = redis.Redis(port=server.port)
    admin.acl_setuser("scanner", enabled=True, passwords=["+pw"], keys=["*"], commands=rules)
    return admin, redis.Redis(port=server.port, username="scanner", password="pw")


def test_falls_back_to_pipelines_when_acl_refuses_scripting(private_server):
    admin, limited = _acl_client(private_server, ["+@all", "-@scripting"])
    plant(admin)
    with pytest.raises(redis.exceptions.NoPermissionError):
        limited.evalsha_ro("0" * 40, 0)
    snap = scan_keyspace(limited)
    assert snap["path"] == "pipeline"
    assert any("NOPERM" in reason for reason in snap["path_reasons"])
    reference = scan_keyspace(admin)
    assert reference["path"] == "lua"
    assert strip_ttl(snap["result"]["tree"]) == strip_ttl(reference["result"]["tree"])


def test_standalone_pages_declare_their_keys(private_server):
    """Outside a cluster a page is one script call with every key in KEYS (the ARGV form
    is for cluster pages spanning slots only): the server's own log of the calls says so."""
    server = private_server("--slowlog-log-slower-than", "0", "--slowlog-max-len", "10000")
    with redis.Redis(port=server.port) as admin:
        for i in range(300):
            admin.set(f"k:{i}", i)
        snap = scan_keyspace(admin, ScanOptions(max_count=20, start_count=20))
        logged = [e["command"].split(b" ") for e in admin.slowlog_get(10_000)]
    assert snap["state"] == "done" and snap["result"]["tree"]["keys"] == 300
    calls = [c for c in logged if c[0].upper() == b"EVALSHA_RO"]
    assert len(calls) == snap["batches"]
    for call in calls:
        numkeys = int(call[2])
        assert numkeys > 0 and all(k.startswith(b"k:") for k in call[3 : 3 + numkeys])
        assert call[3 + numkeys :] == [b""]  # then only SAMPLES ('')


def test_acl_key_patterns_count_refused_keys(private_server):
    server = private_server()
    admin = redis.Redis(port=server.port)
    admin.acl_setuser("scanner", enabled=True, passwords=["+pw"], keys=["ok:*"], commands=["+@all"])
    for i in range(5):
        admin.set(f"ok:{i}", "v")
    for i in range(3):
        admin.set(f"secret:{i}", "v")
    limited = redis.Redis(port=server.port, username="scanner", password="pw")
    snap = scan_keyspace(limited)
    assert snap["state"] == "done" and snap["path"] == "pipeline"
    assert (snap["scanned"], snap["analysed"], snap["refused"]) == (8, 5, 3)
    assert snap["vanished"] == 0 and snap["moved"] == 0  # refused is not also vanished
    assert snap["result"]["tree"]["keys"] == 5 and snap["result"]["tree"]["unsized_keys"] == 0


@pytest.mark.parametrize("path", ["lua", "pipeline"])
def test_refused_memory_usage_leaves_bytes_unknown(private_server, path):
    admin, limited = _acl_client(private_server, ["+@all", "-memory"])
    plant(admin)
    snap = scan_keyspace(limited, ScanOptions(path=path))
    tree = snap["result"]["tree"]
    assert snap["state"] == "done" and tree["keys"] == 10
    assert tree["unsized_keys"] == 10 and tree["bytes"] is None  # unknown, not 0
    assert tree["bytes_unavailable"]
    if path == "pipeline":  # why, in the words of the refusal (not "gave no size")
        assert tree["bytes_unavailable"].startswith("MEMORY USAGE refused by ACL (NOPERM)")
    assert node(tree, "queue:jobs")["top_count"]["list"][0]["count"] == 5


def test_fakeredis_uses_the_pipeline_path_without_memory(fake):
    plant(fake)
    snap = scan_keyspace(fake)
    assert snap["path"] == "pipeline"
    assert any("EVALSHA_RO" in why for why in snap["path_reasons"])
    assert any("MEMORY USAGE" in why for why in snap["path_reasons"])
    tree = snap["result"]["tree"]
    assert tree["keys"] == 10 and tree["unsized_keys"] == 10
    assert (tree["ttl"]["with_ttl"], tree["ttl"]["without_ttl"]) == (3, 7)
    assert tree["top_count"]["set"][0]["count"] == 4


@pytest.mark.parametrize("path", ["lua", "pipeline"])
def test_read_only_gate_lets_the_scan_through(r, make_client, path):
    plant(r)
    gated = gate.install(make_client(), allow_writes=False)
    snap = scan_keyspace(gated, ScanOptions(path=path))
    assert snap["path"] == path and snap["result"]["tree"]["keys"] == 10
    assert snap["result"]["tree"]["unsized_keys"] == 0


def test_script_flush_mid_scan_reloads_the_script(r, make_client):
    for i in range(2000):
        r.set(f"k:{i}", i)
    admin = make_client()
    snap = scan_keyspace(
        r, ScanOptions(max_count=100, path="lua"), on_batch=lambda b: admin.script_flush()
    )
    assert snap["state"] == "done" and snap["path"] == "lua"
    assert snap["result"]["tree"]["keys"] == 2000


def test_a_client_that_decodes_responses_still_gets_bytes_keys(make_client, r):
    plant(r)
    snap = scan_keyspace(make_client(decode_responses=True))
    assert snap["path"] == "lua" and snap["result"]["tree"]["keys"] == 10
    assert node(snap["result"]["tree"], "user")["types"]["hash"]["keys"] == 1


def test_adaptive_page_size_shrinks_under_a_tiny_target(r):
    for i in range(3000):
        r.set(f"k:{i}", i)
    scanner = NodeScanner(r, ScanOptions(target_ms=0.001, start_count=200, min_count=10))
    batches = []
    while not scanner.done:
        batches.append(scanner.next_batch())
    assert batches[0].count == 200 and batches[0].scanned >= 100
    assert all(b.count == 10 and b.scanned <= 10 for b in batches[1:])  # no lag: next page
    assert sum(b.scanned for b in batches) == 3000


def test_adaptive_page_size_grows_when_well_under_target(r):
    for i in range(5000):
        r.set(f"k:{i}", i)
    scanner = NodeScanner(r, ScanOptions(target_ms=10_000, start_count=10, max_count=400))
    counts = []
    while not scanner.done:
        counts.append(scanner.next_batch().count)
    assert counts[0] == 10 and max(counts) == 400


def test_adapt_sizes_to_measured_cost():
    scanner = NodeScanner(None, ScanOptions(target_ms=2.0, start_count=500, max_count=1000))
    scanner._adapt(8000, 500)  # 16 µs a key: 4x over target
    assert scanner.count == 75  # 60% of 2 ms at 16 µs/key
    scanner._adapt(100, 100)  # 1 µs a key: far under; growth capped at 2x
    assert scanner.count == 150
    scanner._adapt(None, 100)  # nothing measured: unchanged
    assert scanner.count == 150


def test_rollups_merged_per_shard_equal_one_rollup_of_everything():
    """The scan keeps one rollup per shard and merges them: nothing may depend on the
    split (counters, top-N, TTLs, known layouts and their owners)."""
    import random

    facts = []
    for i in range(3000):
        kind = ("string", "hash", "list", "set", "zset")[i % 5]
        ttl = -1 if i % 3 else 1000 * (i % 97 + 1)
        facts.append((f"app:{i % 7}:item:{i}".encode(), kind, ttl, 50 + i % 300, i % 40))
    facts += [(f"rq:job:{i:04x}".encode(), "hash", -1, 200, 9) for i in range(40)]
    facts += [(b"rq:queues", "set", -1, 90, 2), (b"rq:queue:default", "list", -1, 120, 40)]
    facts += [(f"root{i}".encode(), "string", -1, 60, 3) for i in range(30)]
    one = Rollup(b":", 3, 5, 10_000)
    one.add_batch(facts)
    random.Random(7).shuffle(facts)
    shards = [Rollup(b":", 3, 5, 10_000) for _ in range(3)]
    for n, start in enumerate(range(0, len(facts), 97)):
        shards[n % 3].add_batch(facts[start : start + 97])
    merged = Rollup(b":", 3, 5, 10_000)
    for shard in shards:
        merged.merge(shard)
    got, want = merged.to_json(), one.to_json()
    examples = [
        layout.pop("examples") for layout in (*got["known_layouts"], *want["known_layouts"])
    ]
    assert got == want  # the examples depend on the order keys were seen, in any rollup
    assert got["known_layouts"][0]["library"] == "rq"
    rq_without_ttl = {f[0].decode() for f in facts if f[0].startswith(b"rq:") and f[2] == -1}
    assert len(examples[0]) == len(examples[1]) and set(examples[0]) <= rq_without_ttl


def test_options_from_settings_and_validation():
    from dashboard.config import Settings

    opts = ScanOptions.from_settings(Settings(scan_count=50, delimiter="/", scan_target_ms=3))
    assert (opts.max_count, opts.min_count, opts.start_count) == (50, 10, 50)
    assert opts.delimiter == b"/" and opts.target_ms == 3
    with pytest.raises(ValueError, match="path"):
        ScanOptions(path="nope")
    with pytest.raises(ValueError, match="min_count"):
        ScanOptions(min_count=5, max_count=2)
    opts = ScanOptions.from_settings(Settings.from_env({"REDIS_DASHBOARD_SCAN_FROM": "auto"}))
    assert (opts.scan_from, opts.parallel) == ("auto", 0)
    opts = ScanOptions.from_settings(Settings(scan_parallel=1, scan_from="replica"))
    assert (opts.scan_from, opts.parallel) == ("replica", 1)
    with pytest.raises(ValueError, match="scan_from"):
        ScanOptions(scan_from="secondary")
    from dashboard.config import SettingsError

    with pytest.raises(SettingsError, match="REDIS_DASHBOARD_SCAN_FROM"):
        Settings.from_env({"REDIS_DASHBOARD_SCAN_FROM": "nearest"})
    with pytest.raises(SettingsError, match="scan_parallel"):
        Settings().updated({"scan_parallel": "-1"})


DOC = (Path(__file__).resolve().parent.parent / "docs" / "scan.md").read_text()
_DYNAMIC = {"types", "top_count", "options"}  # keys are type names / documented in a table


def _field_names(data, parent=None):
    if isinstance(data, dict):
        for name, value in data.items():
            if parent not in _DYNAMIC:
                yield name
            yield from _field_names(value, name)
    elif isinstance(data, list):
        for item in data:
            yield from _field_names(item, parent)


def test_every_json_field_and_option_is_documented(r):
    plant(r)
    for i in range(20):
        r.set(f"ns{i}:x", "v")
    snap = scan_keyspace(r, ScanOptions(max_namespaces=5))
    names = set(_field_names(snap)) | set(snap["options"]) | set(ScanOptions().public())
    assert {"histogram", "folded_keys", "top_bytes", "ttl_ms", "quota"} <= names
    missing = sorted(name for name in names if f"`{name}`" not in DOC)
    assert not missing, f"docs/scan.md does not document {missing}"
