"""Cache pattern: cache-aside, negative caching, write-through, tags, stampede, read side."""

import threading
import time

import pytest
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from dashboard import gate
from dashboard.patterns import cache_core as cache_mod
from dashboard.patterns import codecs, keys, scripts
from dashboard.patterns.cache import BYTES, MISS, Cache, CacheError, entry_info, read_stats


class FakeClock:
    """Time that moves only when told (or when the cache sleeps)."""

    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


def make(client, **kw):
    kw.setdefault("jitter", 0.0)
    kw.setdefault("stats_flush_interval", None)
    return Cache(client, **kw)


class Loader:
    """A loader that counts its calls (thread-safe) and returns the next value."""

    def __init__(self, *values, sleep=0.0, before=None):
        self.values = list(values)
        self.calls = 0
        self.sleep = sleep
        self.before = before
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
            n = self.calls
        if self.before:
            self.before()
        if self.sleep:
            time.sleep(self.sleep)
        return self.values[min(n, len(self.values)) - 1]


# -- cache-aside basics ----------------------------------------------------------------
def test_hit_after_miss_calls_the_loader_once(r):
    c = make(r)
    load = Loader({"name": "ada"})
    assert c.get_or_set("user:1", load) == {"name": "ada"}
    assert c.get_or_set("user:1", load) == {"name": "ada"}
    assert load.calls == 1
    stats = c.stats()
    assert (stats["misses"], stats["hits"], stats["recomputations"]) == (1, 1, 1)
    assert r.exists("cache:entry:user:1") == 1


def test_cached_none_is_not_a_miss_and_uses_negative_ttl(r):
    c = make(r, ttl=600, negative_ttl=5)
    load = Loader(None)
    assert c.get_or_set("user:404", load) is None
    assert c.get_or_set("user:404", load) is None
    assert load.calls == 1
    assert c.get("user:404") is None
    assert c.get("user:missing") is MISS
    assert c.get("user:missing", default="d") == "d"
    assert 0 < r.pttl("cache:entry:user:404") <= 5000
    assert c.stats()["negative_hits"] == 2
    assert entry_info(r, "cache:entry:user:404").kind == "negative"


@pytest.mark.parametrize("value", ["", [], {}, 0, False])
def test_empty_values_are_cached_values(r, value):
    c = make(r)
    load = Loader(value)
    assert c.get_or_set("k", load) == value
    assert c.get_or_set("k", load) == value
    assert type(c.get("k")) is type(value)
    assert load.calls == 1
    assert entry_info(r, "cache:entry:k").kind == "value"


def test_bytes_codec_passthrough_and_empty_bytes(r):
    c = make(r, codec=BYTES)
    for key, value in (("a", b""), ("b", b"\xff\x00\xfe"), ("c", None)):
        c.set(key, value)
        assert c.get(key) == value
    with pytest.raises(TypeError, match="cache:entry:d"):
        c.set("d", "text is not bytes")


def test_short_ttl_expires_and_reloads(r):
    c = make(r, ttl=0.03)
    load = Loader("v1", "v2")
    assert c.get_or_set("k", load) == "v1"
    _wait_until_gone(r, "cache:entry:k")
    assert c.get("k") is MISS
    assert c.get_or_set("k", load) == "v2"
    assert load.calls == 2


def _wait_until_gone(client, name, limit=5.0):
    deadline = time.monotonic() + limit
    while client.exists(name) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not client.exists(name), f"{name} did not expire"


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_jitter_stays_within_the_fraction(fake, draw):
    c = Cache(fake, ttl=100, jitter=0.2, random=lambda: draw, stats_flush_interval=None)
    c.set("k", 1)
    ttl_ms = entry_info(fake, "cache:entry:k").ttl_ms
    assert 80_000 <= ttl_ms <= 120_000
    assert ttl_ms == round(100_000 * (1 + 0.2 * (2 * draw - 1)))


def test_jitter_spreads_expiry(fake):
    c = Cache(fake, ttl=100, jitter=0.1, stats_flush_interval=None)
    ttls = set()
    for i in range(50):
        c.set(f"k{i}", i)
        ttls.add(entry_info(fake, f"cache:entry:k{i}").ttl_ms)
    assert len(ttls) > 1
    assert all(90_000 <= t <= 110_000 for t in ttls)


def test_invalid_settings_are_refused(fake):
    with pytest.raises(ValueError, match="jitter"):
        Cache(fake, jitter=1.0)
    with pytest.raises(ValueError, match="ttl"):
        Cache(fake, ttl=0)
    with pytest.raises(TypeError, match="iterable of str"):
        make(fake).get_or_set("k", Loader(1), tags="user:1")


def test_foreign_or_other_codec_value_is_a_miss_and_is_replaced(r):
    r.set("cache:entry:k", b"\xff\xfe not ours")
    c = make(r)
    assert c.get_or_set("k", Loader("mine")) == "mine"
    assert c.get("k") == "mine"
    make(r, codec=BYTES).set("b", b"raw")
    assert c.get_or_set("b", Loader("json")) == "json"


def test_key_of_wrong_type_raises_an_error_naming_it(r):
    r.hset("cache:entry:h", "f", "v")
    with pytest.raises(CacheError, match="cache:entry:h"):
        make(r).get_or_set("h", Loader(1))


# -- invalidation: delete and tags -------------------------------------------------------
def test_delete_is_a_tombstone_that_an_inflight_loader_cannot_overwrite(r):
    c = make(r, lock_timeout=5)
    # The app updates the database and deletes the key while the loader (which read
    # the old row) is still running: the classic "stale set after delete" race.
    load = Loader("old row", before=lambda: c.delete("k"))
    assert c.get_or_set("k", load) == "old row"
    assert c.get("k") is MISS
    assert c.stats()["store_conflicts"] == 1
    assert c.get_or_set("k", Loader("new row")) == "new row"
    assert c.get("k") == "new row"


def test_tag_invalidation_makes_entries_miss(r):
    c = make(r)
    c.get_or_set("u1", Loader("a"), tags=["user:1", "team:9"])
    c.get_or_set("u2", Loader("b"), tags=["user:2"])
    c.invalidate_tags("user:1")
    assert c.get("u1") is MISS
    assert c.get("u2") == "b"
    load = Loader("a2")
    assert c.get_or_set("u1", load, tags=["user:1", "team:9"]) == "a2"
    assert c.get("u1") == "a2"
    assert load.calls == 1


def test_loader_started_before_invalidation_is_never_served(r):
    c = make(r)
    c.get_or_set("k", Loader("v0"), tags=["t"])
    c.invalidate_tags("t")
    # The loader reads the source, then an invalidation lands before it finishes.
    load = Loader("read before the write", before=lambda: c.invalidate_tags("t"))
    assert c.get_or_set("k", load, tags=["t"]) == "read before the write"
    assert c.get("k") is MISS
    assert entry_info(r, "cache:entry:k").stale_tags == ["t"]
    assert c.get_or_set("k", Loader("fresh"), tags=["t"]) == "fresh"
    assert c.get("k") == "fresh"


def test_tag_key_expiry_or_eviction_only_causes_a_miss(r):
    c = make(r, tag_ttl=0.03)
    c.get_or_set("k", Loader("v"), tags=["t"])
    assert c.get("k") == "v"
    _wait_until_gone(r, "cache:tag:t")
    assert c.get("k") is MISS
    c.get_or_set("k", Loader("v2"), tags=["t"])
    r.delete("cache:tag:t")  # eviction under maxmemory: still a miss, never stale
    assert c.get("k") is MISS


def test_entries_never_stamp_a_missing_tag_version(r):
    c = make(r)
    c.set("k", 1, tags=["fresh-tag"])
    stamp = entry_info(r, "cache:entry:k").tags["fresh-tag"]
    assert stamp == r.get("cache:tag:fresh-tag").decode()
    assert r.pttl("cache:tag:fresh-tag") > 0


# -- write-through ---------------------------------------------------------------------
def test_write_through_writes_the_store_then_the_cache(r):
    c = make(r)
    db = {}

    def store(value):
        assert c.get("p") is MISS  # the cache is written only after the store
        db["p"] = value

    assert c.write_through("p", {"price": 3}, store, tags=["product"]) is True
    assert db == {"p": {"price": 3}}
    assert c.get("p") == {"price": 3}


def test_write_through_failing_store_leaves_the_cache_alone(r):
    c = make(r)
    c.set("p", "old")

    def store(value):
        raise RuntimeError("db down")

    with pytest.raises(RuntimeError, match="db down"):
        c.write_through("p", "new", store)
    assert c.get("p") == "old"


def test_write_through_unencodable_value_never_reaches_the_store(r):
    c = make(r)
    calls = []
    with pytest.raises(TypeError, match="cache:entry:p"):
        c.write_through("p", object(), calls.append)
    assert calls == []


class BrokenScript:
    """Stands in for the store script: the connection is lost every time."""

    def __call__(self, *args, **kwargs):
        raise RedisConnectionError("connection lost")

    run = __call__


def test_write_through_failing_cache_write_drops_the_key_and_raises(r, monkeypatch):
    c = make(r)
    c.set("p", "old")
    db = {}

    monkeypatch.setattr(cache_mod, "_STORE", BrokenScript())
    with pytest.raises(RedisConnectionError):
        c.write_through("p", "new", lambda v: db.update(p=v))
    assert db == {"p": "new"}
    assert c.get("p") is MISS  # never the stale "old"


def test_write_through_falls_back_to_del_when_tombstone_fails(r, monkeypatch):
    c = make(r)
    c.set("p", "old")

    def no_tombstone(key):
        raise RedisError("OOM command not allowed")
        yield  # a core step method

    monkeypatch.setattr(cache_mod, "_STORE", BrokenScript())
    monkeypatch.setattr(c, "_delete", no_tombstone)
    with pytest.raises(RedisConnectionError):
        c.write_through("p", "new", lambda v: None)
    assert not r.exists("cache:entry:p")


def test_concurrent_write_through_conflict_tombstones_the_key(r):
    c = make(r)
    other = make(r)

    def store(value):
        other.set("p", "written by another writer meanwhile")

    assert c.write_through("p", "mine", store) is False
    assert c.get("p") is MISS
    assert c.stats()["store_conflicts"] == 1


# -- stampede protection ---------------------------------------------------------------
def test_fifty_processes_missing_at_once_recompute_exactly_once(r, make_client):
    load = Loader("expensive", sleep=0.2)
    caches = [make(make_client(), wait_timeout=30) for _ in range(50)]
    barrier = threading.Barrier(50)
    results, errors = [], []

    def run(c):
        try:
            barrier.wait()
            results.append(c.get_or_set("hot", load))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == ["expensive"] * 50
    assert load.calls == 1
    assert sum(c.stats()["recomputations"] for c in caches) == 1
    assert sum(c.stats()["lock_waits"] for c in caches) >= 1
    assert sum(c.stats()["wait_timeouts"] for c in caches) == 0


def test_lock_winner_rechecks_before_loading(r):
    """A caller that missed, then got the lock after the previous winner finished, must
    not load again: the winner's value is already there."""
    c, winner = make(r), make(r)
    real_try_lock = c._try_lock

    def late_try_lock(key):
        winner.get_or_set(key, Loader("from the winner"))  # finished between our read and lock
        return real_try_lock(key)

    c._try_lock = late_try_lock
    load = Loader("duplicate")
    assert c.get_or_set("k", load) == "from the winner"
    assert load.calls == 0
    assert not r.exists("cache:lock:k")


def test_stale_value_is_served_while_one_caller_recomputes(r, make_client):
    clock = FakeClock()
    first = make(make_client(), ttl=0.02, stale_grace=30)
    first.get_or_set("k", Loader("stale"))
    deadline = time.monotonic() + 5
    while entry_info(r, "cache:entry:k").fresh and time.monotonic() < deadline:
        time.sleep(0.005)
    info = entry_info(r, "cache:entry:k")
    assert info.in_grace and not info.fresh

    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return "new"

    out = []
    t = threading.Thread(target=lambda: out.append(first.get_or_set("k", slow)))
    t.start()
    assert started.wait(10)
    other = make(make_client(), ttl=0.02, stale_grace=30, clock=clock, sleep=clock.sleep)
    assert other.get_or_set("k", Loader("must not run")) == "stale"
    assert other.stats()["stale_served"] == 1
    release.set()
    t.join()
    assert out == ["new"]
    assert other.get("k") == "new"


def test_waiter_computes_itself_when_the_winner_never_delivers(fake):
    clock = FakeClock()
    c = make(fake, wait_timeout=2.0, clock=clock, sleep=clock.sleep)
    fake.set("cache:lock:k", "a crashed process", px=60_000)
    load = Loader("mine")
    assert c.get_or_set("k", load) == "mine"
    stats = c.stats()
    assert (stats["lock_waits"], stats["wait_timeouts"], stats["recomputations"]) == (1, 1, 1)
    assert c.get("k") == "mine"


def test_waiter_takes_over_when_the_lock_is_released_without_a_value(r):
    clock = FakeClock()

    def sleep(seconds):
        clock.sleep(seconds)
        r.delete("cache:lock:k")  # the winner's loader failed and released the lock

    c = make(r, wait_timeout=2.0, clock=clock, sleep=sleep)
    r.set("cache:lock:k", "winner", px=60_000)
    assert c.get_or_set("k", Loader("v")) == "v"
    assert c.stats()["wait_timeouts"] == 0
    assert not r.exists("cache:lock:k")  # our own lock was released


def test_loader_error_releases_the_lock(r):
    c = make(r)

    def boom():
        raise ValueError("source failed")

    with pytest.raises(ValueError, match="source failed"):
        c.get_or_set("k", boom)
    assert not r.exists("cache:lock:k")
    assert c.get("k") is MISS


def test_xfetch_refreshes_early_when_the_draw_says_so(fake):
    clock = FakeClock()
    draw = {"u": 0.0}

    def loader_taking_one_second(value):
        def load():
            clock.t += 1.0
            return value

        return load

    c = make(fake, ttl=10, clock=clock, random=lambda: draw["u"])
    assert c.get_or_set("k", loader_taking_one_second("v1")) == "v1"
    assert entry_info(fake, "cache:entry:k").delta_ms == 1000
    # u = 0 -> -ln(1) = 0: never early.
    assert c.get_or_set("k", loader_taking_one_second("v2")) == "v1"
    # delta 1000 ms * -ln(1e-9) ~ 20700 ms >= ~10000 ms left: refresh now.
    draw["u"] = 1 - 1e-9
    assert c.get_or_set("k", loader_taking_one_second("v3")) == "v3"
    assert c.stats()["early_refreshes"] == 1
    assert c.get("k") == "v3"
    off = make(fake, ttl=10, clock=clock, random=lambda: draw["u"], beta=0)
    assert off.get_or_set("k", loader_taking_one_second("v4")) == "v3"


def test_noscript_after_script_flush_still_works(r):
    c = make(r)
    c.get_or_set("k", Loader("v1"))
    store_sha = scripts.load("cache_store").sha
    assert r.script_exists(store_sha) == [True]
    r.script_flush()
    assert r.script_exists(store_sha) == [False]
    c.delete("k")
    assert c.get_or_set("k", Loader("v2")) == "v2"
    assert c.get("k") == "v2"
    assert not r.exists("cache:lock:k")


def test_pure_logic_on_fakeredis(fake):
    c = make(fake)
    assert c.get_or_set("k", Loader(None), tags=["t"]) is None
    assert c.get("k") is None
    c.invalidate_tags("t")
    assert c.get("k") is MISS
    assert c.write_through("k", [1, 2], lambda v: None, tags=["t"]) is True
    assert c.get("k") == [1, 2]
    assert c.get_or_set(b"\xff\x00", Loader("binary key")) == "binary key"
    assert fake.exists(b"cache:entry:\xff\x00")
    assert entry_info(fake, b"cache:entry:\xff\x00").key == "cache:entry:\\xff\\x00"


# -- cluster safety ----------------------------------------------------------------------
def _recording_client(make_client):
    sent = []

    class Recording(Connection):
        def _construct_command_packer(self, packer):
            inner = super()._construct_command_packer(packer)

            class Packer:
                def pack(self, *args):
                    sent.append(args)
                    return inner.pack(*args)

            return Packer()

    client = make_client()
    client.connection_pool.connection_class = Recording
    client.connection_pool.disconnect()
    return client, sent


def test_every_command_and_transaction_stays_in_one_slot(r, make_client):
    client, sent = _recording_client(make_client)
    c = make(client, stale_grace=1)
    c.get_or_set("a", Loader(1), tags=["t1", "t2", "t3"])
    c.get_or_set("a", Loader(1), tags=["t1", "t2", "t3"])
    c.write_through("b", 2, lambda v: None, tags=["t2"])
    c.invalidate_tags("t1", "t2")
    c.get("a")
    c.delete("a")
    c.flush_stats()
    entry_info(client, "cache:entry:b")
    read_stats(client)

    def keys_of(args):
        try:
            return r.command_getkeys(*args)
        except ResponseError:
            return []  # a command without keys

    groups, current = [], None
    for args in sent:
        name = args[0].upper() if isinstance(args[0], str) else args[0].decode().upper()
        if name == "MULTI":
            current = []
        elif name == "EXEC":
            groups.append(current)
            current = None
        elif current is not None:
            current.extend(keys_of(args))
        else:
            groups.append(keys_of(args))
    assert any(len(g) > 1 for g in groups)  # the MULTI GET+PTTL groups were recorded
    for g in groups:
        assert keys.same_slot(*g), f"keys on different slots in one operation: {g}"


# -- read side -------------------------------------------------------------------------
def test_entry_info_describes_our_entries_through_the_read_only_gate(r, make_client):
    c = make(r, stale_grace=60)
    c.set("u:1", {"n": "ada"}, tags=["user:1"])
    ro = gate.install(make_client(), allow_writes=False)
    info = entry_info(ro, b"cache:entry:u:1")
    assert info.ours and info.exists and info.kind == "value" and info.codec == "json"
    assert info.fresh and not info.in_grace and info.tags_checked and info.stale_tags == []
    assert info.payload_bytes == len(b'{"n":"ada"}')
    assert 0 < info.remaining_fresh_ms <= 300_000 < info.pttl_ms
    c.invalidate_tags("user:1")
    info = entry_info(ro, "cache:entry:u:1")
    assert info.stale_tags == ["user:1"] and not info.fresh and not info.in_grace
    assert entry_info(ro, "x:y", prefix="cache").exists is False


def test_entry_info_is_graceful_on_foreign_values(r):
    r.set(b"cache:entry:\xff", b"\xff\xfe\x00binary")
    info = entry_info(r, b"cache:entry:\xff")
    assert info.exists and not info.ours and "rdc1" in info.problem
    assert info.key == "cache:entry:\\xff"
    r.set("cache:entry:bad", b"rdc1 0123456789abcdef {not json}\npayload")
    assert "damaged" in entry_info(r, "cache:entry:bad").problem
    r.rpush("cache:entry:list", "a")
    assert "not a string" in entry_info(r, "cache:entry:list").problem


def test_entry_info_reads_only_a_prefix_of_large_values(r):
    c = make(r, codec=BYTES)
    c.set("big", b"\xfe" * 2_000_000)
    info = entry_info(r, "cache:entry:big")
    assert info.payload_bytes == 2_000_000
    assert len(info.preview) <= 4 * codecs.PREVIEW_BYTES


def test_shared_stats_add_up_across_processes(r, make_client):
    clock = FakeClock()
    caches = [
        Cache(make_client(), stats_flush_interval=10, clock=clock, jitter=0) for _ in range(2)
    ]
    for c in caches:
        c.get_or_set("k", Loader(1))
    clock.t += 11
    for c in caches:
        c.get("k")  # the first counter after the interval flushes
    stats = read_stats(r)
    assert stats["recomputations"] == 1
    assert stats["misses"] == 1 and stats["hits"] == 3
    assert 0 < r.pttl("cache:stats") <= codecs.STATS_TTL_MS


def test_envelope_parser_refuses_damage():
    good = codecs.encode_envelope("value", "json", ttl_ms=5, tags={"t": "ab"}, payload=b"[]")
    env = codecs.parse_envelope(good)
    assert (env.kind, env.ttl_ms, env.tags, env.payload) == ("value", 5, {"t": "ab"}, b"[]")
    for bad in (b"", b"rdc1 xyz", good.replace(b"\n", b" "), good.replace(b'"k":"v"', b'"k":"q"')):
        with pytest.raises(codecs.EnvelopeError):
            codecs.parse_envelope(bad)
    assert codecs.write_id_of(good) == env.write_id
    assert codecs.write_id_of(b"foreign") == ""


def test_lua_store_refuses_to_overwrite_a_newer_write(r):
    store = scripts.load("cache_store")
    first = codecs.encode_envelope("value", "json", payload=b"1")
    assert store(r, keys=["e"], args=["", first, 10_000]) == 1
    second = codecs.encode_envelope("value", "json", payload=b"2")
    assert store(r, keys=["e"], args=["", second, 10_000]) == 0  # saw absent, now first
    assert store(r, keys=["e"], args=[codecs.write_id_of(first), second, 10_000]) == 1
    assert r.get("e") == second
