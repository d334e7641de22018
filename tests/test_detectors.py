"""Detectors: key names of our layer, the limits library, string locks and user patterns."""

import math
import textwrap
from types import SimpleNamespace

import pytest
from limits import RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import RedisStorage

from dashboard.config import Settings
from dashboard.inspect.live.detectors import (
    LOCK,
    RATELIMIT,
    DetectorConfigError,
    Detectors,
    glob_regex,
    minimal_patterns,
    parse_limits_key,
)
from dashboard.inspect.live.foreign import sliding_counter_retry_ms
from dashboard.inspect.live.userpatterns import load_user_patterns
from dashboard.patterns.locks import fence_key, info_key, lock_key
from dashboard.patterns.ratelimit import limiter_key


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("lock:*", [b"lock:a", b"lock:", b"lock:\xff{x}"], [b"xlock:a", b"lock"]),
        ("*:lock", [b"jobs:lock", b":lock"], [b"jobs:lock:x"]),
        ("a?c", [b"abc", b"a\nc"], [b"ac", b"abbc"]),
        ("k[0-9]", [b"k1"], [b"ka", b"k10"]),
        ("k[^0-9]", [b"ka"], [b"k1"]),
        (r"k\*", [b"k*"], [b"kx"]),
        ("lock:{*}", [b"lock:{a}"], [b"lock:{a}:info"]),
    ],
)
def test_glob_regex_follows_redis_glob(pattern, yes, no):
    regex = glob_regex(pattern)
    assert all(regex.fullmatch(k) for k in yes)
    assert not any(regex.fullmatch(k) for k in no)


def test_glob_regex_agrees_with_the_server(r):
    keys = [b"lock:a", b"jobs:lock", b"k1", b"ka", b"k*", b"lock:{a}", b"lock:{a}:info", b"abc"]
    for key in keys:
        r.set(key, 1)
    for pattern in ["lock:*", "*:lock", "k[0-9]", "k[^0-9]", r"k\*", "lock:{*}", "a?c", "*"]:
        server = set(r.scan_iter(match=pattern, count=100))
        ours = {k for k in keys if glob_regex(pattern).fullmatch(k)}
        assert ours == server, pattern


def test_minimal_patterns_drop_covered_globs_only():
    assert minimal_patterns(["lock:{*}", "lock:{*}:info", "lock:*", "*:lock", "lock:*"]) == [
        "lock:*",
        "*:lock",
    ]
    assert minimal_patterns(["a[bc]*", "ab*"]) == ["a[bc]*", "ab*"]  # a[bc]* is no prefix
    assert minimal_patterns(["ratelimit:*", "LIMITS:*"]) == ["ratelimit:*", "LIMITS:*"]


def _limits_key(item, *ids, sliding=None, prefix="LIMITS"):
    storage = RedisStorage.__new__(RedisStorage)  # key naming only: no connection
    storage.key_prefix = prefix
    key = item.key_for(*ids)
    if sliding == "current":
        key = storage._current_window_key(key)
    elif sliding == "previous":
        key = storage._previous_window_key(key)
    return storage.prefixed_key(key).encode()


def test_limits_keys_are_decoded_as_the_library_writes_them():
    fixed = parse_limits_key(_limits_key(RateLimitItemPerMinute(10), "alice"))
    assert (fixed.layout, fixed.reader, fixed.limit, fixed.window_ms) == (
        "limits",
        "limits",
        10,
        60_000,
    )
    assert fixed.subject == "alice" and fixed.group == "LIMITER · 10 per 1 minute"
    hourly = parse_limits_key(_limits_key(RateLimitItemPerHour(500, 6), "10.0.0.1", "api/v1/x"))
    assert (hourly.limit, hourly.window_ms, hourly.subject) == (
        500,
        6 * 3_600_000,
        "10.0.0.1/api/v1/x",
    )
    current = parse_limits_key(_limits_key(RateLimitItemPerSecond(3), "bob", sliding="current"))
    previous = parse_limits_key(_limits_key(RateLimitItemPerSecond(3), "bob", sliding="previous"))
    assert current == previous  # both windows are one piece of state, read from the current key
    assert current.reader == "limits-sliding" and current.algorithm == "sliding-window-counter"
    assert current.key == b"LIMITS:{LIMITER/bob/3/1/second}"
    assert current.companions == (b"LIMITS:{LIMITER/bob/3/1/second}/-1",)
    custom = _limits_key(RateLimitItemPerMinute(2), "x", prefix="myapp")
    assert parse_limits_key(custom) is None
    assert parse_limits_key(custom, ["LIMITS", "myapp"]).limit == 2


@pytest.mark.parametrize(
    "key",
    [b"LIMITS:foo", b"LIMITS:LIMITER/x/10/1/fortnight", b"LIMITS:LIMITER/x/010/1/minute",
     b"LIMITS:{LIMITER/x/1/1/minute", b"OTHER:LIMITER/x/1/1/minute", b"LIMITS:LIMITER/x/0/1/day"],
)  # fmt: skip
def test_limits_parser_refuses_other_names(key):
    assert parse_limits_key(key) is None


def test_claim_order_our_layer_first_then_user_then_generic(tmp_path):
    d = Detectors()
    ours = d.claim(RATELIMIT, limiter_key("api", "fixed", 5, 1000, b"\xffid"))
    assert (ours.layout, ours.group, ours.subject, ours.limit) == ("dashboard", "api", "\\xffid", 5)
    lock = d.claim(LOCK, lock_key("job:1"))
    assert (lock.layout, lock.reader, lock.subject) == ("dashboard", "ours-lock", "job:1")
    # a name in our layout is a candidate; read as a string lock when Redis says not ours
    assert [(c.key, c.reader, c.subject) for c in lock.fallback] == [
        (b"lock:{job:1}", "string", "{job:1}")
    ]
    for companion in (info_key("job:1"), fence_key("job:1")):
        found = d.claim(LOCK, companion)
        assert found.key == lock_key("job:1").encode()  # the companion stands for the lock
        assert [c.key for c in found.fallback] == [companion.encode()]
    for odd in (b"lock:{shard1}sync", b"lock:{a}b}", b"lock:{}", b"lock:{\xff"):
        generic = d.claim(LOCK, odd)  # hash-tagged but not our layout: shown, not hidden
        assert (generic.reader, generic.key, generic.fallback) == ("string", odd, ())
    assert d.claim(LOCK, b"lock-signal:nightly") is None  # python-redis-lock wake-up list
    assert "wake-up" in d.why_not(LOCK, b"lock-signal:nightly")
    generic = d.claim(LOCK, b"reports:lock")
    assert (generic.layout, generic.subject) == ("string lock", "reports")
    assert d.claim(LOCK, b"user:1") is None and d.claim(RATELIMIT, b"user:1") is None
    spec = tmp_path / "d.toml"
    spec.write_text('[[pattern]]\nname = "jobs"\nkind = "lock"\nmatch = "reports:*"\n')
    d2 = Detectors.from_settings(Settings(detectors_file=str(spec)))
    assert d2.claim(LOCK, b"reports:lock").layout == "jobs"  # the user's name wins
    assert "reports:*" in d2.patterns(LOCK) and "jobs" in d2.layouts(LOCK)


def test_patterns_follow_settings():
    d = Detectors.from_settings(Settings(lock_patterns="mutex:*, *:mutex", limits_prefixes="A,B*"))
    assert d.patterns(LOCK) == ["lock:{*}", "lock:{*}:info", "mutex:*", "*:mutex"]
    assert d.patterns(RATELIMIT) == ["ratelimit:*", "A:*", r"B\*:*"]
    assert d.claim(LOCK, b"lock:x") is None and d.claim(LOCK, b"mutex:x").subject == "x"


def test_user_patterns_from_toml(tmp_path):
    path = tmp_path / "detectors.toml"
    path.write_text(
        textwrap.dedent(
            r"""
            [[pattern]]
            name = "quota"
            kind = "ratelimit"
            match = "quota:*"
            regex = '^quota:(?P<identity>[^:]+):(?P<limit>\d+):(?P<window>\d+)$'

            [[pattern]]
            name = "events"
            kind = "ratelimit"
            match = "ev:*"
            regex = '^ev:(?P<limiter>[^:]+):(?P<identity>.+)$'
            algorithm = "log"
            limit = 20
            window_ms = 1500
            score_unit = "ms"
            """
        )
    )
    quota, events = load_user_patterns(str(path))
    claim = quota.claim(b"quota:alice:100:3600")
    assert (claim.subject, claim.limit, claim.window_ms, claim.reader) == (
        "alice",
        100,
        3_600_000,
        "fixed",
    )
    assert claim.group == "quota" and claim.layout == "quota"
    assert quota.claim(b"quota:alice") is None  # the key lacks what the regex promised
    log = events.claim(b"ev:signup:bob")
    assert (log.group, log.subject, log.limit, log.window_ms, log.score_ms) == (
        "signup",
        "bob",
        20,
        1500,
        1.0,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[pattern]]\nname = "x"\nkind = "queue"\nmatch = "q:*"', "kind must be one of"),
        ('[[pattern]]\nname = "x"\nkind = "lock"', "needs match"),
        ('[[pattern]]\nkind = "lock"\nmatch = "m"', "needs a name"),
        ('[[pattern]]\nname = "x"\nkind = "ratelimit"\nmatch = "q:*"', "set limit"),
        ('[[pattern]]\nname = "x"\nkind = "ratelimit"\nmatch = "q:*"\nlimit = -1', "positive"),
        ('[[pattern]]\nname = "x"\nkind = "lock"\nmatch = "q:*"\nregex = "("', "does not compile"),
        ('[[pattern]]\nname = "x"\nkind = "lock"\nmatch = "q:*"\ncolour = 1', "unknown field"),
        (
            '[[pattern]]\nname="x"\nkind="ratelimit"\nmatch="q"\nlimit=1\nalgorithm="gcra"',
            "algorithm",
        ),
        (
            '[[pattern]]\nname="x"\nkind="ratelimit"\nmatch="q"\nlimit=1\nscore_unit="h"',
            "score_unit",
        ),
        ("[other]\na = 1", "unknown table"),
        ("pattern = 3", r"use \[\[pattern\]\]"),
        ("[[pattern]\n", "not valid TOML"),
    ],
)
def test_bad_detector_files_name_file_and_entry(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(DetectorConfigError, match=message) as info:
        load_user_patterns(str(path))
    assert str(path) in str(info.value)


def test_a_broken_or_missing_file_is_a_problem_not_a_crash(tmp_path):
    d = Detectors.from_settings(Settings(detectors_file=str(tmp_path / "missing.toml")))
    assert d.user == [] and "missing.toml" in d.problems[0]
    assert d.claim(LOCK, b"lock:x") is not None  # built-ins still work


def test_user_file_is_reloaded_when_it_changes(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text('[[pattern]]\nname = "a"\nkind = "lock"\nmatch = "a:*"\n')
    settings = SimpleNamespace(detectors_file=str(path), lock_patterns="", limits_prefixes="LIMITS")
    assert [p.name for p in Detectors.from_settings(settings).user] == ["a"]
    path.write_text('[[pattern]]\nname = "b"\nkind = "lock"\nmatch = "b:*"\n')
    import os

    os.utime(path, (1, 1))  # a different mtime even within the same clock tick
    assert [p.name for p in Detectors.from_settings(settings).user] == ["b"]


def _weighted(limit, window, prev, prev_ttl, cur, cur_ttl, t):
    """What limits' acquire script would compute ``t`` ms from now (its shift included)."""
    p_ttl, c_ttl = prev_ttl - t, cur_ttl - t
    p, c = prev, cur
    if cur and 0 < c_ttl < window:
        p, p_ttl, c = cur, c_ttl, 0
    elif cur and c_ttl <= 0:
        p, c = 0, 0
    p_ttl = max(p_ttl, 0)
    return math.floor(p * p_ttl / window) + c


@pytest.mark.parametrize(
    "case",
    [
        (10, 1000, 10, 900, 2, 1900),  # the previous window decays enough
        (10, 1000, 6, 900, 5, 1900),  # both windows count
        (10, 1000, 0, 0, 10, 1950),  # the current window is full: wait for the shift
        (10, 1000, 4, 300, 10, 1200),
        (3, 60_000, 9, 59_000, 2, 119_000),
        (5, 1000, 5, 500, 3, 1800),
    ],
)
def test_sliding_counter_retry_matches_the_library_formula(case):
    limit, window, prev, prev_ttl, cur, cur_ttl = case
    assert _weighted(limit, window, *case[2:], 0) + 1 > limit  # blocked now
    wait = sliding_counter_retry_ms(limit, window, prev, prev_ttl, cur, cur_ttl)
    assert _weighted(limit, window, *case[2:], wait) + 1 <= limit  # passes then
    assert wait > 0 and _weighted(limit, window, *case[2:], wait - 1) + 1 > limit  # not earlier


def test_sliding_counter_retry_is_the_first_passing_ms_for_random_states():
    import random

    rng = random.Random(5)
    checked = 0
    while checked < 300:
        limit, window = rng.randint(1, 12), rng.randint(20, 200)
        prev, cur = rng.randint(0, limit), rng.randint(0, limit)
        prev_ttl = rng.randint(1, window - 1) if prev else 0
        cur_ttl = rng.randint(window, 2 * window) if cur else 0
        state = (prev, prev_ttl, cur, cur_ttl)
        if _weighted(limit, window, *state, 0) + 1 <= limit:
            continue  # not blocked: nothing to wait for
        first = next(t for t in range(3 * window) if _weighted(limit, window, *state, t) < limit)
        assert sliding_counter_retry_ms(limit, window, *state) == first, (limit, window, state)
        checked += 1
