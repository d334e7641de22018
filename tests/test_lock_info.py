"""The lock's info hash as lock_acquire.lua writes it: when it was taken (server time,
whole ms) and how often a holder let it expire. Contract: dashboard/patterns/locks.py."""

from dashboard.patterns.locks import Lock, info_key


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
