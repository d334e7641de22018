"""Issue 10: a lost reply must never make a pattern's write run twice with a wrong answer.

The reply is lost *after* the server ran the script (the transport raises on read), the
way a dropped connection or a timeout loses it. redis-py's default retry resends the
command; each pattern's script is either idempotent under that resend or not resent.
"""

import pytest
import redis
import redis.asyncio
from async_support import run_fresh
from redis.asyncio.connection import Connection as AsyncConnection
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from dashboard.patterns.aio import AsyncLock, AsyncRateLimiter
from dashboard.patterns.locks import Lock, info_key
from dashboard.patterns.ratelimit import RateLimiter


@pytest.fixture
def lose_reply(monkeypatch):
    """``arm()``: the next reply read (sync or asyncio) is consumed, then reported lost."""
    armed = []
    sync_read, async_read = Connection.read_response, AsyncConnection.read_response

    def read(self, *args, **kwargs):
        reply = sync_read(self, *args, **kwargs)
        if armed:
            armed.pop()
            raise RedisConnectionError("reply lost (test)")
        return reply

    async def aread(self, *args, **kwargs):
        reply = await async_read(self, *args, **kwargs)
        if armed:
            armed.pop()
            raise RedisConnectionError("reply lost (test)")
        return reply

    monkeypatch.setattr(Connection, "read_response", read)
    monkeypatch.setattr(AsyncConnection, "read_response", aread)
    return lambda: armed.append(True)


def _counters(r, resource):
    info = r.hgetall(info_key(resource))
    return {k.decode(): v.decode() for k, v in info.items()}


def test_lock_acquire_resent_after_a_lost_reply_is_acquired_once(r, lose_reply):
    lock = Lock(r, "resend")
    lose_reply()
    assert lock.try_acquire() == 1  # not "held by someone" (it is held by this request)
    assert r.get("lock:{resend}") == lock.token.encode()
    assert _counters(r, "resend")["attempts"] == "1"
    assert r.get("lock:{resend}:fence") == b"1"


def test_lock_release_and_extend_resent_after_a_lost_reply(r, lose_reply):
    lock = Lock(r, "resend", ttl=10)
    lock.acquire()
    lose_reply()
    assert 19_000 < lock.extend(10) <= 20_000  # added once, not twice
    assert r.pttl("lock:{resend}") <= 20_000
    lose_reply()
    lock.release()  # not LockNotOwnedError("expired"): the first send released it
    info = _counters(r, "resend")
    assert info["releases"] == "1" and info["extends"] == "1"


def test_failed_attempt_resent_is_counted_once(r, lose_reply):
    Lock(r, "busy").acquire()
    other = Lock(r, "busy")
    lose_reply()
    assert other.try_acquire() is None
    assert _counters(r, "busy")["failures"] == "1"


@pytest.mark.parametrize("algorithm", ["fixed", "gcra"])
def test_counting_hits_are_not_resent(r, lose_reply, algorithm):
    limiter = RateLimiter(r, "resend", limit=10, window=60, algorithm=algorithm)
    lose_reply()
    with pytest.raises(RedisConnectionError):
        limiter.hit("u")  # counted once on the server; the caller learns the reply was lost
    assert limiter.peek("u").remaining == 9


def test_sliding_hit_resent_is_counted_once(r, lose_reply):
    limiter = RateLimiter(r, "resend", limit=10, window=60, algorithm="sliding")
    lose_reply()
    decision = limiter.hit("u", cost=3)
    assert decision.allowed and decision.remaining == 7
    assert r.zcard(limiter.key_for("u")) == 3
    # the resend's answer is the first one's: not blocked, budget back within the window
    assert decision.retry_after_s == 0 and 0 < decision.reset_after_s <= 60


def test_async_twins_behave_the_same_on_a_lost_reply(redis_server, lose_reply):
    async def main():
        client = redis.asyncio.Redis(port=redis_server.port)
        try:
            await client.flushall()
            lock = AsyncLock(client, "resend")
            lose_reply()
            assert await lock.try_acquire() == 1
            lose_reply()
            await lock.release()
            fixed = AsyncRateLimiter(client, "resend", 10, 60, algorithm="fixed")
            lose_reply()
            with pytest.raises(RedisConnectionError):
                await fixed.hit("u")
            assert (await fixed.peek("u")).remaining == 9
            sliding = AsyncRateLimiter(client, "resend", 10, 60, algorithm="sliding")
            lose_reply()
            assert (await sliding.hit("u", cost=2)).remaining == 8
        finally:
            await client.aclose()

    run_fresh(main)


def test_a_plain_client_keeps_its_own_retry_for_other_commands(r, lose_reply):
    """The pattern layer decides per script; ordinary commands keep redis-py's retry."""
    lose_reply()
    assert r.incr("plain") == 2  # resent by redis-py: the documented cost of a resend
    assert isinstance(r, redis.Redis)
