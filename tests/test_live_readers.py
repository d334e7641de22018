"""The read sides of layouts the dashboard did not write (dashboard/inspect/live/foreign.py),
called directly with claims and key contents chosen here: every field of what they
return, at the boundaries (a hit exactly at the window's edge, a counter at its limit,
a moving window longer than one LRANGE). The end-to-end tests with the real libraries
are in test_live_views.py; these pin the arithmetic they pass through."""

import math

import pytest

from dashboard.inspect.live import foreign, ownership
from dashboard.inspect.live.claims import Claim

NOW = 100_000  # ms: the node's TIME in these tests


def _claim(**fields) -> Claim:
    base = {
        "kind": "ratelimit",
        "layout": "mine",
        "reader": "fixed",
        "key": b"quota:alice",
        "group": "quota",
        "subject": "alice",
        "limit": 5,
        "window_ms": 60_000,
    }
    return Claim(**{**base, **fields})


def _entry(claim: Claim, **fields):
    """The entry every reader starts from, spelled out (not built by the code under test)."""
    entry = {
        "layout": claim.layout,
        "limiter": claim.group,
        "identity": claim.subject,
        "algorithm": claim.algorithm,
        "limit": claim.limit,
        "window_ms": claim.window_ms,
        "exists": True,
        "used": 0,
        "remaining": claim.limit,
        "resets_in_ms": 0,
        "retry_in_ms": 0,
        "blocked": False,
        "problem": None,
    }
    return {**entry, **fields}


# --- limiter_entry --------------------------------------------------------------------


def test_limiter_entry_has_every_field_and_derives_remaining():
    claim = _claim(algorithm="fixed")
    assert foreign.limiter_entry(claim) == _entry(claim)
    assert foreign.limiter_entry(claim, used=2)["remaining"] == 3
    assert foreign.limiter_entry(claim, used=9)["remaining"] == 0  # never negative
    broken = foreign.limiter_entry(claim, problem="cannot read")  # usage unknown
    assert broken["remaining"] == 5 and broken["problem"] == "cannot read"
    counted = foreign.limiter_entry(claim, used=2, problem="no TTL")  # usage known
    assert counted["remaining"] == 3
    assert foreign.limiter_entry(_claim(limit=None), used=2)["remaining"] is None


# --- counters (limits' fixed window, user counters) ----------------------------------


def test_a_counter_under_its_limit():
    claim = _claim()
    entry = foreign._counter(claim, b"3", 1500)
    assert entry == _entry(claim, algorithm="fixed-window", used=3, remaining=2, resets_in_ms=1500)


def test_a_counter_at_its_limit_is_blocked_until_it_resets():
    claim = _claim(algorithm="counter")
    entry = foreign._counter(claim, b"5", 1500)
    assert entry == _entry(
        claim, used=5, remaining=0, resets_in_ms=1500, retry_in_ms=1500, blocked=True
    )
    assert foreign._counter(claim, b"4", 1500)["blocked"] is False


def test_a_counter_without_ttl_says_so_and_still_counts():
    claim = _claim()
    entry = foreign._counter(claim, b"4", -1)
    assert entry == _entry(
        claim,
        algorithm="fixed-window",
        used=4,
        remaining=1,
        resets_in_ms=None,
        problem="no TTL: this counter never resets",
    )
    blocked = foreign._counter(claim, b"6", -1)
    assert blocked["blocked"] and blocked["retry_in_ms"] == 0 and blocked["remaining"] == 0


@pytest.mark.parametrize(("pttl", "resets"), [(0, 0), (-2, None), (None, None), ("x", None)])
def test_a_counter_whose_ttl_is_ending_or_unreadable(pttl, resets):
    entry = foreign._counter(_claim(), b"5", pttl)
    assert entry["resets_in_ms"] == resets and entry["problem"] is None
    assert entry["blocked"] and entry["retry_in_ms"] == 0


def test_a_counter_that_is_not_an_integer():
    claim = _claim()
    assert foreign._counter(claim, b"abc", 1000) == _entry(
        claim, algorithm="fixed-window", problem="the counter is not an integer"
    )


def test_a_counter_without_a_limit_is_never_blocked():
    entry = foreign._counter(_claim(limit=None), b"500", 1000)
    assert entry["blocked"] is False and entry["remaining"] is None


def test_a_key_of_the_wrong_type():
    claim = _claim()
    assert foreign._wrong_type(claim, "list", "string counter") == _entry(
        claim, problem="holds a list; this layout keeps a string counter"
    )


def test_ceil_never_goes_below_zero():
    assert foreign._ceil(-5.5) == 0
    assert foreign._ceil(0.0) == 0
    assert foreign._ceil(0.2) == 1
    assert foreign._ceil(41.0) == 41


# --- limits' moving window -------------------------------------------------------------


def _moving(stamps, limit=5, client=None):
    claim = _claim(reader="limits", algorithm="moving-window", limit=limit)
    return claim, foreign._moving_window(client, claim, stamps, NOW)


def test_moving_window_counts_hits_at_or_after_the_cutoff():
    # cutoff = (100000 - 60000) / 1000 = 40.0 s; a hit exactly at 40.0 still counts
    claim, entry = _moving([b"99.5", b"40.0", b"39.999", b"10"])
    assert entry == _entry(
        claim, algorithm="moving-window", used=2, remaining=3, resets_in_ms=59_500
    )


def test_moving_window_full_is_blocked_until_its_oldest_hit_leaves():
    claim, entry = _moving([b"99.5", b"70.25"], limit=2)
    assert entry == _entry(
        claim,
        algorithm="moving-window",
        used=2,
        remaining=0,
        resets_in_ms=59_500,
        retry_in_ms=30_250,  # 70.25 s + 60 s - 100 s
        blocked=True,
    )


def test_an_empty_or_expired_moving_window():
    claim, entry = _moving([])
    assert entry == _entry(claim, algorithm="moving-window")
    claim, entry = _moving([b"30", b"20"])
    assert entry == _entry(claim, algorithm="moving-window")  # nothing live: no reset


@pytest.mark.parametrize("live", [512, 513, 550, 599, 600, 700])
def test_a_moving_window_longer_than_one_read_is_bisected(r, live):
    """limits keeps at most ``limit`` entries; past MAX_LIST (512) the live count is
    found with LINDEX. Newest first; entries from ``live`` on are older than the window."""
    limit = 700
    stamps = [str(99.0 if i < live else 39.0) for i in range(limit)]
    stamps[live - 1] = "40.0"  # the last live one exactly at the cutoff
    r.rpush("mw", *stamps)
    claim = _claim(key=b"mw", reader="limits", algorithm="moving-window", limit=limit)
    fetched = r.lrange("mw", 0, foreign.MAX_LIST - 1)
    entry = foreign._moving_window(r, claim, fetched, NOW)
    assert entry["used"] == live
    assert entry["blocked"] == (live >= limit)
    if live >= limit:
        assert entry["retry_in_ms"] == math.ceil(40.0 * 1000 + 60_000 - NOW)


# --- limits' sliding window counter -----------------------------------------------------


def _sliding(limit, cur, cur_ttl, prev, prev_ttl):
    claim = _claim(
        reader="limits-sliding", algorithm="sliding-window-counter", limit=limit, window_ms=1000
    )
    return claim, foreign._sliding_counter(claim, cur, cur_ttl, prev, prev_ttl)


def test_sliding_counter_weighs_the_previous_window_by_its_ttl():
    claim, entry = _sliding(10, b"3", 1800, b"4", 600)
    # floor(4 * 600 / 1000) + 3 = 5; the budget is back when both windows are gone
    assert entry == _entry(claim, used=5, remaining=5, resets_in_ms=1800)


def test_sliding_counter_shifts_a_current_window_that_is_over():
    claim, entry = _sliding(10, b"3", 700, b"9", 300)  # cur_ttl < window: now the previous
    assert entry == _entry(claim, used=2, remaining=8, resets_in_ms=700)  # floor(3*700/1000)


def test_sliding_counter_blocked_and_when_it_frees():
    _, entry = _sliding(4, b"3", 1800, b"2", 500)
    assert entry["used"] == 4 and entry["blocked"]  # floor(2 * 0.5) + 3: one more fails
    # the previous window must decay to below one: after 500 - 1 * 1000 / 2 = 0 -> 1 ms
    assert entry["retry_in_ms"] == 1
    _, entry = _sliding(3, b"3", 1800, None, None)
    # the current window alone is full: it shifts after 800 ms, then must decay to 2
    assert entry["blocked"] and entry["retry_in_ms"] == 801
    assert entry["resets_in_ms"] == 1800


def test_sliding_counter_without_a_previous_window():
    claim, entry = _sliding(5, b"2", 1500, None, -2)
    assert entry == _entry(claim, used=2, remaining=3, resets_in_ms=1500)
    claim, entry = _sliding(5, None, None, None, None)  # nothing at all: empty, no reset
    assert entry == _entry(claim)


@pytest.mark.parametrize(
    ("limit", "prev", "prev_ttl", "cur", "cur_ttl", "retry"),
    [
        (5, 0, 0, 5, 1500, 501),  # full current window: shifts at 500, then decays fully
        (5, 0, 0, 10, 1500, 1001),  # twice over: it must decay to half after the shift
        (5, 4, 900, 2, 1500, 151),  # 900 - 3 * 1000 / 4 = 150 -> first whole ms after
        (5, 8, 900, 1, 1900, 401),  # 900 - 4 * 1000 / 8 = 400
        (5, 8, 900, 0, 0, 276),  # no current hits: only the decay, 900 - 5 * 1000 / 8
        (5, 2, 100, 4, 1100, 0),  # 100 - 1000 / 2 < 0: already free once decayed
    ],
)
def test_sliding_counter_retry(limit, prev, prev_ttl, cur, cur_ttl, retry):
    assert foreign.sliding_counter_retry_ms(limit, 1000, prev, prev_ttl, cur, cur_ttl) == retry


# --- user logs (a sorted set of hit times) ----------------------------------------------


def _log(r, scores, limit=2, unit=1.0):
    r.zadd("log:alice", {f"m{i}": s for i, s in enumerate(scores)})
    claim = _claim(key=b"log:alice", reader="log", algorithm="log", limit=limit, score_ms=unit)
    since = f"({(NOW - 60_000) / unit!r}"
    count = r.zcount("log:alice", since, "+inf")
    newest = r.zrange(
        "log:alice", "+inf", since, desc=True, byscore=True, offset=0, num=1, withscores=True
    )
    return claim, foreign._log(r, claim, count, newest, NOW)


def test_a_log_over_its_limit_waits_for_the_right_entry(r):
    # live: 50000, 70000, 90000 (40000 is exactly the cutoff: out); limit 2 -> the 2nd
    # oldest live entry (70000) must leave: 70000 + 60000 - 100000
    claim, entry = _log(r, [30_000, 40_000, 50_000, 70_000, 90_000])
    assert entry == _entry(
        claim, used=3, remaining=0, resets_in_ms=50_000, retry_in_ms=30_000, blocked=True
    )


def test_a_log_under_its_limit_and_in_seconds(r):
    claim, entry = _log(r, [95.5], limit=3, unit=1000.0)  # scores in seconds
    assert entry == _entry(claim, used=1, remaining=2, resets_in_ms=55_500)


def test_an_empty_log(r):
    claim = _claim(key=b"log:none", reader="log", algorithm="log")
    assert foreign._log(r, claim, 0, [], NOW) == _entry(claim)


# --- string locks -----------------------------------------------------------------------


def _lock_claim(key: bytes, layout: str = "string lock") -> Claim:
    return Claim(
        kind="lock", layout=layout, reader="string", key=key, group="", subject=key.decode()
    )


def test_read_locks_every_field_and_what_it_skips(r):
    r.set("lk:held", "tok-123456789", px=5000)
    r.set("lk:forever", "abc")
    r.set("lk:big", "x" * 300, px=5000)
    r.hset("lk:hash", "f", "v")
    r.set("lk:empty", "")
    claims = [
        _lock_claim(k)
        for k in (b"lk:held", b"lk:forever", b"lk:big", b"lk:hash", b"lk:empty", b"lk:gone")
    ]
    skipped = []
    got = {c.key: entry for c, entry in foreign.read_locks(r, claims, skipped)}
    assert set(got) == {b"lk:held", b"lk:forever", b"lk:big"}
    held = got[b"lk:held"]
    assert 0 < held.pop("ttl_remaining_ms") <= 5000
    assert held == {
        "layout": "string lock",
        "resource": "lk:held",
        "held": True,
        "holder": "tok-1234…",
        "held_forever": False,
        "fence": None,
        "last_fence": None,
        "acquired_at_ms": None,
        "age_ms": None,
        **dict.fromkeys(
            "attempts failures expired extends releases hold_ms_total waits wait_ms_total"
            " avg_hold_ms".split()
        ),
        "unusually_long": False,
        "problem": None,
    }
    forever = got[b"lk:forever"]
    assert forever["held_forever"] and forever["ttl_remaining_ms"] == -1
    assert got[b"lk:big"]["problem"] == "the value is 300 bytes: a token is short, is this a lock?"
    assert sorted(skipped) == [
        (b"lk:empty", "holds an empty string, not a lock token"),
        (b"lk:hash", "holds a hash, not a lock token"),
    ]
    assert foreign.read_locks(r, claims[3:5]) == []  # no list given: skipped silently


def test_lock_layout_from_the_token_shape():
    claim = _lock_claim(b"lock:x")
    assert foreign.lock_layout(claim, b"lock:x", b"0" * 12 + b"1abc" + b"8" + b"f" * 15) == (
        "redis-py"
    )
    assert foreign.lock_layout(claim, b"lock:x", b"A" * 24) == "python-redis-lock"
    assert foreign.lock_layout(claim, b"other:x", b"A" * 24) == "string lock"
    assert foreign.lock_layout(_lock_claim(b"x", layout="mine"), b"x", b"A" * 24) == "mine"


@pytest.mark.parametrize(
    ("value", "counter"),
    [
        (b"1", True),
        (b"9" * 20, True),
        (b"9" * 21, False),
        (b"", False),
        (b"12a", False),
        ("12", True),  # decode_responses=True: a str
        (None, False),
    ],
)
def test_what_counts_as_our_fencing_counter(value, counter):
    assert ownership._is_counter(value) is counter


# --- our locks: the evidence that a lock:{x} name is ours (live/ownership.py) -----------


def _ours(resource: str) -> Claim:
    return Claim(
        kind="lock",
        layout="dashboard",
        reader="ours-lock",
        key=f"lock:{{{resource}}}".encode(),
        group="",
        subject=resource,
    )


@pytest.mark.parametrize("decode", [False, True])
def test_our_lock_is_known_by_its_companions(r, make_client, decode):
    from dashboard.patterns.locks import Lock

    Lock(r, "full", ttl=30).acquire()  # fence and info hash
    Lock(r, "fenced", ttl=30).acquire()
    r.delete("lock:{fenced}:info")  # the stats expired: only the fence proves it
    r.set("lock:{theirs}", "token")  # redis-py's Lock(r, "lock:{theirs}"): no companions
    r.set("lock:{wide}:fence", "1" * 21)  # too long for a counter
    r.hset("lock:{wide}:info", "attempts", "1" * 21)
    r.hset("lock:{twenty}:info", "attempts", "9" * 20)  # the longest counter there is
    r.set("lock:{zero}:fence", "")
    r.hset("lock:{zero}:info", "attempts", "")
    client = make_client(decode_responses=True) if decode else r
    names = ["full", "fenced", "theirs", "wide", "twenty", "zero"]
    evidence = ownership.our_resources(client, [_ours(n) for n in names])
    assert evidence == ["info", "fence", None, None, "info", None]


def test_a_held_lock_known_only_by_its_fence_has_unknown_counters(r):
    from dashboard.inspect.live import state
    from dashboard.patterns.locks import Lock

    Lock(r, "fenced", ttl=30).acquire()
    r.delete("lock:{fenced}:info")
    skipped = []
    [(_, entry)] = state._read_locks(r, [_ours("fenced")], skipped)
    assert entry["held"] and entry["layout"] == "dashboard" and entry["fence"] is None
    for name in ("attempts", "failures", "expired", "releases", "avg_hold_ms"):
        assert entry[name] is None, name  # unknown, not 0
    assert skipped == []


def test_server_ms_is_whole_milliseconds():
    from dashboard.inspect.live import state

    class Node:
        def time(self):
            return (1_700_000_000, 999_999)

    assert state._server_ms(Node()) == 1_700_000_000_999
    assert isinstance(state._server_ms(Node()), int)
