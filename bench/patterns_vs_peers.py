"""Our limiters and lock against the libraries they replace, on one private redis-server.

    python bench/patterns_vs_peers.py [--rounds 15] [--ops 500] [--clients 16]

Pairs (ours vs peer), each blocking (redis.Redis) and asyncio (redis.asyncio):

* fixed window  ``RateLimiter(algorithm="fixed")`` vs ``limits`` FixedWindowRateLimiter
* sliding log   ``RateLimiter(algorithm="sliding")`` vs ``limits`` MovingWindowRateLimiter
* GCRA          ``RateLimiter(algorithm="gcra")`` vs ``limits`` MovingWindowRateLimiter
  (limits has no GCRA; its exact sliding limiter is the closest smooth one)
* lock          ``Lock`` acquire + release vs redis-py ``Lock`` acquire + release

Each pair runs with one client (a loop of calls) and with ``--clients`` concurrent
clients (threads sharing one client's pool, or tasks sharing one asyncio client),
in interleaved rounds: every round runs every case, ours and the peer back to back
in alternating order, after the keys were deleted. The table gives the median
ops/s of each side over the rounds and the ratio: the median over rounds of
ours / peer measured back to back in the same round (>= 1.0 means ours is at
least as fast). Pairing within a round keeps a noisy, shared machine's slow
moments from landing on one side only; the spread column gives the lowest and
highest round's ratio (500 calls a client a round: shorter rounds on a shared
machine measure its hiccups more than the code; the whole run takes about three
minutes on two cores). Limits are set high so every hit is allowed
(the path an application takes almost always); 100 identities take turns.

``limits`` is not a dependency of redis-dashboard: ``pip install limits`` to get the
limiter rows (``pip install '.[test]'`` brings it too). Without it only the lock rows run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.embedded import EmbeddedRedis
from dashboard.patterns.aio import AsyncLock, AsyncRateLimiter
from dashboard.patterns.locks import Lock
from dashboard.patterns.ratelimit import RateLimiter

try:
    import limits
    import limits.aio.storage
    import limits.aio.strategies
    import limits.storage
    import limits.strategies
except ImportError:  # pragma: no cover - depends on the install
    limits = None

LIMIT = 1_000_000_000  # per hour: every hit is allowed
IDENTITIES = [f"user-{i}" for i in range(100)]
Factory = Callable[[int], Callable[[int], Any]]  # worker index -> (op index -> result)


def sync_cases(port: int) -> dict[str, tuple[Factory, Factory]]:
    client = redis.Redis(port=port)
    cases: dict[str, tuple[Factory, Factory]] = {}

    def ours_limiter(algo: str) -> Factory:
        def make(_w: int) -> Callable[[int], Any]:
            limiter = RateLimiter(client, f"bench-{algo}", LIMIT, 3600, algo)
            return lambda i: limiter.hit(IDENTITIES[i % 100])

        return make

    if limits is not None:
        storage = limits.storage.RedisStorage(f"redis://127.0.0.1:{port}")
        peers = {
            "fixed": limits.strategies.FixedWindowRateLimiter(storage),
            "moving": limits.strategies.MovingWindowRateLimiter(storage),
        }

        def peer_limiter(kind: str, algo: str) -> Factory:
            item = limits.RateLimitItemPerHour(LIMIT)

            def make(_w: int) -> Callable[[int], Any]:
                strategy = peers[kind]
                return lambda i: strategy.hit(item, f"peer-{algo}", IDENTITIES[i % 100])

            return make

        for algo, kind in (("fixed", "fixed"), ("sliding", "moving"), ("gcra", "moving")):
            cases[f"{algo} vs limits {kind}"] = (ours_limiter(algo), peer_limiter(kind, algo))

    def ours_lock(w: int) -> Callable[[int], Any]:
        lock = Lock(client, f"bench-{w}", 30)
        return lambda _i: (lock.acquire(), lock.release())

    def peer_lock(w: int) -> Callable[[int], Any]:
        lock = client.lock(f"peer-lock-{w}", timeout=30)
        return lambda _i: (lock.acquire(), lock.release())

    cases["lock vs redis-py Lock"] = (ours_lock, peer_lock)
    return cases


def async_cases(port: int) -> dict[str, tuple[Factory, Factory]]:
    client = redis.asyncio.Redis(port=port)
    cases: dict[str, tuple[Factory, Factory]] = {}

    def ours_limiter(algo: str) -> Factory:
        def make(_w: int) -> Callable[[int], Any]:
            limiter = AsyncRateLimiter(client, f"abench-{algo}", LIMIT, 3600, algo)
            return lambda i: limiter.hit(IDENTITIES[i % 100])

        return make

    if limits is not None:
        storage = limits.aio.storage.RedisStorage(
            f"async+redis://127.0.0.1:{port}", implementation="redispy"
        )
        peers = {
            "fixed": limits.aio.strategies.FixedWindowRateLimiter(storage),
            "moving": limits.aio.strategies.MovingWindowRateLimiter(storage),
        }

        def peer_limiter(kind: str, algo: str) -> Factory:
            item = limits.RateLimitItemPerHour(LIMIT)

            def make(_w: int) -> Callable[[int], Any]:
                strategy = peers[kind]
                return lambda i: strategy.hit(item, f"apeer-{algo}", IDENTITIES[i % 100])

            return make

        for algo, kind in (("fixed", "fixed"), ("sliding", "moving"), ("gcra", "moving")):
            cases[f"{algo} vs limits {kind}"] = (ours_limiter(algo), peer_limiter(kind, algo))

    def ours_lock(w: int) -> Callable[[int], Any]:
        lock = AsyncLock(client, f"abench-{w}", 30)

        async def op(_i: int) -> None:
            await lock.acquire()
            await lock.release()

        return op

    def peer_lock(w: int) -> Callable[[int], Any]:
        lock = client.lock(f"apeer-lock-{w}", timeout=30)

        async def op(_i: int) -> None:
            await lock.acquire()
            await lock.release()

        return op

    cases["lock vs redis-py Lock"] = (ours_lock, peer_lock)
    return cases


def measure_sync(make: Factory, workers: int, ops: int) -> float:
    """ops/s of ``workers`` threads each running ``ops`` calls (one: no thread)."""
    if workers == 1:
        op = make(0)
        op(0)  # warm: script loaded, connection made
        start = time.perf_counter()
        for i in range(ops):
            op(i)
        return ops / (time.perf_counter() - start)
    fns = [make(w) for w in range(workers)]
    for fn in fns:
        fn(0)
    barrier = threading.Barrier(workers + 1)

    def body(fn: Callable[[int], Any]) -> None:
        barrier.wait()
        for i in range(ops):
            fn(i)

    threads = [threading.Thread(target=body, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return workers * ops / (time.perf_counter() - start)


async def measure_async(make: Factory, workers: int, ops: int) -> float:
    """ops/s of ``workers`` tasks each awaiting ``ops`` calls in turn."""
    fns = [make(w) for w in range(workers)]
    for fn in fns:
        await fn(0)

    async def body(fn: Callable[[int], Any]) -> None:
        for i in range(ops):
            await fn(i)

    start = time.perf_counter()
    await asyncio.gather(*(body(fn) for fn in fns))
    return workers * ops / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=500, help="calls per client per round")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    server = EmbeddedRedis().start()
    admin = redis.Redis(port=server.port)
    try:
        version = admin.info("server")["redis_version"]
        parser_name = type(admin.connection_pool.get_connection()._parser).__name__
        print(f"redis-server {version} on loopback; redis-py {redis.__version__} ({parser_name})")
        if limits is None:
            print("limits is not installed: `pip install limits` for the limiter rows")
        else:
            print(f"limits {limits.__version__}")
        syncs, asyncs = sync_cases(server.port), async_cases(server.port)
        modes = [("sync", 1), ("sync", args.clients), ("async", 1), ("async", args.clients)]
        samples: dict[tuple[str, str, int], tuple[list[float], list[float]]] = {}
        runner = asyncio.Runner()
        for round_no in range(args.rounds):
            admin.flushall()
            for kind, workers in modes:
                cases = syncs if kind == "sync" else asyncs
                for name, (ours, peer) in cases.items():
                    mine, theirs = samples.setdefault((name, kind, workers), ([], []))
                    order = [(ours, mine), (peer, theirs)]
                    if round_no % 2:
                        order.reverse()
                    for make, into in order:
                        if kind == "sync":
                            into.append(measure_sync(make, workers, args.ops))
                        else:
                            into.append(runner.run(measure_async(make, workers, args.ops)))
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
        runner.close()
        _report(samples)
    finally:
        admin.close()
        server.stop()
    return 0


def _report(samples: dict[tuple[str, str, int], tuple[list[float], list[float]]]) -> None:
    head = f"{'case':28} {'mode':9} {'ours ops/s':>11} {'peer ops/s':>11} {'ratio':>6}  spread"
    print(head)
    print("-" * len(head))
    worst = None
    for (name, kind, workers), (mine, theirs) in samples.items():
        ours, peer = statistics.median(mine), statistics.median(theirs)
        per_round = sorted(m / t for m, t in zip(mine, theirs, strict=True))
        ratio = statistics.median(per_round)
        mode = f"{kind} x{workers}"
        spread = f"{per_round[0]:.2f}..{per_round[-1]:.2f}"
        print(f"{name:28} {mode:9} {ours:11,.0f} {peer:11,.0f} {ratio:6.2f}  {spread}")
        worst = ratio if worst is None else min(worst, ratio)
    print(f"lowest ratio: {worst:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
