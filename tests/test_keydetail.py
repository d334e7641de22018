"""Key detail previews (bounded, paged, binary-safe) and key addressing."""

from __future__ import annotations

import json
import random

import pytest
import redis

from dashboard import keyid
from dashboard.embedded import free_port
from dashboard.gate import READ_COMMANDS, command_name
from dashboard.inspect.errors import RedisUnavailable
from dashboard.inspect.keyspace.keydetail import key_detail
from dashboard.keyid import (
    UnknownKeyRef,
    decode_key,
    display_bytes,
    display_key,
    encode_key,
    key_address,
    recall,
    remember,
    resolve_address,
)

HTML = b"<script>alert('x')</script>&amp;"
MB = 1024 * 1024


class Recording(redis.Redis):
    """A client that remembers every command it sends (instead of MONITOR)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[tuple] = []

    def execute_command(self, *args, **options):
        self.sent.append(args)
        return super().execute_command(*args, **options)


@pytest.fixture
def rec(redis_server, r):
    client = Recording(port=redis_server.port, socket_timeout=10)
    yield client
    client.close()


def assert_bounded_reads(sent: list[tuple], bound: int = 1000) -> None:
    """Only reads the gate allows, and none that could return a whole big value."""
    for args in sent:
        name = command_name(args)
        assert name in READ_COMMANDS, f"not a read command: {args[:3]}"
        assert name not in {"HGETALL", "SMEMBERS", "HKEYS", "HVALS", "GET", "KEYS"}, args[:2]
        if name in {"LRANGE", "ZRANGE"}:
            start, stop = int(args[2]), int(args[3])
            assert 0 <= start <= stop and stop - start < bound, args[:4]
        if name in {"XRANGE", "XREVRANGE", "HSCAN", "SSCAN"}:
            upper = [str(a).upper() if not isinstance(a, bytes) else a.decode() for a in args]
            assert "COUNT" in upper and int(args[upper.index("COUNT") + 1]) <= bound + 1
        if name == "GETRANGE":
            assert int(args[3]) - int(args[2]) < bound, args


# --- metadata ----------------------------------------------------------------------------


def test_missing_key(r, rec):
    detail = key_detail(rec, b"nope")
    assert detail["exists"] is False and detail["type"] is None and detail["preview"] is None
    assert detail["key"] == "nope" and detail["unavailable"] == {}


def test_string_metadata_and_text_preview(r, rec):
    r.set("greeting", "héllo wörld", px=60_000)
    detail = key_detail(rec, b"greeting")
    json.dumps(detail, allow_nan=False)
    assert detail["exists"] and detail["type"] == "string" and detail["encoding"] == "embstr"
    assert 0 < detail["ttl_ms"] <= 60_000
    assert detail["bytes"] > 0 and detail["idle_seconds"] >= 0
    assert detail["length"] == len("héllo wörld".encode())
    preview = detail["preview"]
    assert preview["text"] == "héllo wörld" and preview["format"] == "text"
    assert preview["truncated"] is False and preview["next"] is None and preview["hex"] is None
    assert detail["unavailable"] == {
        "lfu_frequency": "not tracked: maxmemory-policy is not an LFU policy"
    }
    assert_bounded_reads(rec.sent, bound=4096)


def test_json_string_is_pretty_printed_and_html_stays_plain_text(r, rec):
    r.set("doc", json.dumps({"title": HTML.decode(), "n": [1, 2]}))
    r.set(HTML, HTML)
    preview = key_detail(rec, b"doc")["preview"]
    assert preview["format"] == "json"
    assert json.loads(preview["json"]) == {"title": HTML.decode(), "n": [1, 2]}
    assert "\n  " in preview["json"] and "<script>" in preview["json"]

    detail = key_detail(rec, HTML)
    assert detail["key"] == HTML.decode()  # not &lt;script&gt;: templates escape
    assert detail["preview"]["text"] == HTML.decode() and detail["preview"]["format"] == "text"
    assert decode_key(detail["key_address"]) == HTML


def test_binary_and_non_utf8_values(r, rec):
    blob = bytes(range(256))
    r.set(b"bin:\xff\xfe", blob)
    detail = key_detail(rec, b"bin:\xff\xfe")
    assert detail["key"] == "bin:\\xff\\xfe"
    preview = detail["preview"]
    assert preview["format"] == "binary"
    assert preview["hex"].split() == [f"{b:02x}" for b in blob]
    assert preview["text"].startswith("\\x00\\x01") and "\\xff" in preview["text"]
    r.rpush("mixed", b"ok", b"\xc3\x28", "ünï".encode())
    items = key_detail(rec, b"mixed")["preview"]["items"]
    assert [i["value"]["text"] for i in items] == ["ok", "\\xc3(", "ünï"]
    assert [i["value"]["length"] for i in items] == [2, 2, 5]


def test_one_megabyte_value_is_previewed_only_up_to_the_bound(r, rec):
    r.set("big", b"a" * MB)
    detail = key_detail(rec, b"big")
    preview = detail["preview"]
    assert detail["length"] == MB
    assert preview["shown_bytes"] == 4096 and len(preview["text"]) == 4096
    assert preview["truncated"] is True and preview["next"] == 4096
    page2 = key_detail(rec, b"big", offset=preview["next"], string_bytes=100)["preview"]
    assert page2["offset"] == 4096 and page2["shown_bytes"] == 100 and page2["next"] == 4196
    last = key_detail(rec, b"big", offset=MB - 10)["preview"]
    assert last["shown_bytes"] == 10 and last["next"] is None
    assert_bounded_reads(rec.sent, bound=4096)


def test_one_megabyte_key_name(r, rec):
    key = b"k" * MB
    r.set(key, "v")
    detail = key_detail(rec, key)
    assert detail["exists"] and detail["key_length"] == MB
    assert detail["key"].endswith(f"… ({MB:,} bytes)") and len(detail["key"]) < 1100
    assert detail["key_address"].startswith("~") and len(detail["key_address"]) == 33
    assert resolve_address(detail["key_address"]) == key


def test_lru_and_lfu_policies_idle_time_versus_frequency(private_server):
    srv = private_server()
    client = redis.Redis(port=srv.port)
    client.set("k", "v")
    lru = key_detail(client, b"k")
    assert isinstance(lru["idle_seconds"], int) and lru["lfu_frequency"] is None
    assert "not an LFU policy" in lru["unavailable"]["lfu_frequency"]

    client.config_set("maxmemory-policy", "allkeys-lfu")
    for _ in range(5):
        client.get("k")
    lfu = key_detail(client, b"k")
    assert lfu["idle_seconds"] is None and lfu["lfu_frequency"] >= 1
    assert lfu["unavailable"] == {"idle_seconds": "not tracked under an LFU maxmemory-policy"}


# --- collections -------------------------------------------------------------------------


def test_hash_of_1000_fields_pages_to_the_end_with_bounded_hscan(r, rec):
    fields = {f"field:{i}".encode(): str(i).encode() for i in range(1000)}
    r.hset("big-hash", mapping=fields)
    seen: dict[str, str] = {}
    cursor, pages = None, 0
    while True:
        detail = key_detail(rec, b"big-hash", cursor=cursor, limit=50)
        preview = detail["preview"]
        assert len(preview["items"]) <= 100, "a page must be bounded by COUNT (plus a bucket)"
        for item in preview["items"]:
            seen[item["field"]["text"]] = item["value"]["text"]
        pages += 1
        cursor = preview["next"]
        if cursor is None:
            break
        assert pages < 200, "HSCAN never finished"
    assert detail["encoding"] == "hashtable" and detail["length"] == 1000
    assert seen == {k.decode(): v.decode() for k, v in fields.items()}
    assert pages >= 10
    assert_bounded_reads(rec.sent, bound=50)


def test_set_pages_with_sscan(r, rec):
    r.sadd("tags", *[f"t{i}" for i in range(700)])
    seen, cursor = set(), None
    while True:
        preview = key_detail(rec, b"tags", cursor=cursor, limit=100)["preview"]
        seen |= {i["member"]["text"] for i in preview["items"]}
        cursor = preview["next"]
        if cursor is None:
            break
    assert seen == {f"t{i}" for i in range(700)}
    assert_bounded_reads(rec.sent, bound=100)
    with pytest.raises(ValueError, match="cursor"):
        key_detail(rec, b"tags", cursor="12abc")


def test_zset_windows_in_both_orders(r, rec):
    r.zadd("board", {f"p{i}": i for i in range(25)} | {"top": float("inf")})
    first = key_detail(rec, b"board", limit=10)["preview"]
    assert [i["member"]["text"] for i in first["items"]] == [f"p{i}" for i in range(10)]
    assert first["items"][3] | {"member": None} == {
        "rank": 3, "member": None, "score": 3.0, "score_text": "3.0",
    }  # fmt: skip
    assert first["next"] == 10 and first["prev"] is None
    tail = key_detail(rec, b"board", offset=20, limit=10)["preview"]
    assert tail["next"] is None and tail["prev"] == 10
    assert tail["items"][-1] | {"member": None} == {
        "rank": 25, "member": None, "score": None, "score_text": "inf",
    }  # fmt: skip
    desc = key_detail(rec, b"board", order="desc", limit=3)["preview"]
    assert [i["member"]["text"] for i in desc["items"]] == ["top", "p24", "p23"]
    json.dumps(tail, allow_nan=False)
    assert_bounded_reads(rec.sent, bound=10)


def test_list_windows_including_the_tail(r, rec):
    r.rpush("queue", *[f"job{i}" for i in range(30)])
    head = key_detail(rec, b"queue", limit=10)["preview"]
    assert [i["index"] for i in head["items"]] == list(range(10)) and head["next"] == 10
    tail = key_detail(rec, b"queue", offset=-5, limit=5)["preview"]
    assert [i["value"]["text"] for i in tail["items"]] == [f"job{i}" for i in range(25, 30)]
    assert tail["offset"] == 25 and tail["next"] is None and tail["prev"] == 20
    assert_bounded_reads(rec.sent, bound=10)


def test_stream_window_with_paging_both_ways(r, rec):
    ids = [r.xadd("events", {"n": str(i), "html": "<b>"}) for i in range(23)]
    ids = [i.decode() for i in ids]
    seen, start = [], None
    while True:
        preview = key_detail(rec, b"events", start=start, limit=10)["preview"]
        seen += [item["id"] for item in preview["items"]]
        start = preview["next"]
        if start is None:
            break
    assert seen == ids
    backwards = key_detail(rec, b"events", order="desc", limit=5)["preview"]
    assert [i["id"] for i in backwards["items"]] == ids[::-1][:5]
    assert backwards["next"] == ids[-6] and backwards["groups"] == 0
    assert backwards["last_generated_id"] == ids[-1]
    fields = backwards["items"][0]["fields"]
    assert [(f["field"]["text"], f["value"]["text"]) for f in fields] == [
        ("n", "22"),
        ("html", "<b>"),
    ]
    assert_bounded_reads(rec.sent, bound=10)
    with pytest.raises(ValueError, match="stream id"):
        key_detail(rec, b"events", start="0-0; DROP")


def test_hyperloglog_is_detected_and_counted(r, rec):
    r.pfadd("visitors", *[f"user{i}" for i in range(1000)])
    detail = key_detail(rec, b"visitors")
    assert detail["type"] == "hll" and detail["encoding"] == "raw"
    preview = detail["preview"]
    assert preview["kind"] == "hll" and 950 <= preview["cardinality"] <= 1050
    assert preview["representation"] in ("sparse", "dense")
    r.set("fake-hll", b"HYLL but not really")
    fake = key_detail(rec, b"fake-hll")
    assert fake["type"] == "string" and fake["preview"]["text"] == "HYLL but not really"
    assert_bounded_reads(rec.sent, bound=4096)


def test_module_type_is_reported_as_is_without_preview(r):
    class ModuleTyped(Recording):
        def type(self, name):  # what TYPE answers for a RedisJSON document
            return b"ReJSON-RL"

    client = ModuleTyped(port=r.connection_pool.connection_kwargs["port"])
    r.set("doc", "{}")
    detail = key_detail(client, b"doc")
    assert detail["type"] == "ReJSON-RL" and detail["module_type"] is True
    assert detail["preview"]["available"] is False and "ReJSON-RL" in detail["preview"]["reason"]
    assert detail["length"] is None


# --- degraded ------------------------------------------------------------------------------


def test_fakeredis_degrades_with_reasons(fake):
    fake.hset("h", mapping={"a": "1", "b": "2"})
    detail = key_detail(fake, b"h")
    assert detail["type"] == "hash" and detail["length"] == 2
    assert {i["field"]["text"] for i in detail["preview"]["items"]} == {"a", "b"}
    for field in ("encoding", "bytes", "idle_seconds", "lfu_frequency"):
        assert detail[field] is None
        assert "not supported by this server" in detail["unavailable"][field]


def test_key_acl_refusal_is_a_reason_not_an_exception(private_server):
    srv = private_server()
    admin = redis.Redis(port=srv.port)
    admin.set("secret:1", "x")
    admin.execute_command("ACL", "SETUSER", "viewer", "on", ">pw", "~public:*", "+@all")
    viewer = redis.Redis(port=srv.port, username="viewer", password="pw")
    detail = key_detail(viewer, b"secret:1")
    assert detail["exists"] is None and "refused by ACL (NOPERM)" in detail["unavailable"]["type"]


def test_unreachable_server_raises():
    client = redis.Redis(port=free_port(), socket_connect_timeout=1)
    with pytest.raises(RedisUnavailable, match="unavailable"):
        key_detail(client, b"k")


def test_bad_page_parameters(r):
    with pytest.raises(ValueError, match="order"):
        key_detail(r, b"k", order="sideways")
    with pytest.raises(ValueError, match="limit"):
        key_detail(r, b"k", limit="many")


# --- key ids -------------------------------------------------------------------------------


def test_encode_decode_round_trips_random_bytes():
    rng = random.Random(1234)
    for _ in range(500):
        key = rng.randbytes(rng.randrange(0, 300))
        text = encode_key(key)
        assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert decode_key(text) == key and key_address(key) == text
        assert resolve_address(text) == key


@pytest.mark.parametrize("garbage", ["a", "ab=", "a+b/", "héllo", "ab", "~123", "=="])
def test_decode_key_rejects_garbage(garbage):
    with pytest.raises(ValueError):
        resolve_address(garbage)


def test_display_escapes_invalid_utf8_and_controls_but_not_html():
    assert display_key(HTML) == HTML.decode()
    assert display_key(b"a\xffb") == "a\\xffb"
    assert display_key(b"back\\slash") == "back\\\\slash"  # so \xff above is unambiguous
    assert display_key(b"line\nbreak\x1b[31m") == "line\\x0abreak\\x1b[31m"
    assert display_key("rtl\u202eevil".encode()) == "rtl\\u202eevil"
    assert display_key("日本語🙂".encode()) == "日本語🙂"
    assert decode_key(encode_key(b"a\xffb")) == b"a\xffb"


def test_truncation_keeps_characters_whole_and_shows_the_length():
    key = "é".encode() * 600  # 1200 bytes
    shown = display_key(key, limit=11)
    assert shown == "ééééé… (1,200 bytes)"
    value = display_bytes(b"x" * 300, limit=10)
    assert value == {"text": "x" * 10, "length": 300, "truncated": True}
    assert display_bytes(b"short") == {"text": "short", "length": 5, "truncated": False}


def test_registry_for_a_one_megabyte_key():
    key = b"\x00huge" * (MB // 5)
    ref = remember(key)
    assert len(ref) == 32 and recall(ref) == key and recall("~" + ref) == key
    address = key_address(key)
    assert address == "~" + ref and resolve_address(address) == key
    assert recall("0" * 32) is None
    with pytest.raises(UnknownKeyRef, match="no longer remembers"):
        resolve_address("~" + "0" * 32)


def test_registry_is_bounded_lru():
    registry = keyid._Registry(max_entries=2, max_bytes=1000)
    a, b, c = (registry.remember(k) for k in (b"a", b"b", b"c"))
    assert registry.recall(a) is None and registry.recall(b) == b"b"  # b now most recent
    registry.remember(b"d")
    assert registry.recall(c) is None and registry.recall(b) == b"b"


def test_registry_is_bounded_in_bytes_too():
    registry = keyid._Registry(max_entries=100, max_bytes=100)
    a, b = registry.remember(b"a" * 40), registry.remember(b"b" * 40)
    registry.recall(a)
    c = registry.remember(b"c" * 40)  # 120 bytes > 100: the least recent (b) goes
    assert registry.recall(b) is None and registry.recall(a) and registry.recall(c)
