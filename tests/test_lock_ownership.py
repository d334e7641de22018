"""/locks claims a lock as our layer's only from evidence in Redis (our :info / :fence
companions), never from the name: real redis-py and python-redis-lock locks with
hash-tagged, odd and hostile names, on the suite's redis-server."""

from __future__ import annotations

import re

import redis_lock
from redis.lock import Lock as RedisPyLock

from dashboard.keyid import display_key, encode_key
from dashboard.patterns.locks import Lock

SEARCHED = re.compile(rb"lock:.*|.*:lock|locks:.*", re.DOTALL)  # the default lock_patterns


def _locks(web):
    data = web.get("/locks.json").get_json()
    return data, {e["key"]: e for e in data["locks"] + data["recent"]}


def _accounted(r, data, entries):
    """Every key the search can find is shown, part of a shown lock of ours, or listed
    as skipped with a reason: nothing vanishes silently."""
    skipped = {s["key"] for s in data["search"]["skipped"]["examples"]}
    assert data["search"]["skipped"]["keys"] == len(skipped)  # few enough to list all
    ours = {k for k, e in entries.items() if e["layout"] == "dashboard"}
    for key in r.scan_iter(count=1000):
        if not SEARCHED.fullmatch(key):
            continue
        shown, base = display_key(key), display_key(re.sub(rb":(info|fence)$", b"", key))
        assert shown in entries or base in ours or shown in skipped, display_key(key, 80)


def test_hash_tagged_foreign_locks_are_theirs_not_ours(web, r):
    order = RedisPyLock(r, "lock:{order-7}", timeout=30)
    assert order.acquire()
    inventory = redis_lock.Lock(r, "{inv}", expire=60)
    assert inventory.acquire()
    shard = redis_lock.Lock(r, "{shard1}sync", expire=60)  # key lock:{shard1}sync
    assert shard.acquire()
    ours = Lock(r, "invoice", ttl=30)
    fence = ours.acquire()
    data, entries = _locks(web)
    assert entries["lock:{order-7}"]["layout"] == "redis-py"
    assert entries["lock:{order-7}"]["holder"] == order.local.token.decode()[:8] + "…"
    assert entries["lock:{inv}"]["layout"] == "python-redis-lock"
    assert entries["lock:{inv}"]["holder"] == inventory.id[:8] + "…"
    assert entries["lock:{shard1}sync"]["layout"] == "python-redis-lock"
    for key in ("lock:{order-7}", "lock:{inv}", "lock:{shard1}sync"):
        entry = entries[key]
        assert entry["attempts"] is None and entry["fence"] is None  # unknown, not made up
        assert 0 < entry["ttl_remaining_ms"] <= 60_000 and entry["problem"] is None
    mine = entries["lock:{invoice}"]
    assert (mine["layout"], mine["fence"], mine["attempts"]) == ("dashboard", fence, 1)
    assert data["totals"]["held"] == 4 and data["search"]["skipped"]["keys"] == 0
    assert not r.exists("lock:{order-7}:info", "lock:{inv}:info")  # reading wrote nothing
    _accounted(r, data, entries)


def test_companion_names_written_by_another_library_are_shown(web, r):
    info = redis_lock.Lock(r, "{a}:info", expire=60)  # python-redis-lock: lock:{a}:info
    fence = redis_lock.Lock(r, "{a}:fence", expire=60)
    assert info.acquire() and fence.acquire()
    data, entries = _locks(web)
    assert entries["lock:{a}:info"]["layout"] == "python-redis-lock"
    assert entries["lock:{a}:fence"]["layout"] == "python-redis-lock"
    assert entries["lock:{a}:info"]["resource"] == "{a}:info"
    _accounted(r, data, entries)


def test_our_name_taken_over_by_another_library_keeps_our_stats_and_says_so(web, r):
    ours = Lock(r, "report", ttl=30)
    ours.acquire()
    ours.release()
    theirs = RedisPyLock(r, "lock:{report}", timeout=30)
    assert theirs.acquire()
    data, entries = _locks(web)
    entry = entries["lock:{report}"]
    assert entry["layout"] == "dashboard" and entry["releases"] == 1  # our real counters
    assert entry["fence"] is None and "not the one our :info recorded" in entry["problem"]
    _accounted(r, data, entries)


def test_keys_found_but_not_locks_are_listed_with_the_reason(web, r):
    r.hset("lock:settings", "f", "v")  # a hash under lock:*
    r.rpush("jobs:lock", "x")  # a list under *:lock
    r.set("lock:{idle}:fence", 3)  # our idle lock: stats expired, only the fence left
    Lock(r, "busy", ttl=30).acquire()
    data, entries = _locks(web)
    skipped = {s["key"]: s["reason"] for s in data["search"]["skipped"]["examples"]}
    assert skipped == {
        "lock:settings": "holds a hash, not a lock token",
        "jobs:lock": "holds a list, not a lock token",
        "lock:{idle}:fence": "our layer's idle lock: no holder and no stats",
    }
    assert set(entries) == {"lock:{busy}"}
    _accounted(r, data, entries)
    html = web.get("/locks").get_data(as_text=True)
    assert "3 more keys matched but are not shown" in html and "holds a hash" in html


def test_hostile_names(web, r):
    binary = RedisPyLock(r, b"lock:{\xff\xfe}", timeout=30)
    huge = RedisPyLock(r, "lock:{" + "x" * 100_000 + "}", timeout=30)
    html_name = redis_lock.Lock(r, "{<img src=x onerror=alert(1)>}", expire=60)
    assert binary.acquire() and huge.acquire() and html_name.acquire()
    data, entries = _locks(web)
    assert entries["lock:{\\xff\\xfe}"]["layout"] == "redis-py"
    (big,) = [e for k, e in entries.items() if k.startswith("lock:{xxx")]
    assert big["layout"] == "redis-py" and len(big["key"]) < 400  # shown cut, not whole
    assert entries["lock:{<img src=x onerror=alert(1)>}"]["layout"] == "python-redis-lock"
    for entry in entries.values():  # every shown key opens in the key view
        assert web.get(f"/key.json?k={entry['id']}").status_code == 200
    assert entries["lock:{\\xff\\xfe}"]["id"] == encode_key(b"lock:{\xff\xfe}")
    page = web.get("/locks").get_data(as_text=True)
    assert "<img src=x" not in page and "&lt;img src=x" in page
    _accounted(r, data, entries)


def test_release_of_a_hash_tagged_foreign_lock_writes_nothing_of_ours(make_app, r):
    web = make_app(allow_writes=True).test_client()
    html = web.get("/locks").get_data(as_text=True)
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', html).group(1)
    theirs = RedisPyLock(r, "lock:{order-7}", timeout=30)
    assert theirs.acquire()
    k = encode_key(b"lock:{order-7}")
    accept = {"Accept": "application/json"}
    prepared = web.post("/locks/release", data={"csrf_token": token, "k": k}, headers=accept)
    assert prepared.get_json()["layout"] == "redis-py"
    confirm = prepared.get_json()["confirm"]
    done = web.post(
        "/locks/release", data={"csrf_token": token, "k": k, "confirm": confirm}, headers=accept
    )
    assert done.status_code == 200 and done.get_json()["released"]
    assert not theirs.owned() and r.keys("lock:{order-7}*") == []  # no :info left behind


def test_huge_lookalike_companions_are_neither_ours_nor_read_whole(web, r):
    theirs = RedisPyLock(r, "lock:{big}", timeout=30)
    assert theirs.acquire()
    r.hset("lock:{big}:info", mapping={"attempts": "9" * 5_000_000, "holder": "x"})
    r.set("lock:{big}:fence", "1" * 5_000_000)
    web.get("/locks.json")  # the search finds the keys on a first refresh
    sent = r.info("stats")["total_net_output_bytes"]
    data, entries = _locks(web)
    assert r.info("stats")["total_net_output_bytes"] - sent < 1_000_000  # bounded reads
    assert entries["lock:{big}"]["layout"] == "redis-py"  # no counter of ours: not ours
    assert entries["lock:{big}:fence"]["problem"].startswith("the value is 5000000 bytes")
    skipped = {s["key"]: s["reason"] for s in data["search"]["skipped"]["examples"]}
    assert skipped == {"lock:{big}:info": "holds a hash, not a lock token"}
    _accounted(r, data, entries)
