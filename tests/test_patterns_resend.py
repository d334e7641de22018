"""Issue 10: a lost reply must never make a pattern's write run twice with a wrong answer.

The reply is lost *after* the server ran the script: a proxy forwards the request and
cuts the connection instead of passing the reply on, the way a dropped connection loses
it, whatever the client reads it with. redis-py's default retry resends the
command; each pattern's script is either idempotent under that resend or not resent.
"""

import pytest
import redis
import redis.asyncio
from async_support import run_fresh
from lossy_proxy import LossyProxy
from redis.exceptions import ConnectionError as RedisConnectionError

from dashboard.patterns.aio import AsyncLock, AsyncRateLimiter
from dashboard.patterns.locks import Lock, info_key
from dashboard.patterns.ratelimit import RateLimiter


@pytest.fixture
def proxy(redis_server):
    """A proxy in front of the suite's server that loses the replies it is armed for."""
    lossy = LossyProxy(redis_server.port)
    yield lossy
    lossy.close()


@pytest.fixture
def lossy(proxy):
    """A blocking client behind the proxy (its default retry policy, as users have it)."""
    client = redis.Redis(port=proxy.port, socket_timeout=10)
    client.ping()  # connected before anything is armed
    yield client
    client.close()


@pytest.fixture
def lose_reply(proxy):
    """``arm()``: the next script call's reply is lost after the server ran it."""

    def arm(marker: bytes = b"EVAL") -> None:
        proxy.arm(marker)

    return arm


def _counters(r, resource):
    info = r.hgetall(info_key(resource))
    return {k.decode(): v.decode() for k, v in info.items()}


def test_lock_acquire_resent_after_a_lost_reply_is_acquired_once(r, lossy, proxy, lose_reply):
    lock = Lock(lossy, "resend")
    lose_reply()
    assert lock.try_acquire() == 1  # not "held by someone" (it is held by this request)
    assert proxy.lost == 1
    assert r.get("lock:{resend}") == lock.token.encode()
    assert _counters(r, "resend")["attempts"] == "1"
    assert r.get("lock:{resend}:fence") == b"1"


def test_lock_release_and_extend_resent_after_a_lost_reply(r, lossy, proxy, lose_reply):
    lock = Lock(lossy, "resend", ttl=10)
    lock.acquire()
    lose_reply()
    assert 19_000 < lock.extend(10) <= 20_000  # added once, not twice
    assert r.pttl("lock:{resend}") <= 20_000
    lose_reply()
    lock.release()  # not LockNotOwnedError("expired"): the first send released it
    assert proxy.lost == 2
    info = _counters(r, "resend")
    assert info["releases"] == "1" and info["extends"] == "1"
    assert r.get("lock:{resend}") is None


def test_failed_attempt_resent_is_counted_once(r, lossy, proxy, lose_reply):
    Lock(r, "busy").acquire()
    other = Lock(lossy, "busy")
    lose_reply()
    assert other.try_acquire() is None
    assert proxy.lost == 1
    assert _counters(r, "busy")["failures"] == "1"


@pytest.mark.parametrize("algorithm", ["fixed", "gcra"])
def test_counting_hits_are_not_resent(r, lossy, proxy, lose_reply, algorithm):
    limiter = RateLimiter(lossy, "resend", limit=10, window=60, algorithm=algorithm)
    lose_reply()
    with pytest.raises(RedisConnectionError):
        limiter.hit("u")  # counted once on the server; the caller learns the reply was lost
    assert proxy.lost == 1
    assert limiter.peek("u").remaining == 9
    assert limiter.hit("u").remaining == 8  # the pooled connection was replaced


def test_sliding_hit_resent_is_counted_once(r, lossy, proxy, lose_reply):
    limiter = RateLimiter(lossy, "resend", limit=10, window=60, algorithm="sliding")
    lose_reply()
    decision = limiter.hit("u", cost=3)
    assert proxy.lost == 1
    assert decision.allowed and decision.remaining == 7
    assert r.zcard(limiter.key_for("u")) == 3
    # the resend's answer is the first one's: not blocked, budget back within the window
    assert decision.retry_after_s == 0 and 0 < decision.reset_after_s <= 60


def test_async_twins_behave_the_same_on_a_lost_reply(r, proxy, lose_reply):
    async def main():
        client = redis.asyncio.Redis(port=proxy.port, socket_timeout=10)
        try:
            await client.ping()
            lock = AsyncLock(client, "resend")
            lose_reply()
            assert await lock.try_acquire() == 1
            lose_reply()
            await lock.release()
            assert proxy.lost == 2
            fixed = AsyncRateLimiter(client, "resend", 10, 60, algorithm="fixed")
            lose_reply()
            with pytest.raises(RedisConnectionError):
                await fixed.hit("u")
            assert (await fixed.peek("u")).remaining == 9
            assert (await fixed.hit("u")).remaining == 8
            sliding = AsyncRateLimiter(client, "resend", 10, 60, algorithm="sliding")
            lose_reply()
            assert (await sliding.hit("u", cost=2)).remaining == 8
            assert proxy.lost == 4
        finally:
            await client.aclose()

    run_fresh(main)
    info = _counters(r, "resend")
    assert info["attempts"] == "1" and info["releases"] == "1"
    assert r.get("lock:{resend}:fence") == b"1"


def test_a_plain_client_keeps_its_own_retry_for_other_commands(lossy, proxy, lose_reply):
    """The pattern layer decides per script; ordinary commands keep redis-py's retry."""
    lose_reply(b"INCR")
    assert lossy.incr("plain") == 2  # resent by redis-py: the documented cost of a resend
    assert proxy.lost == 1
