"""Distributed locks on a real redis-server: ownership, fencing, contention, read side."""

import os
import threading
import time

import pytest

from dashboard import gate
from dashboard.patterns import keys
from dashboard.patterns.lockcore import new_token
from dashboard.patterns.locks import (
    INFO_TTL_MS,
    Lock,
    LockError,
    LockManager,
    LockNotOwnedError,
    LockTimeout,
    fence_key,
    info_key,
    lock_key,
    lock_state,
    parse_lock_key,
    scan_match_patterns,
)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []
        self.on_sleep = None

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


def _wait_gone(client, key):
    for _ in range(500):  # a short server TTL; bounded polling, no timing assertion
        if not client.exists(key):
            return
        time.sleep(0.005)
    raise AssertionError(f"{key} did not expire")


def _info(client, resource):
    return {k.decode(): v.decode() for k, v in client.hgetall(info_key(resource)).items()}


# -- acquire / release / extend -----------------------------------------------------------
def test_acquire_release_and_key_layout(r):
    lock = Lock(r, "orders:42", ttl=10)
    fence = lock.acquire()
    assert fence == 1 and lock.fence == 1
    assert r.get("lock:{orders:42}") == lock.token.encode()
    assert 9000 < r.pttl("lock:{orders:42}") <= 10000
    assert r.get("lock:{orders:42}:fence") == b"1"
    assert r.pttl("lock:{orders:42}:fence") == -1  # the fence never expires, on purpose
    assert INFO_TTL_MS + 9000 < r.pttl("lock:{orders:42}:info") <= INFO_TTL_MS + 10000
    info = _info(r, "orders:42")
    assert info["holder"] == lock.token and info["fence"] == "1" and info["ttl_ms"] == "10000"
    assert info["attempts"] == "1" and "failures" not in info
    assert lock.owned() and lock.locked()
    token = lock.token
    lock.release()
    assert not r.exists("lock:{orders:42}")
    assert not lock.owned() and not lock.locked()
    info = _info(r, "orders:42")
    assert info["releases"] == "1" and int(info["hold_ms_total"]) >= 0
    assert info["holder"] == info["acquired_at_ms"] == ""  # cleared: nobody holds it
    assert info["released"] == token
    assert r.pttl("lock:{orders:42}:info") > INFO_TTL_MS  # still a day past the release


def test_tokens_are_fresh_128_bit_hex_and_not_shared_with_a_forked_child():
    tokens = [new_token() for _ in range(200)]  # more than one read of the OS source
    assert len(set(tokens)) == 200
    assert all(len(t) == 32 and int(t, 16) >= 0 and t == t.lower() for t in tokens)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next token goes to the parent
        os.close(read_end)
        os.write(write_end, new_token().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != new_token()


def test_try_acquire_fails_while_held_and_counts_the_failure(r):
    holder, other = Lock(r, "res", ttl=10), Lock(r, "res", ttl=10)
    assert holder.try_acquire() == 1
    assert other.try_acquire() is None and other.token is None
    assert other.acquire(blocking=False) is None
    info = _info(r, "res")
    assert (info["attempts"], info["failures"]) == ("3", "2")
    assert r.get(fence_key("res")) == b"1"  # failed attempts do not burn fences
    with pytest.raises(LockError, match="already held by this Lock"):
        holder.acquire()


def test_fence_strictly_increases_across_acquisitions(r):
    lock, fences = Lock(r, "f", ttl=10), []
    for i in range(5):
        other = Lock(r, "f", ttl=10)
        fences.append((lock if i % 2 else other).acquire())
        (lock if i % 2 else other).release()
    assert fences == [1, 2, 3, 4, 5]


def test_extend_add_and_replace(r):
    lock = Lock(r, "ext", ttl=1)
    lock.acquire()
    new_ttl = lock.extend(5)
    assert 1000 < new_ttl <= 6000 and 1000 < r.pttl(lock.key) <= 6000  # grew past the 1 s lease
    assert lock.extend(60, replace_ttl=True) == 60000
    assert lock.extend(3, replace_ttl=True) == 3000
    assert r.pttl(lock.key) <= 3000  # replaced, not added
    assert _info(r, "ext")["extends"] == "3"


def test_release_after_expiry_raises_naming_the_lock(r):
    lock = Lock(r, "short", ttl=0.02)
    lock.acquire()
    _wait_gone(r, lock.key)
    with pytest.raises(LockNotOwnedError, match=r"lock:\{short\}.*expired") as err:
        lock.release()
    assert err.value.reason == "expired" and err.value.resource == "short"
    assert lock.token is None  # a new acquire is possible


def test_extend_after_expiry_raises(r):
    lock = Lock(r, "short", ttl=0.02)
    lock.acquire()
    _wait_gone(r, lock.key)
    with pytest.raises(LockNotOwnedError, match=r"extend lock lock:\{short\}"):
        lock.extend(10)


def test_release_of_a_lock_taken_by_another_raises_and_keeps_theirs(r):
    mine, theirs = Lock(r, "shared", ttl=0.02), Lock(r, "shared", ttl=10)
    mine.acquire()
    _wait_gone(r, mine.key)
    assert theirs.acquire() == 2
    assert _info(r, "shared")["expired"] == "1"  # mine ran out without a release
    with pytest.raises(LockNotOwnedError, match=r"lock:\{shared\}.*taken") as err:
        mine.release()
    assert err.value.reason == "taken"
    assert r.get(theirs.key) == theirs.token.encode() and theirs.owned()
    assert _info(r, "shared")["holder"] == theirs.token
    with pytest.raises(LockNotOwnedError, match="taken"):
        mine.token = "forged"
        mine.extend(10)
    assert r.pttl(theirs.key) <= 10000


def test_release_without_acquire_is_a_lock_error(r):
    with pytest.raises(LockError, match=r"release lock lock:\{x\}: not acquired"):
        Lock(r, "x").release()


# -- blocking acquire (injected clock and sleep: no real waiting) -------------------------
def test_blocking_acquire_times_out_with_capped_exponential_backoff(r):
    Lock(r, "busy", ttl=60).acquire()
    t = FakeTime()
    lock = Lock(
        r, "busy", backoff_base=0.01, backoff_max=0.2, clock=t.clock, sleep=t.sleep, rng=lambda: 1
    )
    assert lock.acquire(timeout=1.0) is None
    assert lock.token is None
    assert sum(t.sleeps) == pytest.approx(1.0)
    assert t.sleeps[:5] == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16])
    assert max(t.sleeps) == pytest.approx(0.2)
    info = _info(r, "busy")
    assert info["wait_ms_total"] == "1000" and info["waits"] == "1"
    assert int(info["failures"]) == len(t.sleeps) + 1


def test_backoff_jitter_stays_within_half_to_full_step(r):
    Lock(r, "busy", ttl=60).acquire()
    t = FakeTime()
    lock = Lock(r, "busy", backoff_base=0.1, backoff_max=0.1, clock=t.clock, sleep=t.sleep)
    lock.acquire(timeout=0.95)
    assert all(0.05 <= s <= 0.1 for s in t.sleeps[:-1])


def test_blocking_acquire_gets_the_lock_once_released_and_records_the_wait(r, make_client):
    holder = Lock(make_client(), "q", ttl=60)
    holder.acquire()
    t = FakeTime()
    t.on_sleep = lambda n: holder.release() if n == 3 else None
    waiter = Lock(r, "q", backoff_base=0.1, clock=t.clock, sleep=t.sleep, rng=lambda: 0)
    assert waiter.acquire(timeout=None) == 2
    assert len(t.sleeps) == 3
    assert _info(r, "q")["wait_ms_total"] == str(round(sum(t.sleeps) * 1000))


def test_backoff_never_sleeps_much_past_the_holders_lease(r):
    Lock(r, "lease", ttl=0.05).acquire()
    t = FakeTime()
    lock = Lock(r, "lease", backoff_base=5, backoff_max=5, clock=t.clock, sleep=t.sleep)
    lock.acquire(timeout=10)  # may or may not get it; we only look at the first sleep
    assert 0 < t.sleeps[0] <= 0.051 + 1e-9  # lease left + 1 ms, not the 2.5..5 s step


def test_context_manager_and_timeout(r):
    with Lock(r, "ctx", ttl=10) as lock:
        assert lock.fence == 1 and r.get("lock:{ctx}") == lock.token.encode()
        t = FakeTime()
        with (
            pytest.raises(LockTimeout, match=r"lock:\{ctx\}"),
            Lock(r, "ctx", timeout=0.5, clock=t.clock, sleep=t.sleep),
        ):
            pass
    assert not r.exists("lock:{ctx}")


def test_context_manager_exit_reports_a_lost_lock(r):
    with pytest.raises(LockNotOwnedError, match=r"lock:\{ctx\}"), Lock(r, "ctx", ttl=0.02):
        _wait_gone(r, "lock:{ctx}")


def test_lock_manager_passes_defaults(r):
    t = FakeTime()
    mgr = LockManager(r, ttl=5, clock=t.clock, sleep=t.sleep)
    lock = mgr.lock("m")
    assert lock.ttl_ms == 5000 and lock.clock == t.clock
    assert mgr.lock("m", ttl=1).ttl_ms == 1000
    lock.acquire()
    assert mgr.state("m")["fence"] == 1


# -- concurrency --------------------------------------------------------------------------
def test_sixteen_threads_with_own_clients_never_overlap(r, make_client):
    threads_n, rounds = 16, 25
    clients = [make_client() for _ in range(threads_n)]
    guard = threading.Lock()
    holders = {"now": 0, "max": 0}
    fences, counter, errors = [], {"n": 0}, []
    start = threading.Barrier(threads_n)

    def worker(client):
        try:
            start.wait()
            for _ in range(rounds):
                lock = Lock(client, "counter", ttl=30, backoff_base=0.001, backoff_max=0.02)
                with lock:
                    with guard:
                        holders["now"] += 1
                        holders["max"] = max(holders["max"], holders["now"])
                    fences.append(lock.fence)
                    value = int(client.get("shared") or 0)  # read-modify-write, unprotected
                    counter["n"] += 1
                    client.set("shared", value + 1)
                    with guard:
                        holders["now"] -= 1
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    total = threads_n * rounds
    assert int(r.get("shared")) == total and counter["n"] == total
    assert holders["max"] == 1
    assert fences == list(range(1, total + 1))  # strictly increasing in acquisition order
    info = _info(r, "counter")
    assert info["releases"] == str(total)
    assert int(info["attempts"]) == total + int(info.get("failures", 0))


# -- read side ----------------------------------------------------------------------------
def test_lock_state_of_a_held_lock(r):
    lock = Lock(r, "view", ttl=30)
    lock.acquire()
    state = lock_state(r, "view")
    assert state["held"] and state["resource"] == "view" and state["key"] == "lock:{view}"
    assert state["holder"] == lock.token[:8] + "…"
    assert 0 < state["ttl_remaining_ms"] <= 30000 and not state["held_forever"]
    assert state["fence"] == 1 and state["last_fence"] == 1
    assert state["acquired_at_ms"] == int(_info(r, "view")["acquired_at_ms"])
    assert state["age_ms"] >= 0 and state["attempts"] == 1
    time.sleep(0.01)
    later = lock_state(r, "view")
    assert later["ttl_remaining_ms"] <= state["ttl_remaining_ms"]
    assert later["age_ms"] >= state["age_ms"]


def test_lock_state_after_release_and_for_unknown(r):
    lock = Lock(r, "gone", ttl=30)
    lock.acquire()
    time.sleep(0.02)
    lock.release()
    state = lock_state(r, "gone")
    assert not state["held"] and state["holder"] is None and state["ttl_remaining_ms"] is None
    assert state["fence"] is None and state["last_fence"] == 1
    assert state["releases"] == 1 and state["avg_hold_ms"] >= 20
    empty = lock_state(r, "never")
    assert not empty["held"] and empty["attempts"] == 0 and empty["last_fence"] is None


def test_lock_state_flags_a_lock_without_ttl(r):
    r.set("lock:{manual}", "handmade-token-without-ttl")
    state = lock_state(r, "manual")
    assert state["held"] and state["held_forever"] and state["ttl_remaining_ms"] == -1
    assert state["holder"] == "handmade…"
    assert state["fence"] is None and state["age_ms"] is None  # not set by our acquire


def test_lock_state_flags_unusually_long_holds(r):
    r.hset(info_key("slow"), mapping={"releases": 5, "hold_ms_total": 25})  # usual: 5 ms
    lock = Lock(r, "slow", ttl=30)
    lock.acquire()
    time.sleep(0.05)
    state = lock_state(r, "slow")
    assert state["avg_hold_ms"] == 5 and state["age_ms"] >= 50 and state["unusually_long"]
    r.hset(info_key("fresh"), mapping={"releases": 1, "hold_ms_total": 1})
    Lock(r, "fresh", ttl=30).acquire()
    time.sleep(0.01)
    assert not lock_state(r, "fresh")["unusually_long"]  # one release is not "usual" yet


def test_lock_state_reports_a_foreign_type_and_non_utf8(r):
    r.hset("lock:{odd}", "a", 1)
    state = lock_state(r, "odd")
    assert not state["held"] and "holds a hash" in state["problem"]
    lock = Lock(r, b"\xff\xfe", ttl=10)
    assert lock.acquire() == 1
    state = lock_state(r, b"\xff\xfe")
    assert state["held"] and state["resource"] == "\\xff\\xfe"
    assert state["key"] == "lock:{\\xff\\xfe}"
    r.set("lock:{bin}", b"\x00\xff\xfe-binary-token")
    assert lock_state(r, "bin")["holder"] == "\\x00\\xff…"  # escaped, then shortened


def test_read_side_passes_the_read_only_gate(r, make_client):
    Lock(r, "ro", ttl=10).acquire()
    ro = gate.install(make_client(), allow_writes=False)
    assert lock_state(ro, "ro")["held"]
    with pytest.raises(gate.CommandRefused):  # the gate would catch a write
        Lock(ro, "ro2").try_acquire()


def test_parse_lock_key_and_scan_pattern_find_only_lock_keys(r):
    resources = ["a", "b:c", "dé"]
    for res in resources:
        Lock(r, res, ttl=10).acquire()
    r.set("lock:{a}b}", "x")  # matches the glob but is no lock key of ours
    r.set("cache:lock:z", "x")
    found = set()
    for pattern in scan_match_patterns():
        for k in r.scan_iter(match=pattern, count=100):
            if (res := parse_lock_key(k)) is not None:
                found.add(res)
    assert found == {res.encode() for res in resources}
    assert parse_lock_key("lock:{a}") == "a" and parse_lock_key(b"lock:{a}") == b"a"
    for other in ["lock:{a}:fence", "lock:{a}:info", "lock:{}", "lock:{a}b}", "lock:a", "x"]:
        assert parse_lock_key(other) is None, other


# -- scripts, cluster, validation ---------------------------------------------------------
def test_scripts_survive_script_flush(r):
    lock = Lock(r, "nos", ttl=10)
    lock.acquire()
    r.script_flush()
    lock.extend(5)
    r.script_flush()
    lock.release()
    r.script_flush()
    t = FakeTime()
    Lock(r, "nos", ttl=10).acquire()
    r.script_flush()
    assert Lock(r, "nos", clock=t.clock, sleep=t.sleep).acquire(timeout=0.1) is None  # + wait
    assert _info(r, "nos")["waits"] == "1"


@pytest.mark.parametrize("resource", ["x", "orders:42", "dé", b"\xff\x00", "a:b:c" * 20])
def test_all_keys_of_a_resource_share_one_cluster_slot(resource):
    names = [lock_key(resource), fence_key(resource), info_key(resource)]
    assert keys.same_slot(*names)
    tag = resource.encode() if isinstance(resource, str) else resource
    assert keys.slot(names[0]) == keys.slot(tag)


@pytest.mark.parametrize("resource", ["a{b", "a}b", "{x}", b"x{"])
def test_resource_with_braces_is_refused(r, resource):
    with pytest.raises(ValueError, match="contains a brace"):
        Lock(r, resource)
    with pytest.raises(ValueError, match="brace"):
        lock_state(r, resource)


def test_invalid_arguments_are_refused(r):
    with pytest.raises(ValueError, match="empty"):
        Lock(r, "")
    with pytest.raises(ValueError, match=r"lock:\{x\}: ttl"):
        Lock(r, "x", ttl=0)
    with pytest.raises(TypeError):
        Lock(r, 1.5)


def test_foreign_fence_key_fails_before_any_write(r):
    r.set("lock:{bad}:fence", "not-a-number")
    with pytest.raises(LockError, match=r"lock:\{bad\}"):
        Lock(r, "bad").acquire()
    assert not r.exists("lock:{bad}")
    r.set("lock:{bad}:fence", "1")
    r.set("lock:{bad}:info", "x")
    with pytest.raises(LockError, match=r"lock:\{bad\}:info holds a string"):
        Lock(r, "bad").acquire()
    assert not r.exists("lock:{bad}")


def test_a_garbled_counter_restarts_instead_of_failing_a_release_half_way(r):
    """The counters are written back in one HSET after every check: a counter that does
    not hold a number counts from 0, and the release it belongs to still completes."""
    lock = Lock(r, "garbled", ttl=10)
    lock.acquire()
    r.hset(info_key("garbled"), mapping={"releases": "many", "hold_ms_total": "x", "attempts": ""})
    lock.release()
    assert not r.exists("lock:{garbled}")
    info = _info(r, "garbled")
    assert info["releases"] == "1" and int(info["hold_ms_total"]) >= 0
    assert lock.acquire() == 2 and _info(r, "garbled")["attempts"] == "1"


def test_a_garbled_acquired_at_still_releases_and_answers_a_resend(r):
    """A start time that is not a number cannot give a hold time: the release still
    deletes the lock, clears the holder and remembers the token (so a resend after a
    lost reply answers "released"), and counts no hold."""
    lock = Lock(r, "no-start", ttl=10)
    lock.acquire()
    token = lock.token
    r.hset(info_key("no-start"), "acquired_at_ms", "soon")
    lock.release()
    assert not r.exists("lock:{no-start}")
    info = _info(r, "no-start")
    assert info["holder"] == info["acquired_at_ms"] == ""
    assert info["released"] == token
    assert "releases" not in info and "hold_ms_total" not in info
    assert 0 < r.pttl(info_key("no-start")) <= INFO_TTL_MS + 10000
    resend = Lock(r, "no-start", ttl=10)
    resend.token = token  # the same holder sending the release again
    resend.release()  # answered 1: no LockNotOwnedError
