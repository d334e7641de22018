"""The asyncio twins on a real redis-server: the same guarantees as the blocking patterns.

Each test runs its own event loop (``asyncio.run`` on a thread of its own) and makes its own
``redis.asyncio`` clients on the suite's server; the ``r`` fixture flushes first.
"""

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
import redis
import redis.asyncio
from async_support import run_fresh

from dashboard.patterns import streams
from dashboard.patterns.aio import (
    AsyncCache,
    AsyncLeaderboard,
    AsyncLock,
    AsyncRateLimiter,
    AsyncSessionStore,
    AsyncSubscriber,
    AsyncUniqueCounter,
    AsyncWorker,
    aadd,
    aensure_group,
    apublish,
)
from dashboard.patterns.cache import Cache
from dashboard.patterns.lockcore import LockError, LockNotOwnedError, LockTimeout
from dashboard.patterns.locks import Lock
from dashboard.patterns.ratelimit import ALGORITHMS, RateLimiter, limiter_state
from dashboard.patterns.sessions import SessionStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(port, main):
    """``asyncio.run(main(client))`` with a fresh asyncio client on the suite's server."""

    async def wrapper():
        client = redis.asyncio.Redis(port=port, socket_timeout=10)
        try:
            return await main(client)
        finally:
            await client.aclose()

    return run_fresh(wrapper)


# -- locks --------------------------------------------------------------------------------
def test_many_tasks_never_hold_the_lock_together(r, redis_server):
    inside, most, fences = [0], [0], []

    async def main(client):
        async def worker(i):
            lock = AsyncLock(client, "shared", ttl=10, backoff_base=0.001, backoff_max=0.01)
            for _ in range(5):
                async with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                    fences.append(lock.fence)
                    await asyncio.sleep(0)  # let every other task try meanwhile
                    inside[0] -= 1

        await asyncio.gather(*(worker(i) for i in range(40)))

    run(redis_server.port, main)
    assert most[0] == 1
    assert sorted(fences) == list(range(1, 201)) == sorted(set(fences))
    assert r.get("lock:{shared}:fence") == b"200"


def test_async_and_sync_locks_share_keys_fences_and_errors(r, redis_server):
    async def main(client):
        held = Lock(r, "mixed", ttl=10)
        assert held.acquire() == 1
        waiting = AsyncLock(client, "mixed", ttl=10, timeout=0.05)
        with pytest.raises(LockTimeout, match=r"lock:\{mixed\}"):
            async with waiting:
                pass
        held.release()
        assert await waiting.acquire() == 2
        assert await waiting.owned() and await waiting.locked()
        assert 19_000 < await waiting.extend(10) <= 20_000
        r.delete("lock:{mixed}")
        with pytest.raises(LockNotOwnedError, match="expired"):
            await waiting.release()
        r.hset("lock:{typed}", "a", "1")
        with pytest.raises(LockError, match=r"lock:\{typed\} holds a hash"):
            await AsyncLock(client, "typed").try_acquire()

    run(redis_server.port, main)
    assert not r.exists("lock:{typed}:info") and not r.exists("lock:{typed}:fence")


def test_lock_key_of_another_type_is_refused_before_anything_is_written(r):
    """Issue 10: a hash at lock:{x} used to read as 'held' (and wait forever)."""
    r.hset("lock:{x}", "field", "value")
    with pytest.raises(LockError, match=r"lock:\{x\} holds a hash"):
        Lock(r, "x").try_acquire()
    with pytest.raises(LockError, match=r"lock:\{x\} holds a hash"), Lock(r, "x", timeout=5):
        pass
    assert sorted(r.keys("lock:*")) == [b"lock:{x}"]


# -- rate limits ----------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_concurrent_tasks_get_exactly_the_limit(r, redis_server, algo):
    limit = 100

    async def main(client):
        clients = [redis.asyncio.Redis(port=redis_server.port) for _ in range(4)]
        try:
            limiters = [AsyncRateLimiter(c, "burst", limit, 3600, algo) for c in clients]

            async def task(i):
                limiter = limiters[i % len(limiters)]
                return sum([(await limiter.hit("shared")).allowed for _ in range(10)])

            return sum(await asyncio.gather(*(task(i) for i in range(32))))
        finally:
            for c in clients:
                await c.aclose()

    assert run(redis_server.port, main) == limit
    key = RateLimiter(r, "burst", limit, 3600, algo).key_for("shared")
    state = limiter_state(r, key)
    assert state["used"] == limit and state["blocked"]
    assert not RateLimiter(r, "burst", limit, 3600, algo).hit("shared").allowed


def test_async_limiter_decides_like_the_sync_one(r, redis_server):
    async def main(client):
        for algo in ALGORITHMS:
            twin = AsyncRateLimiter(client, "twin", 3, 60, algo)
            sync = RateLimiter(r, "twin", 3, 60, algo)
            assert twin.key_for("u") == sync.key_for("u")
            got = [(await twin.hit("u")).allowed, sync.hit("u").allowed]
            got += [(await twin.hit("u", cost=1)).remaining, (await twin.peek("u")).remaining]
            assert got == [True, True, 0, 0]
            assert not (await twin.hit("u")).allowed
            assert await twin.reset("u") and sync.peek("u").remaining == 3

    run(redis_server.port, main)


# -- cache: single flight across tasks and processes ----------------------------------------
PROCESS = textwrap.dedent(
    """
    import sys, time, redis
    from dashboard.patterns.cache import Cache
    client = redis.Redis(port=int(sys.argv[1]))
    while not client.exists("go"):
        time.sleep(0.001)
    def load():
        client.incr("loads")
        time.sleep(0.3)
        return "computed"
    print(Cache(client, wait_timeout=30).get_or_set("hot", load))
    """
)


def test_stampede_single_flight_across_tasks_and_processes(r, redis_server):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, str(redis_server.port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]

    async def main(client):
        cache = AsyncCache(client, wait_timeout=30)

        async def load():
            await client.incr("loads")
            await asyncio.sleep(0.3)
            return "computed"

        await client.set("go", 1)
        return await asyncio.gather(*(cache.get_or_set("hot", load) for _ in range(30)))

    values = run(redis_server.port, main)
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert values == ["computed"] * 30
    assert outputs == ["computed"] * 3
    assert r.get("loads") == b"1"


def test_async_cache_reads_what_the_sync_cache_wrote_and_tags(r, redis_server):
    async def main(client):
        sync, twin = Cache(r), AsyncCache(client)
        sync.set("k", {"v": 1}, tags=["t"])
        assert await twin.get("k") == {"v": 1}
        await twin.invalidate_tags("t")
        assert sync.get("k", default=None) is None
        assert await twin.get_or_set("k", lambda: "sync loader") == "sync loader"
        assert await twin.write_through("k", 2, lambda v: None) is True
        assert sync.get("k") == 2
        await twin.delete("k")
        assert sync.get("k", default="gone") == "gone"

    run(redis_server.port, main)


# -- streams: cancel mid-batch ----------------------------------------------------------------
def test_worker_task_cancelled_mid_batch_loses_no_message(r, redis_server):
    ids = [streams.add(r, "jobs", {"n": i}) for i in range(30)]
    done = []

    async def main(client):
        await aensure_group(client, "jobs", "g", start_id="0")
        started = asyncio.Event()

        async def slow(entry):
            started.set()
            await asyncio.sleep(0.05)
            done.append(entry.id)

        first = AsyncWorker(client, "jobs", "g", "c1", slow, count=10, block_ms=10)
        first.start()
        await started.wait()
        await asyncio.sleep(0.02)
        first.cancel()  # mid-handler, mid-batch
        await asyncio.sleep(0.01)
        assert not first.alive
        pending = await client.xpending("jobs", "g")
        assert pending["pending"] >= 1  # delivered, never acked, still there

        async def fast(entry):
            done.append(entry.id)

        again = AsyncWorker(client, "jobs", "g", "c1", fast, count=10, block_ms=10)
        for _ in range(20):  # own pending entries first, then the rest of the stream
            if not await again.run_once():
                break
        await aadd(client, "jobs", {"n": "late"})
        assert await again.run_once() == 1

    run(redis_server.port, main)
    assert set(ids) <= set(done)
    assert r.xpending("jobs", "g")["pending"] == 0


# -- pub/sub: the factory on every reconnect -------------------------------------------------
def test_async_subscriber_follows_the_factory_to_a_new_server(private_server):
    old, new = private_server(), private_server()
    calls, inbox = [], []

    async def main():
        clients = [redis.asyncio.Redis(port=s.port) for s in (old, new)]

        async def factory():
            calls.append(1)
            return clients[min(len(calls), 2) - 1]

        async def handler(message):
            inbox.append(message.data)

        sub = AsyncSubscriber(factory, channels=["t:f"], handler=handler, backoff_base=0.01)
        async with sub:
            assert await sub.wait_subscribed(5)
            await clients[0].client_kill_filter(_type="pubsub")  # the old server still answers
            for _ in range(500):
                if len(calls) >= 2 and sub.subscribed:
                    break
                await asyncio.sleep(0.01)
            for _ in range(500):
                if await apublish(clients[1], "t:f", {"on": "new"}) == 1:
                    break
                await asyncio.sleep(0.01)
            for _ in range(500):
                if inbox:
                    break
                await asyncio.sleep(0.01)
        for c in clients:
            await c.aclose()
        return sub.stats()

    stats = run_fresh(main)
    assert len(calls) == 2 and inbox == [{"on": "new"}]
    assert stats["connects"] == 2 and stats["reconnects"] == 1


# -- the rest: same keys and answers as the blocking twins -------------------------------------
def test_sessions_leaderboard_and_counters_twins(r, redis_server):
    async def main(client):
        store, sync_store = AsyncSessionStore(client, ttl=60), SessionStore(r, ttl=60)
        sid = await store.create("u1", {"cart": [1]})
        assert sync_store.get(sid).data == {"cart": [1]}
        assert await store.update(sid, {"cart": [1, 2]})
        assert (await store.get(sid)).data == {"cart": [1, 2]}
        assert [s.sid for s in await store.list_user_sessions("u1")] == [sid]
        assert await store.delete_all_for_user("u1") == 1

        board = AsyncLeaderboard(client, "game")
        for i, name in enumerate("abcdefg"):
            await board.add(name, i)
        assert [e.member for e in await board.around("d", n=1)] == ["e", "d", "c"]
        assert await board.rank("g") == 1 and await board.score("a") == 0.0
        assert await board.around("zz") == []

        hll = AsyncUniqueCounter(client, "visitors", ttl=60)
        assert await hll.add("x", "y", period="d1")
        await hll.add("y", "z", period="d2")
        assert await hll.count_union(["d1", "d2"]) == 3
        assert await hll.merge("week", ["d1", "d2"]) == 3

    run(redis_server.port, main)


def test_a_sync_shell_refuses_an_async_loader(r):
    async def loader():
        return 1

    with pytest.raises(TypeError, match="aio"):
        Cache(r).get_or_set("k", loader)
