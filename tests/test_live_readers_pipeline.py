"""read_ratelimits and read_locks (dashboard/inspect/live/foreign.py) whole, on the suite's
redis-server: keys written by the real ``limits`` library or in its layout, several
layouts in ONE pipeline, read at a node time taken here. Pins which reply feeds which
field, the windows' edges (a hit exactly at the cutoff, nothing left, no TTL, a key gone
between search and read) and what a key the dashboard may not read shows.
test_live_readers.py pins the arithmetic of each reader on its own."""

import math

import pytest
import redis
from limits import RateLimitItemPerMinute, storage, strategies
from test_live_readers import _claim, _entry, _lock_claim

from dashboard.inspect.live import foreign, ownership
from dashboard.inspect.live.detectors import parse_limits_key

WINDOW = 60_000  # ms: one minute, every limits item here


def _server_ms(r) -> int:
    seconds, micros = r.time()
    return seconds * 1000 + micros // 1000


def _read(r, claims, now_ms=None):
    """``read_ratelimits`` with each key's PTTL taken just before and just after."""
    keys = [k for c in claims for k in (c.key, *c.companions)]
    before = {k: r.pttl(k) for k in keys}
    got = foreign.read_ratelimits(r, claims, _server_ms(r) if now_ms is None else now_ms)
    after = {k: r.pttl(k) for k in keys}
    return got, before, after


def _untimed(claim, timed=("resets_in_ms",), **fields):
    """The expected entry without the fields that follow PTTL (checked against bounds)."""
    return {k: v for k, v in _entry(claim, **fields).items() if k not in timed}


def _limits_claim(r, pattern: str):
    [key] = r.keys(pattern)
    return parse_limits_key(key)


def test_the_limits_library_three_windows_and_a_vanished_key_in_one_pipeline(r, redis_url):
    store = storage.storage_from_string(redis_url)
    for name, strategy, hits in (
        ("FIXED", strategies.FixedWindowRateLimiter(store), 3),
        ("MOVING", strategies.MovingWindowRateLimiter(store), 5),
        ("SLIDING", strategies.SlidingWindowCounterRateLimiter(store), 4),
    ):
        item = RateLimitItemPerMinute(5, namespace=name)
        for _ in range(hits):
            assert strategy.hit(item, "10.0.0.7")
    fixed, moving = _limits_claim(r, "LIMITS:FIXED/*"), _limits_claim(r, "LIMITS:MOVING/*")
    sliding = _limits_claim(r, "LIMITS:{SLIDING/*")
    gone = parse_limits_key(b"LIMITS:GONE/10.0.0.7/5/1/minute")  # found, then expired
    now = _server_ms(r)
    stamps = [float(t) for t in r.lrange(moving.key, 0, -1)]  # newest first
    got, before, after = _read(r, [fixed, gone, moving, sliding], now)
    assert [claim for claim, _ in got] == [fixed, moving, sliding]  # the gone key: no row
    entries = [entry for _, entry in got]
    for claim, entry in zip((fixed, sliding), (entries[0], entries[2]), strict=True):
        assert after[claim.key] <= entry.pop("resets_in_ms") <= before[claim.key]
    assert entries[0] == _untimed(fixed, algorithm="fixed-window", used=3, remaining=2)
    assert entries[1] == _entry(
        moving,
        algorithm="moving-window",
        used=5,
        remaining=0,
        blocked=True,
        resets_in_ms=math.ceil(stamps[0] * 1000 + WINDOW - now),
        retry_in_ms=math.ceil(stamps[-1] * 1000 + WINDOW - now),  # the oldest must leave
    )
    assert entries[2] == _untimed(sliding, used=4, remaining=1)  # no previous window yet


def test_a_moving_window_is_read_only_as_far_as_its_limit(r):
    """limits trims its list to the limit; a longer list (another writer) counts only the
    ``limit`` newest entries, so a full window is exactly full."""
    key = "LIMITS:LIMITER/bulk/3/1/minute"
    r.rpush(key, *(str(99 - i) for i in range(6)))  # six live hits 1..6 s ago, newest first
    claim = parse_limits_key(key.encode())
    [(_, entry)] = foreign.read_ratelimits(r, [claim], 100_000)
    assert entry == _entry(
        claim,
        algorithm="moving-window",
        used=3,
        remaining=0,
        blocked=True,
        resets_in_ms=WINDOW - 1_000,
        retry_in_ms=WINDOW - 3_000,  # the third newest, the oldest of the three read
    )


def test_a_sliding_window_weighs_the_previous_window_the_library_left(r, redis_url):
    store = storage.storage_from_string(redis_url)
    sliding = strategies.SlidingWindowCounterRateLimiter(store)
    item = RateLimitItemPerMinute(5)
    for _ in range(2):
        assert sliding.hit(item, "carol")
    claim = _limits_claim(r, "LIMITS:{*")
    [previous] = claim.companions
    r.set(previous, 4, px=45_500)  # 4 hits, 45.5 s of the last window left: weighs 3
    got, before, after = _read(r, [claim])
    [(_, entry)] = got
    resets, retry = entry.pop("resets_in_ms"), entry.pop("retry_in_ms")
    both = ("resets_in_ms", "retry_in_ms")
    assert entry == _untimed(claim, both, used=5, remaining=0, blocked=True)
    assert after[claim.key] <= resets <= before[claim.key]  # the current window lasts longest
    # free again once the previous window weighs less than 5 - 2 = 3 hits:
    # 4 * ttl / 60000 < 3 once ttl < 45000, the first whole ms after
    assert after[previous] - 45_000 + 1 <= retry <= before[previous] - 45_000 + 1


def _log_claim(key: bytes, limit: int, unit: float):
    return _claim(key=key, reader="log", algorithm="log", limit=limit, score_ms=unit)


def test_user_logs_count_hits_after_the_cutoff_only(r):
    now = 100_000
    r.zadd("log:ms", {"a": 39_000, "b": 40_000, "c": 40_001, "d": 70_000, "e": 90_000})
    r.zadd("log:s", {"a": 40.0, "b": 95.5})  # scores in seconds
    in_ms, in_s = _log_claim(b"log:ms", 2, 1.0), _log_claim(b"log:s", 3, 1000.0)
    got = dict(foreign.read_ratelimits(r, [in_ms, in_s], now))
    # live (after 100000 - 60000 = 40000, not at it): c, d, e; the 2nd oldest live (d)
    # must leave for a hit to pass: 70000 + 60000 - 100000
    assert got[in_ms] == _entry(
        in_ms, used=3, remaining=0, blocked=True, resets_in_ms=50_000, retry_in_ms=30_000
    )
    assert got[in_s] == _entry(in_s, used=1, remaining=2, resets_in_ms=55_500)


def test_counters_at_their_edges(r):
    r.set("quota:full", 5, px=30_000)
    r.set("quota:forever", 2)  # someone dropped the TTL
    r.set("quota:huge", "7" * 40, px=30_000)  # longer than any counter: first bytes only
    full, forever, huge = (
        _claim(key=key, algorithm="counter")
        for key in (b"quota:full", b"quota:forever", b"quota:huge")
    )
    got, before, after = _read(r, [full, forever, huge])
    entries = dict(got)
    for claim in (full, huge):
        resets = entries[claim].pop("resets_in_ms")
        assert entries[claim].pop("retry_in_ms") == resets  # blocked until it resets
        assert after[claim.key] <= resets <= before[claim.key]
    both = ("resets_in_ms", "retry_in_ms")
    assert entries[full] == _untimed(full, both, used=5, remaining=0, blocked=True)
    assert entries[forever] == _entry(
        forever, used=2, remaining=3, resets_in_ms=None, problem="no TTL: this counter never resets"
    )
    used = int("7" * foreign.COUNTER_BYTES)  # GETRANGE 0..COUNTER_BYTES-1, never the value
    assert entries[huge] == _untimed(huge, both, used=used, remaining=0, blocked=True)


def test_keys_of_another_type_say_what_they_hold(r):
    r.rpush("quota:list", "x")
    r.hset("LIMITS:LIMITER/ip/5/1/minute", "f", "v")
    r.rpush("LIMITS:{LIMITER/ip/5/1/minute}", "x")
    r.set("log:str", "x")
    counter = _claim(key=b"quota:list")
    limits = parse_limits_key(b"LIMITS:LIMITER/ip/5/1/minute")
    sliding = parse_limits_key(b"LIMITS:{LIMITER/ip/5/1/minute}")
    log = _log_claim(b"log:str", 2, 1.0)
    got = dict(foreign.read_ratelimits(r, [counter, limits, sliding, log], _server_ms(r)))
    expected = {
        counter: "holds a list; this layout keeps a string counter",
        limits: "holds a hash; this layout keeps a string counter or a list",
        sliding: "holds a list; this layout keeps a string counter",
        log: "holds a string; this layout keeps a sorted set of hit times",
    }
    assert got == {claim: _entry(claim, problem=why) for claim, why in expected.items()}


def _refusing(private_server, **acl):
    """A client of an ACL user limited by ``acl``, and an admin one, on a server of its own."""
    server = private_server()
    admin = redis.Redis(port=server.port)
    admin.acl_setuser("viewer", enabled=True, passwords=["+pw"], **acl)
    return admin, redis.Redis(port=server.port, username="viewer", password="pw")


def test_a_key_the_dashboard_may_not_read_shows_why_and_the_rest_still_read(private_server):
    admin, viewer = _refusing(private_server, keys=["ok:*"], commands=["+@all"])
    admin.set("secret:quota", 1, px=30_000)
    admin.set("ok:quota", 3)
    admin.set("secret:lock", "token-a", px=30_000)
    admin.set("ok:lock", "token-b")
    secret, ok = _claim(key=b"secret:quota"), _claim(key=b"ok:quota", limit=3)
    [(_, refused), (_, fine)] = foreign.read_ratelimits(viewer, [secret, ok], _server_ms(admin))
    why = refused["problem"]
    assert why.startswith("cannot read: ") and "permission" in why.lower()
    assert refused == _entry(secret, problem=why)  # usage unknown: nothing else guessed
    assert fine == _entry(
        ok,
        algorithm="fixed-window",
        used=3,
        remaining=0,
        blocked=True,
        resets_in_ms=None,
        problem="no TTL: this counter never resets",
    )
    locks = [_lock_claim(b"secret:lock"), _lock_claim(b"ok:lock")]
    [(_, hidden), (_, shown)] = foreign.read_locks(viewer, locks)
    why = hidden["problem"]
    assert why.startswith("cannot read: ") and "permission" in why.lower()
    shown_fields = ("layout", "resource", "holder", "ttl_remaining_ms", "held_forever")
    assert [hidden[f] for f in shown_fields] == ["string lock", "secret:lock", None, None, False]
    assert (shown["holder"], shown["ttl_remaining_ms"], shown["held_forever"]) == (
        "token-b",
        -1,
        True,
    )


def test_a_long_moving_window_from_another_writer_counts_no_further_than_its_limit(r):
    """Past MAX_LIST the live count is bisected with LINDEX, up to entry ``limit - 1``:
    a list longer than its limit (limits trims its own) is still at most full."""
    key = "LIMITS:LIMITER/bulk/600/1/minute"
    stamps = [99 - i / 16 for i in range(602)]  # all live, 1/16 s apart (exact floats)
    r.rpush(key, *(repr(t) for t in stamps))
    claim = parse_limits_key(key.encode())
    [(_, entry)] = foreign.read_ratelimits(r, [claim], 100_000)
    assert entry == _entry(
        claim,
        algorithm="moving-window",
        used=600,
        remaining=0,
        blocked=True,
        resets_in_ms=59_000,  # the newest, 99 s: 99000 + 60000 - 100000
        retry_in_ms=math.ceil(stamps[599] * 1000 + WINDOW - 100_000),  # entry limit - 1
    )


def test_a_previous_window_longer_than_any_counter_is_read_in_its_first_bytes(r):
    claim = parse_limits_key(b"LIMITS:{LIMITER/ip/5/1/minute}")
    [previous] = claim.companions
    r.set(claim.key, 1, px=90_000)
    r.set(previous, "7" * 40, px=30_000)
    current = parse_limits_key(b"LIMITS:{LIMITER/big/5/1/minute}")
    r.set(current.key, "7" * 40, px=90_000)
    got, before, after = _read(r, [claim, current])
    [(_, entry), (_, big)] = got
    counted = int("7" * foreign.COUNTER_BYTES)
    assert big["used"] == counted  # the current window's counter: the same bound
    assert counted * after[previous] // WINDOW + 1 <= entry["used"]
    assert entry["used"] <= counted * before[previous] // WINDOW + 1
    assert after[claim.key] <= entry["resets_in_ms"] <= before[claim.key]


def test_a_command_the_dashboard_may_not_run_is_named(private_server):
    admin, viewer = _refusing(private_server, keys=["*"], commands=["+@all", "-type"])
    admin.set("quota:alice", 2, px=30_000)
    claim = _claim()
    [(_, entry)] = foreign.read_ratelimits(viewer, [claim], _server_ms(admin))
    assert entry["problem"].startswith("cannot read: ") and "'type'" in entry["problem"]
    assert entry == _entry(claim, problem=entry["problem"])


# -- the arithmetic at the edges the library's own script draws --------------------------
# limits' sliding_window.lua: the current window shifts to the previous one when
# ``0 < current_ttl < expiry``; a missing TTL counts as 0 for both windows.


def _sliding_now(cur, cur_ttl, prev, prev_ttl):
    from test_live_readers import _sliding

    return _sliding(5, cur, cur_ttl, prev, prev_ttl)  # limit 5, window 1000 ms


@pytest.mark.parametrize(
    ("windows", "used", "resets"),
    [
        ((b"2", 1000, None, -2), 2, 1000),  # exactly one window left: not over yet
        ((b"2", 999, None, -2), 1, 999),  # 1 ms less: now the previous, floor(2 * .999)
        ((b"2", 1000, b"4", 500), 4, 1000),  # not over: the previous still weighs 2
        ((b"2", 1, None, -2), 0, 1),  # 1 ms left: over, weighs floor(2 * 1 / 1000) = 0
        ((b"2", -1, None, -2), 2, 0),  # the current window lost its TTL: counts in full
        ((b"2", None, None, -2), 2, 0),  # its PTTL unreadable: the same
        ((None, -2, b"4", -1), 0, 0),  # a previous window without TTL weighs nothing
        ((None, -2, b"4", None), 0, 0),
        ((b"0", 1500, b"3", 600), 1, 600),  # limits' own read left an empty current window
        ((None, -2, b"0", 900), 0, 0),  # an empty previous window holds no reset
    ],
)
def test_sliding_counter_edges(windows, used, resets):
    claim, entry = _sliding_now(*windows)
    assert entry == _entry(claim, used=used, remaining=5 - used, resets_in_ms=resets)


def test_a_log_trimmed_between_its_two_reads_frees_at_once(r):
    """The pipeline counted 3 live hits; before the follow-up ZRANGE the zset was trimmed:
    no entry to wait for, so no wait (not a crash, not a guess)."""
    claim = _log_claim(b"log:trimmed", 2, 1.0)
    entry = foreign._log(r, claim, 3, [(b"m", 90_000.0)], 100_000)
    assert entry == _entry(
        claim, used=3, remaining=0, blocked=True, resets_in_ms=50_000, retry_in_ms=0
    )


def test_a_decoding_client_reads_the_same(r, make_client):
    """A client made with decode_responses=True hands out str: the readers show the same."""
    from redis.lock import Lock as RedisPyLock

    r.set("quota:alice", 3)
    r.rpush("LIMITS:LIMITER/ip/5/1/minute", "99.5", "80")
    r.zadd("log:alice", {"a": 90_000, "b": 95_000})
    r.set("LIMITS:{LIMITER/ip/5/1/minute}/-1", "4")
    r.hset("quota:hash", "f", "v")
    claims = [
        _claim(),
        parse_limits_key(b"LIMITS:LIMITER/ip/5/1/minute"),
        _log_claim(b"log:alice", 2, 1.0),
        parse_limits_key(b"LIMITS:{LIMITER/ip/5/1/minute}/-1"),
        _claim(key=b"quota:hash"),
    ]
    RedisPyLock(r, "lock:job").acquire()
    r.set("lock:plain", "token-b")
    r.set("lock:empty", "")
    locks = [_lock_claim(k) for k in (b"lock:job", b"lock:plain", b"lock:empty")]
    text = make_client(decode_responses=True)
    assert foreign.read_ratelimits(text, claims, 100_000) == foreign.read_ratelimits(
        r, claims, 100_000
    )
    skipped_bytes, skipped_text = [], []
    assert foreign.read_locks(text, locks, skipped_text) == foreign.read_locks(
        r, locks, skipped_bytes
    )
    assert (
        skipped_text
        == skipped_bytes
        == [(b"lock:empty", "holds an empty string, not a lock token")]
    )
    [(_, job), (_, plain)] = foreign.read_locks(text, locks)
    assert (job["layout"], plain["layout"], plain["holder"]) == (
        "redis-py",
        "string lock",
        "token-b",
    )
    [counter, *_] = foreign.read_ratelimits(text, claims, 100_000)
    assert counter[1]["used"] == 3


def test_a_fence_of_invalid_utf8_through_a_lenient_decoding_client(r, make_client):
    """A client decoding with errors="surrogateescape" hands out str with surrogates:
    such a fence is no counter (and no crash); a decimal one still is."""
    from test_live_readers import _ours

    r.set("lock:{odd}:fence", b"\xff1")
    r.set("lock:{fine}:fence", b"17")
    client = make_client(decode_responses=True, encoding_errors="surrogateescape")
    assert ownership.our_resources(client, [_ours("odd"), _ours("fine")]) == [None, "fence"]


def test_a_counter_with_room_left_is_free_now():
    """The wait for a sliding counter that is not blocked is 0, previous window or not."""
    assert foreign.sliding_counter_retry_ms(5, 1000, 0, 0, 2, 1500) == 0
    assert foreign.sliding_counter_retry_ms(5, 1000, 4, 600, 2, 1500) == 0  # weighs 2


def _calls(client) -> dict[str, int]:
    stats = client.info("commandstats")
    ours = ("cmdstat_info", "cmdstat_config|resetstat")  # the test's own
    return {k[len("cmdstat_") :]: v["calls"] for k, v in stats.items() if k not in ours}


def test_each_layout_is_read_with_its_few_bounded_commands(private_server):
    """Read-only and bounded (the module's contract): per key only TYPE, GETRANGE, PTTL,
    one LRANGE for a moving window, ZCOUNT and one-row ZRANGE for a log."""
    server = private_server()
    client = redis.Redis(port=server.port)
    client.set("quota:alice", 2, px=30_000)
    client.rpush("LIMITS:LIMITER/ip/5/1/minute", "99.5")
    client.set("LIMITS:{LIMITER/ip/5/1/minute}", 1, px=90_000)
    client.zadd("log:alice", {"a": 90_000})
    layouts = {
        "counter": [_claim()],
        "moving": [parse_limits_key(b"LIMITS:LIMITER/ip/5/1/minute")],
        "sliding": [parse_limits_key(b"LIMITS:{LIMITER/ip/5/1/minute}")],
        "log": [_log_claim(b"log:alice", 2, 1.0)],
    }
    sent = {}
    for name, claims in layouts.items():
        client.config_resetstat()
        foreign.read_ratelimits(client, claims, 100_000)
        sent[name] = _calls(client)
    assert sent == {
        "counter": {"type": 1, "getrange": 1, "pttl": 1},
        "moving": {"type": 1, "getrange": 1, "pttl": 1, "lrange": 1},
        "sliding": {"type": 1, "getrange": 2, "pttl": 2},
        "log": {"type": 1, "zcount": 1, "zrange": 1},
    }


def test_a_lock_whose_lease_or_token_may_not_be_read_says_so(private_server):
    """An ACL that allows TYPE but not PTTL (or GETRANGE) hides a lock's state: it is
    shown with the reason, not taken for a lock that is gone or empty."""
    server = private_server()
    admin = redis.Redis(port=server.port)
    admin.set("lk:job", "token-a", px=30_000)
    for user, command in (("nopttl", "pttl"), ("norange", "getrange")):
        admin.acl_setuser(
            user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", f"-{command}"]
        )
        viewer = redis.Redis(port=server.port, username=user, password="pw")
        claims = [_lock_claim(b"lk:gone"), _lock_claim(b"lk:job")]  # a gone key first
        skipped = []
        [(claim, entry)] = foreign.read_locks(viewer, claims, skipped)
        assert claim.key == b"lk:job" and entry["holder"] is None and skipped == []
        assert entry["problem"].startswith("cannot read: ") and f"'{command}'" in entry["problem"]


def test_a_gone_lock_does_not_hide_the_next_one(r):
    r.set("lk:held", "token-a")
    claims = [_lock_claim(b"lk:gone"), _lock_claim(b"lk:held")]
    assert [entry["holder"] for _, entry in foreign.read_locks(r, claims)] == ["token-a"]


def test_a_token_of_invalid_utf8_through_a_lenient_decoding_client(r, make_client):
    r.set("lk:odd", b"\xfftoken-of-bytes")
    claims = [_lock_claim(b"lk:odd")]
    lenient = make_client(decode_responses=True, encoding_errors="surrogateescape")
    [(_, entry)] = foreign.read_locks(lenient, claims)
    assert entry["holder"] == "\\xfftoke…"  # as a bytes client shows it
    assert foreign.read_locks(r, claims) == foreign.read_locks(lenient, claims)


@pytest.mark.parametrize(
    ("size", "flagged"), [(foreign.TOKEN_BYTES, False), (foreign.TOKEN_BYTES + 1, True)]
)
def test_a_value_longer_than_a_token_is_questioned(r, size, flagged):
    r.set("lk:big", "x" * size)
    [(_, entry)] = foreign.read_locks(r, [_lock_claim(b"lk:big")])
    question = f"the value is {size} bytes: a token is short, is this a lock?"
    assert entry["problem"] == (question if flagged else None)
