"""The pattern layer's own script calls (dashboard.patterns.fastcall / afastcall) keep
what redis-py's path gives: socket timeouts, cancellation, pool limits, close(), the
command gate, and a connection the server closed while it sat idle in the pool.
"""

import asyncio
import os
import time

import pytest
import redis
import redis.asyncio
from async_support import run_fresh
from lossy_proxy import LossyProxy
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dashboard import gate
from dashboard.patterns.aio import AsyncLock, AsyncRateLimiter
from dashboard.patterns.locks import Lock
from dashboard.patterns.ratelimit import RateLimiter


def on(port, body, **options):
    """``body(client)`` on a fresh event loop with a ``redis.asyncio`` client of its own."""

    async def main():
        client = redis.asyncio.Redis(port=port, **options)
        try:
            return await body(client)
        finally:
            await client.aclose()

    return run_fresh(main)


@pytest.fixture
def proxy(redis_server):
    lossy = LossyProxy(redis_server.port)
    yield lossy
    lossy.close()


def test_async_read_times_out_and_a_counting_hit_is_not_resent(r, proxy):
    async def body(client):
        limiter = AsyncRateLimiter(client, "slow", 10, 60, algorithm="fixed")
        await limiter.hit("u")
        proxy.arm(cut=False)  # the server runs the hit; its reply never comes
        with pytest.raises(RedisTimeoutError):
            await limiter.hit("u")
        assert (await limiter.hit("u")).remaining == 7  # a fresh connection, in step

    on(proxy.port, body, socket_timeout=0.3)
    assert proxy.lost == 1
    assert r.get("ratelimit:slow:fixed:10:60000:{u}") == b"3"  # 3 hits ran, none twice


def test_async_timeout_on_an_idempotent_script_is_resent_and_counted_once(r, proxy):
    async def body(client):
        limiter = AsyncRateLimiter(client, "slow", 10, 60, algorithm="sliding")
        await limiter.hit("warm")
        proxy.arm(cut=False)
        return await limiter.hit("u", cost=2)

    decision = on(proxy.port, body, socket_timeout=0.3)
    assert proxy.lost == 1
    assert decision.allowed and decision.remaining == 8
    assert r.zcard("ratelimit:slow:sliding:10:60000:{u}") == 2


def test_sync_read_times_out_too(r, proxy):
    client = redis.Redis(port=proxy.port, socket_timeout=0.3)
    try:
        limiter = RateLimiter(client, "slow", 10, 60, algorithm="gcra")
        limiter.hit("u")
        proxy.arm(cut=False)
        with pytest.raises(RedisTimeoutError):
            limiter.hit("u")
        assert limiter.hit("u").remaining == 7
    finally:
        client.close()
    assert proxy.lost == 1


def test_a_cancelled_task_is_cancelled_and_leaves_no_reply_behind(r, proxy):
    async def body(client):
        limiter = AsyncRateLimiter(client, "cancel", 10, 60, algorithm="fixed")
        await limiter.hit("u")
        proxy.arm(cut=False)
        task = asyncio.create_task(limiter.hit("u"))
        while proxy.lost == 0:  # the server ran it and its reply was swallowed
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()  # cancelled, not turned into a timeout or an error
        after = await limiter.hit("u")
        assert after.remaining == 7  # the next call reads its own reply
        assert asyncio.current_task().cancelling() == 0

    on(proxy.port, body, socket_timeout=5)


def test_a_shared_read_timer_never_cancels_a_read_it_does_not_own(redis_server):
    """Reads that finished leave their slot; the slot's timer firing later touches nothing."""

    async def body(client):
        limiter = AsyncRateLimiter(client, "slots", 1000, 60, algorithm="fixed")
        for _ in range(20):
            await limiter.hit("u")
        await asyncio.sleep(0.2)  # every slot those reads joined has fired by now
        me = asyncio.current_task()
        assert me.cancelling() == 0
        await asyncio.sleep(0)  # no cancellation was delivered either
        return (await limiter.hit("u")).remaining

    assert on(redis_server.port, body, socket_timeout=0.05) == 1000 - 21


def test_pool_limits_hold_on_the_fast_path(r, proxy, redis_server):
    async def body(client):
        limiter = AsyncRateLimiter(client, "pool", 10, 60, algorithm="fixed")
        proxy.arm(cut=False)
        proxy.arm(cut=False)
        held = [asyncio.create_task(limiter.hit(f"u{i}")) for i in range(2)]
        while proxy.lost < 2:
            await asyncio.sleep(0.005)
        with pytest.raises(MaxConnectionsError):
            await limiter.hit("third")
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        return (await limiter.hit("third")).remaining  # the slots came back

    assert on(proxy.port, body, socket_timeout=5, max_connections=2) == 9
    client = redis.Redis(port=redis_server.port, max_connections=1)
    try:
        lock = Lock(client, "pool")
        taken = client.connection_pool.get_connection()  # the only connection, in use
        with pytest.raises(MaxConnectionsError):
            lock.try_acquire()
        client.connection_pool.release(taken)
        assert lock.try_acquire() == 1
    finally:
        client.close()


def _clients_named(r, name):
    return [c for c in r.client_list() if c["name"] == name]


def test_close_closes_what_the_fast_path_borrowed(r, redis_server):
    async def main():
        client = redis.asyncio.Redis(port=redis_server.port, client_name="fastclose")
        await AsyncLock(client, "c").try_acquire()
        await AsyncRateLimiter(client, "c", 10, 60).hit("u")
        assert len(_clients_named(r, "fastclose")) == 1  # borrowed and given back
        await client.aclose()

    run_fresh(main)
    sync = redis.Redis(port=redis_server.port, client_name="fastclose-sync")
    RateLimiter(sync, "c", 10, 60).hit("u")
    assert len(_clients_named(r, "fastclose-sync")) == 1
    sync.close()
    for _ in range(100):
        if not _clients_named(r, "fastclose") and not _clients_named(r, "fastclose-sync"):
            break
        time.sleep(0.01)  # the server notices the closed sockets
    assert _clients_named(r, "fastclose") == [] and _clients_named(r, "fastclose-sync") == []


def test_the_read_only_gate_refuses_a_script_before_it_is_sent(r, make_client):
    ro = gate.install(make_client(), allow_writes=False)
    with pytest.raises(gate.CommandRefused):
        Lock(ro, "gated").try_acquire()
    with pytest.raises(gate.CommandRefused):
        RateLimiter(ro, "gated", 10, 60, algorithm="fixed").hit("u")
    assert r.keys("*") == []


def test_a_connection_killed_while_idle_costs_no_counting_hit(r, redis_server):
    """Nothing was sent on it: a fixed-window hit (never resent) still goes through."""

    async def body(client):
        limiter = AsyncRateLimiter(client, "idle", 10, 60, algorithm="fixed")
        await limiter.hit("u")
        (victim,) = _clients_named(r, "idlekill")
        r.client_kill_filter(_id=victim["id"])
        await asyncio.sleep(0.05)  # the loop sees the connection close
        return (await limiter.hit("u")).remaining

    assert on(redis_server.port, body, client_name="idlekill") == 8


def test_async_error_replies_keep_the_connection(r, redis_server):
    """An error reply is read in full: the connection stays in the pool, in step."""
    r.rpush("lock:{typed}", "a list, not a lock")

    async def body(client):
        lock = AsyncLock(client, "typed")
        for _ in range(3):
            with pytest.raises(Exception, match="holds a list"):
                await lock.try_acquire()
        assert len(_clients_named(r, "errkeep")) == 1
        return await AsyncLock(client, "other").try_acquire()

    assert on(redis_server.port, body, client_name="errkeep") == 1


def test_a_blocking_connection_killed_while_idle_costs_no_counting_hit(r, redis_server):
    client = redis.Redis(port=redis_server.port, client_name="idlekill-sync")
    try:
        limiter = RateLimiter(client, "idle", 10, 60, algorithm="gcra")
        limiter.hit("u")
        (victim,) = _clients_named(r, "idlekill-sync")
        r.client_kill_filter(_id=victim["id"])
        assert limiter.hit("u").remaining == 8  # not a ConnectionError: nothing was sent
    finally:
        client.close()


def test_a_forked_child_borrows_connections_of_its_own(redis_server):
    client = redis.Redis(port=redis_server.port)
    lock = Lock(client, "forked")
    lock.acquire()
    lock.release()  # the parent's connection now waits in the pool
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the same client object, so the same pool
        try:
            fence = lock.acquire()
            lock.release()
            own = client.connection_pool.pid == os.getpid()  # the pool reset itself here
            os.write(write_end, f"{fence} {own}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    reply = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert reply == "2 True"
    assert lock.acquire() == 3  # the parent's pooled connection is still in step
    lock.release()
    client.close()
