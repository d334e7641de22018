"""/ratelimits and /locks against the real redis-server: our layer and real foreign libraries."""

import re
import textwrap
import threading
import time

import pytest
import redis_lock
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond, storage, strategies
from observer_support import fresh_get
from redis.lock import Lock as RedisPyLock

from dashboard.keyid import encode_key
from dashboard.patterns.locks import Lock, lock_key
from dashboard.patterns.ratelimit import RateLimiter

HTML_ID = "<img src=x onerror=alert(1)>"


def _entries(data):
    return [e for g in data["limiters"] for e in g["entries"]]


def _entry(web, identity, limiter=None, path="/ratelimits.json"):
    data = fresh_get(web, path).get_json()
    found = [
        e for e in _entries(data) if e["identity"] == identity and limiter in (None, e["limiter"])
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


def _lock(web, resource):
    data = fresh_get(web, "/locks.json").get_json()
    return next((e for e in data["locks"] if e["resource"] == resource), None)


def _csrf(client, path="/locks"):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'"X-CSRF-Token": "([^"]+)"', html).group(1)


def _write_calls(r):
    stats = r.info("commandstats")
    names = ("cmdstat_del", "cmdstat_unlink", "cmdstat_eval", "cmdstat_evalsha", "cmdstat_set")
    return {n: stats.get(n, {}).get("calls", 0) for n in names}


# -- rate limits -------------------------------------------------------------------------
def test_background_hits_move_used_and_blocked_flips_at_the_limit(web, r, make_client):
    limiter = RateLimiter(make_client(), "api", 5, 60, algorithm="fixed")
    go, hit = threading.Semaphore(0), threading.Semaphore(0)
    decisions = []

    def hammer():
        for _ in range(7):
            go.acquire()
            decisions.append(limiter.hit("alice"))
            hit.release()

    worker = threading.Thread(target=hammer, daemon=True)
    worker.start()
    seen = []
    for step in range(1, 8):
        go.release()
        assert hit.acquire(timeout=10)
        entry = _entry(web, "alice", "api")
        peek = limiter.peek("alice")
        assert entry["used"] == min(step, 5) and entry["limit"] == 5
        assert entry["remaining"] == peek.remaining == max(0, 5 - step)
        assert entry["blocked"] is (not peek.allowed) is (step >= 5)
        assert decisions[-1].allowed is (step <= 5)
        seen.append(entry["blocked"])
        fragment = fresh_get(web, "/ratelimits", headers={"HX-Request": "true"}).get_data(
            as_text=True
        )
        row = re.search(r'data-limiter="api".*?data-identity="alice".*?</tr>', fragment, re.S)[0]
        assert f'<span class="used">{min(step, 5)}</span>' in row
        assert ("badge bad" in row) is (step >= 5)
    worker.join(10)
    assert seen == [False] * 4 + [True] * 3


def test_free_running_thread_page_follows_until_blocked(web, make_client):
    limiter = RateLimiter(make_client(), "search", 40, 60, algorithm="sliding")
    stop, seen = threading.Event(), threading.Event()

    def hammer():
        while not stop.is_set() and limiter.hit("bob").allowed:
            seen.wait(30)  # on a busy machine the page could otherwise miss every step
            time.sleep(0.005)

    worker = threading.Thread(target=hammer, daemon=True)
    worker.start()
    observed = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            entry = _entry(web, "bob")
            if entry:
                observed.append((entry["used"], entry["blocked"]))
                seen.set()
                if entry["blocked"]:
                    break
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(10)
    used = [u for u, _ in observed]
    assert used == sorted(used) and len(set(used)) >= 2  # it moved, never backwards
    assert observed[-1] == (40, True)
    peek = limiter.peek("bob")
    assert not peek.allowed and peek.remaining == 0


@pytest.mark.parametrize("algorithm", ["fixed", "sliding", "gcra"])
def test_json_agrees_with_the_layers_own_decision(web, r, algorithm):
    limiter = RateLimiter(r, "agree", 4, 30, algorithm=algorithm)
    for n in range(6):
        decision = limiter.hit("carol")
        entry = _entry(web, "carol")
        peek = limiter.peek("carol")
        assert entry["algorithm"] == algorithm and entry["layout"] == "dashboard"
        assert entry["remaining"] == peek.remaining
        assert entry["blocked"] is (not peek.allowed)
        assert decision.allowed is (n < 4)
        assert entry["window_ms"] == 30_000 and entry["limit"] == 4
        assert 0 < (entry["resets_in_ms"] or 0) <= 30_000


def test_groups_and_top_consumers(web, r):
    small = RateLimiter(r, "login", 3, 60, algorithm="fixed")
    big = RateLimiter(r, "api", 100, 60, algorithm="gcra")
    for who, n in (("a", 3), ("b", 1)):
        for _ in range(n):
            small.hit(who)
    for _ in range(10):
        big.hit("c")
    data = fresh_get(web, "/ratelimits.json").get_json()
    assert data["totals"] == {"limiters": 2, "identities": 3, "blocked": 1}
    assert [g["limiter"] for g in data["limiters"]] == ["login", "api"]  # blocked first
    assert [e["identity"] for e in data["limiters"][0]["entries"]] == ["a", "b"]
    top = [(e["limiter"], e["identity"]) for e in data["top_consumers"]]
    assert top == [("login", "a"), ("login", "b"), ("api", "c")]  # by share of the limit
    only = fresh_get(web, "/ratelimits.json?q=LOG").get_json()
    assert only["totals"]["identities"] == 2 and only["q"] == "LOG"


def test_limits_library_fixed_moving_and_sliding_windows(web, redis_url):
    store = storage.storage_from_string(redis_url)
    kinds = {
        "fixed-window": strategies.FixedWindowRateLimiter(store),
        "moving-window": strategies.MovingWindowRateLimiter(store),
        "sliding-window-counter": strategies.SlidingWindowCounterRateLimiter(store),
    }
    items = {name: RateLimitItemPerMinute(5, namespace=name.upper()) for name in kinds}
    for name, strategy in kinds.items():
        for _ in range(3):
            assert strategy.hit(items[name], "10.0.0.7", "index")
    data = fresh_get(web, "/ratelimits.json").get_json()
    by_algo = {e["algorithm"]: e for e in _entries(data)}
    assert set(by_algo) == set(kinds)
    for name, strategy in kinds.items():
        entry = by_algo[name]
        stats = strategy.get_window_stats(items[name], "10.0.0.7", "index")
        assert entry["layout"] == "limits" and entry["identity"] == "10.0.0.7/index"
        assert (entry["limit"], entry["window_ms"], entry["used"]) == (5, 60_000, 3)
        assert entry["remaining"] == stats.remaining == 2 and not entry["blocked"]
        assert entry["limiter"] == f"{name.upper()} · 5 per 1 minute"
    for name, strategy in kinds.items():
        while strategy.hit(items[name], "10.0.0.7", "index"):
            pass
        assert not strategy.test(items[name], "10.0.0.7", "index")
    data = fresh_get(web, "/ratelimits.json").get_json()
    for entry in _entries(data):
        assert entry["blocked"] and entry["remaining"] == 0 and entry["retry_in_ms"] > 0
        assert entry["used"] >= 5  # limits' fixed window also counts refused hits


def test_limits_moving_window_longer_than_one_read(web, redis_url):
    store = storage.storage_from_string(redis_url)
    moving = strategies.MovingWindowRateLimiter(store)
    item = RateLimitItemPerMinute(600)
    for _ in range(550):
        moving.hit(item, "bulk")
    entry = _entry(web, "bulk")
    assert entry["used"] == 550 and entry["remaining"] == 50 and not entry["blocked"]
    for _ in range(50):
        moving.hit(item, "bulk")
    entry = _entry(web, "bulk")
    assert entry["used"] == 600 and entry["blocked"]


def test_limits_sliding_window_decays_like_the_library(web, redis_url):
    store = storage.storage_from_string(redis_url)
    sliding = strategies.SlidingWindowCounterRateLimiter(store)
    item = RateLimitItemPerSecond(4, 2)  # a window starts at its first hit and lasts 2 s
    for attempt in range(5):  # a loaded machine may read the page after the window ended
        identity = f"decay-{attempt}"
        started = time.monotonic()
        while sliding.hit(item, identity):
            pass
        first = _entry(web, identity)
        if time.monotonic() - started < 1.5:
            break
    else:
        pytest.fail("five tries could not read the page within 1.5 s of the hits")
    assert first["blocked"] and first["used"] == 4
    time.sleep(started + 2.2 - time.monotonic())  # the window is over: now the previous one
    before = _entry(web, identity)
    stats = sliding.get_window_stats(item, identity)  # (its read shifts the windows)
    after = _entry(web, identity)
    assert before["remaining"] <= stats.remaining <= after["remaining"]  # it only decays
    # >= 2.2 s after the first hit the previous window weighs at most 0.9: floor(4 * 0.9) = 3
    assert before["used"] <= 3 and not before["blocked"] and before["retry_in_ms"] == 0
    assert before["remaining"] == 4 - before["used"]


def test_user_patterns_from_a_toml_file(make_app, r, tmp_path):
    spec = tmp_path / "detectors.toml"
    spec.write_text(
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
            regex = '^ev:(?P<identity>.+)$'
            algorithm = "log"
            limit = 3
            window = 60

            [[pattern]]
            name = "job mutex"
            kind = "lock"
            match = "mutex/*"
            """
        )
    )
    r.set("quota:alice:100:3600", 42, ex=1800)
    now = r.time()[0]
    r.zadd("ev:bob", {"a": now - 120, "b": now - 30, "c": now - 10, "d": now - 1})
    r.set("mutex/report", "holder-1", px=20_000)
    web = make_app(detectors_file=str(spec)).test_client()
    quota = _entry(web, "alice")
    assert (quota["layout"], quota["limiter"], quota["algorithm"]) == ("quota", "quota", "counter")
    assert (quota["used"], quota["limit"], quota["remaining"]) == (42, 100, 58)
    assert quota["window_ms"] == 3_600_000 and 0 < quota["resets_in_ms"] <= 1_800_000
    events = _entry(web, "bob")
    assert (events["used"], events["blocked"], events["algorithm"]) == (3, True, "log")
    assert 0 < events["retry_in_ms"] <= 30_000  # the oldest live hit leaves in ~30 s
    lock = _lock(web, "report")
    assert lock["layout"] == "job mutex" and lock["holder"] == "holder-1"


def test_a_broken_detectors_file_is_shown_not_fatal(make_app, r, tmp_path):
    spec = tmp_path / "detectors.toml"
    spec.write_text("[[pattern]]\nname = 1\n")
    RateLimiter(r, "api", 5, 60, algorithm="fixed").hit("x")
    web = make_app(detectors_file=str(spec)).test_client()
    data = fresh_get(web, "/ratelimits.json").get_json()
    assert data["totals"]["identities"] == 1
    assert any("detectors.toml" in e and "name" in e for e in data["errors"])
    assert "detectors.toml" in fresh_get(web, "/ratelimits").get_data(as_text=True)


def test_hostile_identity_is_escaped(web, r):
    RateLimiter(r, "api", 5, 60, algorithm="fixed").hit(HTML_ID)
    RateLimiter(r, "api", 5, 60, algorithm="fixed").hit(b"\xff\xfe")
    html = fresh_get(web, "/ratelimits").get_data(as_text=True)
    assert "<img" not in html and "&lt;img src=x" in html
    assert _entry(web, "\\xff\\xfe")["used"] == 1


# -- polling ---------------------------------------------------------------------------------
def test_polling_runs_only_while_there_is_something_to_show(web, r):
    fragment = fresh_get(web, "/ratelimits", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith("{#") or 'id="ratelimits-live"' in fragment
    assert "every 1s" not in fragment and "data-live" not in fragment
    assert 'id="ratelimits-recheck"' in fragment and "<html" not in fragment
    RateLimiter(r, "api", 5, 60, algorithm="fixed").hit("x")
    fragment = fresh_get(web, "/ratelimits", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'hx-trigger="every 1s, live-resume" data-live' in fragment
    assert fresh_get(web, "/ratelimits.json").get_json()["live"] is True
    locks = fresh_get(web, "/locks", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "every 1s" not in locks and 'id="locks-recheck"' in locks
    Lock(r, "job", ttl=30).acquire()
    locks = fresh_get(web, "/locks", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'hx-trigger="every 1s, live-resume" data-live' in locks


def test_search_is_bounded_and_says_so(make_app, r):
    limiter = RateLimiter(r, "many", 5, 60, algorithm="fixed")
    for i in range(40):
        limiter.hit(f"user{i}")
    for i in range(400):
        r.set(f"noise:{i}", 1)
    capped = make_app(live_max_keys=10).test_client()
    data = fresh_get(capped, "/ratelimits.json").get_json()
    assert data["totals"]["identities"] == 10 and data["search"]["capped"]
    assert "live_max_keys" in data["search"]["cap_reason"]
    assert "Partial:" in fresh_get(capped, "/ratelimits").get_data(as_text=True)
    slow = make_app(scan_count=10, live_scan_keys=20).test_client()
    first = fresh_get(slow, "/ratelimits.json").get_json()["search"]
    assert not first["complete"] and first["scan_calls"] == 2
    assert "live_scan_keys" in first["cap_reason"]
    for _ in range(200):  # each refresh goes on where the last stopped
        data = fresh_get(slow, "/ratelimits.json").get_json()
        if data["search"]["complete"]:
            break
    assert data["search"]["complete"] and data["totals"]["identities"] == 40
    assert data["search"]["cap_reason"] is None


# -- locks ------------------------------------------------------------------------------------
def test_lock_appears_counts_down_extends_and_disappears(web, r):
    lock = Lock(r, "invoice:7", ttl=20)
    fence = lock.acquire()
    first = _lock(web, "invoice:7")
    assert first["layout"] == "dashboard" and first["fence"] == fence == 1
    assert first["holder"] == lock.token[:8] + "…" and first["flags"] == []
    time.sleep(0.05)
    second = _lock(web, "invoice:7")
    assert 0 < second["ttl_remaining_ms"] < first["ttl_remaining_ms"] <= 20_000
    assert second["age_ms"] >= first["age_ms"]
    lock.extend(30)
    assert _lock(web, "invoice:7")["ttl_remaining_ms"] > 20_000
    lock.release()
    data = fresh_get(web, "/locks.json").get_json()
    assert _lock(web, "invoice:7") is None and data["totals"]["held"] == 0
    assert [e["resource"] for e in data["recent"]] == ["invoice:7"]
    assert data["recent"][0]["releases"] == 1 and data["recent"][0]["extends"] == 1


def test_locks_without_ttl_are_flagged(web, r):
    r.set(lock_key("orphan"), "token-without-ttl")  # SET without PX: held forever
    RedisPyLock(r, "locks:nightly", timeout=None).acquire()
    RedisPyLock(r, "locks:hourly", timeout=60).acquire()
    data = fresh_get(web, "/locks.json").get_json()
    flagged = {e["resource"]: e for e in data["locks"] if e["held_forever"]}
    assert set(flagged) == {"{orphan}", "nightly"} and data["totals"]["held_forever"] == 2
    assert flagged["{orphan}"]["layout"] == "string lock"  # our name, not our layer's writes
    assert all(
        e["flags"] == ["held forever"] and e["ttl_remaining_ms"] == -1 for e in flagged.values()
    )
    assert [e["resource"] for e in data["locks"]][-1] == "hourly"  # flagged ones first
    html = fresh_get(web, "/locks").get_data(as_text=True)
    assert html.count("held forever</span>") == 2


def test_contention_counters_and_unusually_long_hold(web, r):
    for _ in range(3):  # three quick holds: "usual" is a few ms
        lock = Lock(r, "report", ttl=30)
        lock.acquire()
        lock.release()
    holder = Lock(r, "report", ttl=30)
    holder.acquire()
    assert Lock(r, "report", ttl=30).try_acquire() is None
    waiter = Lock(r, "report", ttl=30, timeout=0.05)
    assert waiter.acquire() is None
    time.sleep(0.3)  # now far longer than the usual hold (a few ms)
    entry = _lock(web, "report")
    assert entry["attempts"] >= 6 and entry["failures"] >= 2 and entry["waits"] == 1
    assert entry["unusually_long"] and entry["flags"] == ["unusually long"]
    assert entry["fence"] == 4 and entry["releases"] == 3
    assert fresh_get(web, "/locks.json").get_json()["totals"]["contended"] == 1


def test_foreign_lock_libraries(web, r):
    report = RedisPyLock(r, "lock:report", timeout=20)
    assert report.acquire()
    mutex = r.lock("jobs:lock", timeout=5)
    assert mutex.acquire()
    nightly = redis_lock.Lock(r, "nightly", expire=60)
    assert nightly.acquire()
    data = fresh_get(web, "/locks.json").get_json()
    by_resource = {e["resource"]: e for e in data["locks"]}
    assert by_resource["report"]["layout"] == "redis-py"
    assert by_resource["report"]["holder"] == report.local.token.decode()[:8] + "…"
    assert 0 < by_resource["report"]["ttl_remaining_ms"] <= 20_000
    assert by_resource["jobs"]["layout"] == "redis-py" and by_resource["jobs"]["key"] == "jobs:lock"
    assert by_resource["nightly"]["layout"] == "python-redis-lock"
    assert by_resource["nightly"]["holder"] == nightly.id[:8] + "…"
    assert 50_000 < by_resource["nightly"]["ttl_remaining_ms"] <= 60_000
    assert by_resource["nightly"]["attempts"] is None  # not kept by that layout: unknown, not 0
    assert by_resource["report"]["age_ms"] is None and by_resource["report"]["seen_ms"] >= 0
    nightly.release()  # leaves a lock-signal list behind for a moment: not a lock
    report.release()
    remaining = [e["resource"] for e in fresh_get(web, "/locks.json").get_json()["locks"]]
    assert remaining == ["jobs"]


# -- actions ------------------------------------------------------------------------------------
def test_read_only_refuses_actions_and_sends_no_write(web, r):
    lock = Lock(r, "invoice", ttl=30)
    lock.acquire()
    limiter = RateLimiter(r, "api", 1, 60, algorithm="fixed")
    limiter.hit("x")
    token = _csrf(web)
    before = _write_calls(r)
    for path, key in (
        ("/locks/release", lock_key("invoice").encode()),
        ("/ratelimits/reset", limiter.key_for("x").encode()),
    ):
        for form in ({}, {"confirm": "0" * 16}):
            answer = web.post(path, data={"csrf_token": token, "k": encode_key(key), **form})
            assert answer.status_code == 403
            text = answer.get_data(as_text=True)
            assert "read-only mode" in text and "--allow-writes" in text
        as_json = web.post(
            path,
            data={"csrf_token": token, "k": encode_key(key)},
            headers={"Accept": "application/json"},
        )
        assert as_json.status_code == 403 and "read-only" in as_json.get_json()["message"]
    assert _write_calls(r) == before
    assert lock.owned() and not limiter.peek("x").allowed
    html = fresh_get(web, "/locks").get_data(as_text=True)
    assert "Release…" not in html and "needs <code>--allow-writes</code>" in html


def test_actions_need_the_csrf_token(make_app, r):
    web = make_app(allow_writes=True).test_client()
    Lock(r, "a", ttl=30).acquire()
    fresh_get(web, "/locks")
    answer = web.post("/locks/release", data={"k": encode_key(lock_key("a").encode())})
    assert answer.status_code == 400 and r.exists(lock_key("a"))


def test_force_release_after_confirmation(make_app, r):
    web = make_app(allow_writes=True).test_client()
    lock = Lock(r, "invoice", ttl=30)
    lock.acquire()
    token = _csrf(web)
    k = encode_key(lock_key("invoice").encode())
    assert "Release…" in fresh_get(web, "/locks").get_data(as_text=True)
    step1 = web.post("/locks/release", data={"csrf_token": token, "k": k})
    html = step1.get_data(as_text=True)
    assert step1.status_code == 200 and lock.token[:8] in html
    assert r.exists(lock_key("invoice"))  # nothing happens before the confirmation
    code = re.search(r'name="confirm" value="([0-9a-f]+)"', html).group(1)
    step2 = web.post("/locks/release", data={"csrf_token": token, "k": k, "confirm": code})
    assert step2.status_code == 200 and "released lock lock:{invoice}" in step2.get_data(
        as_text=True
    )
    assert not r.exists(lock_key("invoice"))
    stats = fresh_get(web, "/locks.json").get_json()["recent"][0]
    assert stats["resource"] == "invoice" and stats["releases"] == 1


def test_release_refuses_when_the_lock_changed_hands(make_app, r):
    web = make_app(allow_writes=True).test_client()
    token = _csrf(web)
    first = RedisPyLock(r, "lock:report", timeout=30)
    first.acquire()
    k = encode_key(b"lock:report")
    prepared = web.post(
        "/locks/release", data={"csrf_token": token, "k": k}, headers={"Accept": "application/json"}
    ).get_json()
    assert prepared["layout"] == "redis-py" and len(prepared["confirm"]) == 16
    first.release()
    second = RedisPyLock(r, "lock:report", timeout=30)
    second.acquire()
    late = web.post(
        "/locks/release", data={"csrf_token": token, "k": k, "confirm": prepared["confirm"]}
    )
    assert late.status_code == 409 and "changed hands" in late.get_data(as_text=True)
    assert second.owned()  # the new holder keeps its lock
    not_a_lock = web.post("/locks/release", data={"csrf_token": token, "k": encode_key(b"user:1")})
    assert not_a_lock.status_code == 404 and "not a lock key" in not_a_lock.get_data(as_text=True)


def test_reset_limiter_after_confirmation(make_app, r, redis_url):
    web = make_app(allow_writes=True).test_client()
    token = _csrf(web, "/ratelimits")
    limiter = RateLimiter(r, "login", 2, 60, algorithm="sliding")
    limiter.hit("mallory")
    limiter.hit("mallory")
    assert not limiter.peek("mallory").allowed
    k = encode_key(limiter.key_for("mallory").encode())
    step1 = web.post("/ratelimits/reset", data={"csrf_token": token, "k": k})
    code = re.search(r'name="confirm" value="([0-9a-f]+)"', step1.get_data(as_text=True)).group(1)
    assert not limiter.peek("mallory").allowed
    step2 = web.post("/ratelimits/reset", data={"csrf_token": token, "k": k, "confirm": code})
    assert step2.status_code == 200 and limiter.peek("mallory").remaining == 2
    store = storage.storage_from_string(redis_url)
    sliding = strategies.SlidingWindowCounterRateLimiter(store)
    item = RateLimitItemPerSecond(2)
    while sliding.hit(item, "eve"):
        pass
    key = next(r.scan_iter(match="LIMITS:{*eve*}"))
    prepared = web.post(
        "/ratelimits/reset",
        data={"csrf_token": token, "k": encode_key(key)},
        headers={"Accept": "application/json"},
    ).get_json()
    assert prepared["keys"] == [key.decode(), key.decode() + "/-1"]
    done = web.post(
        "/ratelimits/reset",
        data={"csrf_token": token, "k": encode_key(key), "confirm": prepared["confirm"]},
        headers={"Accept": "application/json"},
    ).get_json()
    assert done["reset"] and sliding.test(item, "eve")
