"""Rate limits on a real redis-server: decisions, windows, concurrency, read side, keys."""

import re
import threading
import time

import pytest

from dashboard import gate
from dashboard.patterns import keys, scripts
from dashboard.patterns.ratelimit import (
    ALGORITHMS,
    Decision,
    LimiterKey,
    RateLimiter,
    RateLimitError,
    escape_identity,
    gcra_interval_us,
    limiter_key,
    limiter_state,
    parse_limiter_key,
    scan_match_pattern,
)

HOUR = 3600.0


def _server_us(client):
    s, us = client.time()
    return s * 1_000_000 + us


# -- decisions ----------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_allows_limit_then_denies_with_decision_fields(r, algo):
    rl = RateLimiter(r, "api", 3, 60, algorithm=algo)
    decisions = [rl.hit("alice") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    for d in decisions:
        assert isinstance(d, Decision)
        assert (d.limit, d.algorithm, d.key) == (3, algo, rl.key_for("alice"))
        assert 0 < d.reset_after_s <= 60
    assert all(d.retry_after_s == 0 for d in decisions[:3])
    denied = decisions[3]
    assert 0 < denied.retry_after_s <= denied.reset_after_s
    assert rl.hit("bob").allowed, "identities have separate budgets"


def test_fixed_denied_requests_are_not_counted(r):
    rl = RateLimiter(r, "api", 2, 60, algorithm="fixed")
    for _ in range(10):
        rl.hit("u")
    assert r.get(rl.key_for("u")) == b"2"


def test_sliding_denied_requests_add_no_entries(r):
    rl = RateLimiter(r, "api", 2, 60, algorithm="sliding")
    for _ in range(10):
        rl.hit("u")
    assert r.zcard(rl.key_for("u")) == 2


def test_gcra_denied_requests_leave_the_tat_alone(r):
    rl = RateLimiter(r, "api", 2, 60, algorithm="gcra")
    rl.hit("u")
    rl.hit("u")
    tat = r.get(rl.key_for("u"))
    assert not rl.hit("u").allowed
    assert r.get(rl.key_for("u")) == tat


def test_gcra_spaces_refills_by_the_emission_interval(r):
    rl = RateLimiter(r, "api", 4, 60, algorithm="gcra")  # one unit every 15 s
    first = rl.hit("u")
    assert 14.9 < first.reset_after_s <= 15.0
    for _ in range(3):
        last = rl.hit("u")
    denied = rl.hit("u")
    assert not denied.allowed
    assert 45 < last.reset_after_s <= 60
    assert 0 < denied.retry_after_s <= 15.0


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_cost_spends_several_units(r, algo):
    rl = RateLimiter(r, "api", 5, HOUR, algorithm=algo)
    assert rl.hit("u", cost=3).remaining == 2
    denied = rl.hit("u", cost=3)
    assert not denied.allowed and denied.remaining == 2 and denied.retry_after_s > 0
    assert rl.hit("u", cost=2).remaining == 0
    for bad in (0, 6, -1, 1.5, True):
        with pytest.raises(ValueError, match="cost"):
            rl.hit("u", cost=bad)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_budget_comes_back_after_the_window(r, algo):
    rl = RateLimiter(r, "short", 2, 0.2, algorithm=algo)
    while (d := rl.hit("u")).allowed:
        pass
    time.sleep(d.retry_after_s + 0.05)
    assert rl.hit("u").allowed
    time.sleep(rl.hit("u").reset_after_s + 0.05)  # whatever was spent, all of it frees
    fresh = rl.hit("u")
    assert fresh.allowed and fresh.remaining == 1


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_threads_with_own_clients_get_exactly_the_limit(r, make_client, algo):
    threads_n, hits_each, limit = 16, 20, 100
    barrier = threading.Barrier(threads_n)
    allowed = []
    lock = threading.Lock()

    def worker():
        rl = RateLimiter(make_client(), "burst", limit, HOUR, algorithm=algo)
        barrier.wait()
        mine = sum(rl.hit("shared").allowed for _ in range(hits_each))
        with lock:
            allowed.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == threads_n
    assert sum(allowed) == limit
    state = limiter_state(r, RateLimiter(r, "burst", limit, HOUR, algo).key_for("shared"))
    assert (state["used"], state["remaining"], state["blocked"]) == (limit, 0, True)


def test_sliding_window_uses_server_time_not_the_client_clock(r, monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)  # the year 2096
    monkeypatch.setattr(time, "time_ns", lambda: 4_000_000_000 * 10**9)
    rl = RateLimiter(r, "clock", 3, 60, algorithm="sliding")
    assert [rl.hit("u").allowed for _ in range(4)] == [True, True, True, False]
    server_now = _server_us(r)
    scores = [score for _, score in r.zrange(rl.key_for("u"), 0, -1, withscores=True)]
    assert all(abs(score - server_now) < 60_000_000 for score in scores)
    assert limiter_state(r, rl.key_for("u"))["used"] == 3


def test_sliding_members_are_unique_per_request(r):
    rl = RateLimiter(r, "uniq", 50, 60, algorithm="sliding")
    for _ in range(20):
        rl.hit("u", cost=2)
    members = r.zrange(rl.key_for("u"), 0, -1)
    assert len(members) == len(set(members)) == 40


# -- read side ----------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_read_side_agrees_with_every_decision(r, make_client, algo):
    rl = RateLimiter(r, "agree", 5, HOUR, algorithm=algo)
    reader = gate.install(make_client(), allow_writes=False)  # refuses any write command
    for _ in range(7):
        d = rl.hit("carol")
        state = limiter_state(reader, d.key)
        assert state["remaining"] == d.remaining
        assert state["used"] == 5 - d.remaining
        assert state["blocked"] == (d.remaining == 0)
        assert state["exists"] and state["problem"] is None
        assert 0 < state["resets_in_ms"] <= HOUR * 1000
        assert (state["retry_in_ms"] > 0) == state["blocked"]
        assert (state["name"], state["identity"], state["algorithm"]) == ("agree", "carol", algo)
        assert (state["limit"], state["window_ms"]) == (5, 3_600_000)
        peeked = RateLimiter(reader, "agree", 5, HOUR, algorithm=algo).peek("carol")
        assert (peeked.allowed, peeked.remaining) == (d.remaining > 0, d.remaining)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_read_side_of_an_unused_identity(r, algo):
    state = limiter_state(r, limiter_key("api", algo, 10, 1000, b"nobody"))
    assert not state["exists"] and not state["blocked"]
    assert (state["used"], state["remaining"], state["resets_in_ms"]) == (0, 10, 0)
    odd = limiter_state(r, limiter_key("api", algo, 10, 1000, b"\xff:{x}"))
    assert odd["identity"] == "\\xff:{x}" and odd["key"].endswith("{\\xff:%7Bx%7D}")


def test_read_side_reports_foreign_values_and_hit_names_the_key(r):
    key = limiter_key("api", "sliding", 10, 1000, "mallory")
    r.set(key, "not a log")
    state = limiter_state(r, key)
    assert state["exists"] and "holds a string" in state["problem"]
    with pytest.raises(RateLimitError, match="mallory"):
        RateLimiter(r, "api", 10, 1, "sliding").hit("mallory")
    with pytest.raises(RateLimitError, match="mallory"):
        RateLimiter(r, "api", 10, 1, "sliding").peek("mallory")
    gkey = limiter_key("api", "gcra", 10, 1000, "eve")
    r.set(gkey, "soon")
    assert "integer" in limiter_state(r, gkey)["problem"]
    with pytest.raises(RateLimitError, match="eve"):
        RateLimiter(r, "api", 10, 1, "gcra").hit("eve")


def test_read_side_refuses_keys_that_are_not_limiters(r):
    with pytest.raises(ValueError, match="cache:entry:x"):
        limiter_state(r, b"cache:entry:x")


def test_reset_gives_the_full_budget_back(r):
    rl = RateLimiter(r, "api", 1, HOUR, algorithm="sliding")
    rl.hit("u")
    assert not rl.hit("u").allowed
    assert rl.reset("u") is True
    assert rl.hit("u").allowed
    assert rl.reset("someone else") is False


# -- keys ---------------------------------------------------------------------------------
ODD_IDENTITIES = [
    "user:42",
    "a:b:{c}:d",
    "ünïcödé 😀",
    "50% off",
    "%7B",
    "}{",
    "192.0.2.1",
    "::1",
    b"\xff\x00:{raw}%",
]


@pytest.mark.parametrize("identity", ODD_IDENTITIES)
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_parse_limiter_key_roundtrip(identity, algo):
    key = limiter_key("login.v2", algo, 100, 60_000, identity)
    parsed = parse_limiter_key(key)
    assert parsed == LimiterKey("login.v2", algo, 100, 60_000, identity)
    assert parsed.key == key
    raw = key if isinstance(key, bytes) else key.encode()
    as_bytes = identity if isinstance(identity, bytes) else identity.encode()
    assert parse_limiter_key(raw).identity == as_bytes  # what SCAN hands back
    inner = keys.hash_slot_part(key)
    assert (
        b"{" not in inner
        and b"}" not in inner
        and inner == keys._as_bytes(escape_identity(identity))
    )


def test_int_identity_is_its_decimal_text():
    assert parse_limiter_key(limiter_key("api", "fixed", 1, 1, 42)).identity == "42"


@pytest.mark.parametrize(
    "key",
    [
        "ratelimit:api",
        "ratelimit:api:fixed:10:1000:nobrace",
        "ratelimit:api:bogus:10:1000:{a}",
        "ratelimit:api:fixed:010:1000:{a}",
        "ratelimit:api:fixed:10:0:{a}",
        "ratelimit:api:fixed:10:1000:{}",
        "ratelimit:api:fixed:10:1000:{a}b}",
        "ratelimit:api:fixed:10:1000:{a%zz}",
        "ratelimit:api:fixed:10:1000:{a%7b}",
        "ratelimit:a*b:fixed:10:1000:{a}",
        "cache:api:fixed:10:1000:{a}",
        b"ratelimit:\xff:fixed:10:1000:{a}",
    ],
)
def test_parse_limiter_key_rejects_foreign_keys(key):
    assert parse_limiter_key(key) is None


@pytest.mark.parametrize("name", ["", "a:b", "a{b", "a}b", "a*", "a b", "x" * 101, None])
def test_limiter_names_are_restricted(r, name):
    with pytest.raises(ValueError, match="name"):
        RateLimiter(r, name, 10, 1)


def test_bad_configuration_is_refused(r):
    with pytest.raises(ValueError, match="algorithm"):
        RateLimiter(r, "api", 10, 1, algorithm="leaky")
    with pytest.raises(ValueError, match="limit"):
        RateLimiter(r, "api", 0, 1)
    with pytest.raises(ValueError, match="window"):
        RateLimiter(r, "api", 10, 0)
    with pytest.raises(ValueError, match="empty"):
        RateLimiter(r, "api", 10, 1).hit("")


def test_scan_pattern_finds_limiter_keys(r):
    for algo in ALGORITHMS:
        RateLimiter(r, "one", 5, 60, algorithm=algo).hit("u")
    RateLimiter(r, "two", 5, 60).hit(b"\xfe")
    r.set("ratelimiter:lookalike", 1)
    found = set(r.scan_iter(match=scan_match_pattern()))
    assert len(found) == 4
    assert {parse_limiter_key(k).name for k in found} == {"one", "two"}
    only_one = set(r.scan_iter(match=scan_match_pattern("one")))
    assert {parse_limiter_key(k).algorithm for k in only_one} == set(ALGORITHMS)
    assert parse_limiter_key(next(iter(r.scan_iter(match=scan_match_pattern("two"))))).identity == (
        b"\xfe"
    )


@pytest.mark.parametrize("identity", ODD_IDENTITIES)
def test_all_keys_of_one_identity_share_a_slot(identity):
    names = [
        limiter_key(name, algo, limit, 1000, identity)
        for name in ("login", "api.v2")
        for algo in ALGORITHMS
        for limit in (1, 100)
    ]
    assert keys.same_slot(*names)
    assert keys.slot(names[0]) == keys.slot(keys._as_bytes(escape_identity(identity)))


def test_fixed_window_key_always_has_a_ttl(r):
    rl = RateLimiter(r, "ttl", 2, 60, algorithm="fixed")
    key = rl.key_for("u")
    for _ in range(4):
        rl.hit("u")
        assert r.pttl(key) > 0
    r.persist(key)  # e.g. restored without TTL: would block forever
    state = limiter_state(r, key)
    assert "no TTL" in state["problem"] and state["resets_in_ms"] is None and state["blocked"]
    assert not rl.peek("u").allowed  # still readable, the problem is only reported
    denied = rl.hit("u")
    assert not denied.allowed and 0 < denied.retry_after_s <= 60
    assert r.pttl(key) > 0
    r.set(key, 1)  # PERSIST via overwrite, below the limit this time
    assert rl.hit("u").allowed
    assert r.pttl(key) > 0


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_noscript_after_script_flush(r, algo):
    rl = RateLimiter(r, "flush", 3, HOUR, algorithm=algo)
    assert rl.hit("u").remaining == 2
    r.script_flush()
    assert r.script_exists(scripts.load(f"ratelimit_{algo}").sha) == [False]
    assert rl.hit("u").remaining == 1
    assert r.script_exists(scripts.load(f"ratelimit_{algo}").sha) == [True]


def test_gcra_interval_rounds_up_and_keeps_the_burst(r):
    assert gcra_interval_us(3, 1000) == 333_334
    rl = RateLimiter(r, "odd", 3, 1, algorithm="gcra")
    assert [rl.hit("u").allowed for _ in range(4)] == [True, True, True, False]


# -- script contract ----------------------------------------------------------------------
RATELIMIT_SCRIPTS = [n for n in scripts.available() if n.startswith("ratelimit_")]


def test_every_algorithm_has_a_script():
    assert sorted(RATELIMIT_SCRIPTS) == sorted(f"ratelimit_{a}" for a in ALGORITHMS)


@pytest.mark.parametrize("name", RATELIMIT_SCRIPTS)
def test_ratelimit_scripts_declare_their_keys_and_args(name):
    script = scripts.load(name)
    body = "\n".join(x for x in script.script.decode().splitlines() if not x.startswith("--"))
    assert script.keys, f"{name} declares no KEYS"
    assert {int(n) for n in re.findall(r"KEYS\[(\d+)\]", body)} == set(
        range(1, len(script.keys) + 1)
    )
    assert {int(n) for n in re.findall(r"ARGV\[(\d+)\]", body)} == set(
        range(1, len(script.argv) + 1)
    )
    calls = re.findall(r"redis\.call\('([A-Z]+)'", body)
    if "TIME" in calls:
        assert calls[0] == "TIME", f"{name}: TIME must be the first call"
