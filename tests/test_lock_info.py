"""The lock's info hash as lock_acquire.lua writes it: when it was taken (server time,
whole ms) and how often a holder let it expire. Contract: dashboard/patterns/locks.py."""

import pytest

from dashboard.patterns.locks import Lock, LockError, info_key


def _info(client, resource):
    return {k.decode(): v.decode() for k, v in client.hgetall(info_key(resource)).items()}


def _server_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def test_acquired_at_is_the_server_time_in_whole_ms(r):
    lock = Lock(r, "clock", ttl=10)
    for _ in range(25):  # many tries: a wrong rounding shows unless every try ends in 1 ms
        before = _server_ms(r)
        lock.acquire()
        after = _server_ms(r)
        assert before <= int(_info(r, "clock")["acquired_at_ms"]) <= after
        lock.release()


def test_a_released_lock_taken_again_did_not_expire(r):
    lock = Lock(r, "tidy", ttl=10)
    for _ in range(3):
        lock.acquire()
        lock.release()
    info = _info(r, "tidy")
    assert info["attempts"] == "3" and info["releases"] == "3"
    assert "expired" not in info  # every holder released: nothing ran out


def test_release_and_extend_of_a_lock_key_of_another_type_pass_the_servers_reason(r):
    lock = Lock(r, "typed", ttl=10)
    lock.acquire()
    r.delete(lock.key)
    r.hset(lock.key, "f", "v")  # someone else's hash under the lock's name
    for action in (lambda: lock.extend(5), lock.release):
        with pytest.raises(LockError, match=r"lock:\{typed\}.*WRONGTYPE"):
            action()
    assert r.hgetall(lock.key) == {b"f": b"v"}  # left as it was


def test_release_after_the_info_hash_was_lost_invents_no_stats(r):
    lock = Lock(r, "lost", ttl=10)
    lock.acquire()
    r.delete(info_key("lost"))  # e.g. evicted: it has a TTL, the lock has its own
    lock.release()
    assert not r.exists(lock.key)
    assert not r.exists(info_key("lost"))


def test_hold_time_never_goes_negative_when_the_clock_steps_back(r):
    lock = Lock(r, "skew", ttl=10)
    lock.acquire()
    r.hset(info_key("skew"), "acquired_at_ms", _server_ms(r) + 3_600_000)  # "in the future"
    lock.release()
    info = _info(r, "skew")
    assert info["hold_ms_total"] == "0" and info["releases"] == "1"


def test_hold_time_is_measured_in_whole_ms_of_server_time(r):
    lock = Lock(r, "held", ttl=10)
    total = 0
    for _ in range(25):  # many tries: a wrong rounding shows unless every try ends in 1 ms
        lock.acquire()
        at = int(_info(r, "held")["acquired_at_ms"])
        before = _server_ms(r)
        lock.release()
        after = _server_ms(r)
        held = int(_info(r, "held")["hold_ms_total"]) - total
        assert before - at <= held <= after - at
        total += held
