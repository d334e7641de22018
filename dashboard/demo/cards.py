"""What each playground card does, on top of the pattern layer.

Every function takes a :class:`CardContext` and returns an outcome: plain data with a
``summary`` line, the card's ``result`` numbers and a short ``events`` timeline (what
the page and ``/playground.json`` show). They write only names the target allows.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dashboard.demo.shop import PRODUCTS, FencedLedger, Shop, StaleFence
from dashboard.demo.target import DemoTarget
from dashboard.patterns.cache import MISS, Cache
from dashboard.patterns.counters import UniqueCounter, hll_state
from dashboard.patterns.locks import Lock, LockNotOwnedError
from dashboard.patterns.pubsub import publish
from dashboard.patterns.ratelimit import ALGORITHMS, RateLimiter


@dataclass(frozen=True)
class CardConfig:
    """Sizes and timings of the experiments (tests make them quicker)."""

    stampede_callers: int = 50
    stampede_loader_s: float = 0.3
    burst_requests: int = 150
    burst_limit: int = 100
    burst_window_s: float = 60.0
    race_work_s: float = 0.3
    lease_s: float = 0.4
    pause_s: float = 0.8
    hll_items: int = 10_000
    sales: int = 20
    kill_orders: int = 30
    reclaim_timeout_s: float = 60.0


@dataclass
class CardContext:
    target: DemoTarget
    client: Any
    shop: Shop
    config: CardConfig = field(default_factory=CardConfig)
    memory: dict[str, Any] = field(default_factory=dict)  # per-card state between runs
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def fresh(self, what: str) -> str:
        """A name never used before in this process (each experiment starts clean)."""
        return f"{what}-{secrets.token_hex(3)}-{next(self._ids)}"


def outcome(summary: str, result: dict[str, Any], events: list[str] | None = None) -> dict:
    return {"state": "done", "summary": summary, "result": result, "events": events or []}


class _Timeline:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.events: list[str] = []
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        with self._lock:
            self.events.append(f"{(time.monotonic() - self.start) * 1000:7.0f} ms  {text}")


def _together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads released at the same instant; results in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # reported per caller, never lost
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# --- cache ---------------------------------------------------------------------------
def cache_card(ctx: CardContext, action: str, form: Mapping[str, str]) -> dict:
    shop = ctx.shop
    if action == "invalidate":
        shop.cache.invalidate_tags("catalog")
        return outcome(
            "Tag 'catalog' got a new version: every product entry stamped with the old one "
            "is now a miss (no key was deleted, nothing was scanned).",
            {"invalidated_tag": "catalog"},
        )
    product_id = int(form.get("product") or 1)
    if product_id not in PRODUCTS:
        raise ValueError(f"no product {product_id}; products are 1..{len(PRODUCTS)}")
    before = shop.counters.snapshot().get("db_queries", 0)
    started = time.perf_counter()
    product = shop.product(product_id)
    ms = (time.perf_counter() - started) * 1000
    source = "database" if shop.counters.snapshot().get("db_queries", 0) > before else "cache"
    key = shop.cache.entry_key(f"product:{product_id}")
    return outcome(
        f"Product {product_id} came from the {source} in {ms:.1f} ms"
        + (" (a miss: loaded once, stored with a jittered TTL)." if source == "database" else "."),
        {
            "product": product,
            "source": source,
            "ms": round(ms, 2),
            "key": key,
            "stats": shop.cache.stats(),
        },
    )


def stampede_card(ctx: CardContext, action: str, form: Mapping[str, str]) -> dict:
    """N concurrent misses on one key, with the layer's protection or the naive recipe."""
    cfg, cache = ctx.config, Cache(ctx.client, prefix=ctx.target.name("cache"), ttl=60.0)
    key = ctx.fresh("stampede")
    loads = itertools.count(1)
    computed: list[int] = []

    def loader() -> dict[str, Any]:
        computed.append(next(loads))
        time.sleep(cfg.stampede_loader_s)  # the expensive query
        return {"report": "daily sales", "rows": 42}

    def protected(_: int) -> Any:
        return cache.get_or_set(key, loader)

    def naive(_: int) -> Any:
        value = cache.get(key)
        if value is MISS:
            value = loader()
            cache.set(key, value)
        return value

    started = time.perf_counter()
    results = _together(cfg.stampede_callers, protected if action == "protected" else naive)
    ms = (time.perf_counter() - started) * 1000
    errors = [r for r in results if isinstance(r, Exception)]
    served = len(results) - len(errors)
    how = "with protection" if action == "protected" else "without protection (naive GET/SET)"
    return outcome(
        f"{cfg.stampede_callers} concurrent misses {how}: the expensive query ran "
        f"{len(computed)} time{'s' if len(computed) != 1 else ''}; {served} callers served.",
        {
            "protected": action == "protected",
            "callers": cfg.stampede_callers,
            "recomputations": len(computed),
            "served": served,
            "errors": len(errors),
            "ms": round(ms, 1),
            "key": cache.entry_key(key),
        },
    )


# --- sessions ------------------------------------------------------------------------
def sessions_card(ctx: CardContext, action: str, form: Mapping[str, str]) -> dict:
    store, user = ctx.shop.sessions, "playground-user"
    sid = ctx.memory.get("sid")
    if action == "login":
        sid = ctx.memory["sid"] = store.create(user, {"cart": [], "theme": "dark"})
        summary = "Logged in: one hash with a sliding TTL, indexed under the user."
    elif action == "logout":
        gone = bool(sid) and store.delete(sid)
        ctx.memory.pop("sid", None)
        live = store.list_user_sessions(user)
        return outcome(
            "Logged out: the session hash is gone." if gone else "No session to end.",
            {"deleted": gone, "user_sessions": len(live)},
        )
    else:
        summary = "Read the session: the same round trip renewed its TTL (sliding expiry)."
    session = store.get(sid) if sid else None
    if session is None:
        ctx.memory.pop("sid", None)
        return outcome("No live session: log in first (or it expired).", {"live": False})
    live = store.list_user_sessions(user)
    return outcome(
        summary,
        {
            "live": True,
            "sid": sid[:8] + "…",
            "key": store.session_key(sid),
            "ttl_ms": session.ttl_ms,
            "data": session.data,
            "user_sessions": len(live),
        },
    )


# --- rate limits -----------------------------------------------------------------------
def ratelimit_card(ctx: CardContext, action: str, form: Mapping[str, str]) -> dict:
    cfg = ctx.config
    algorithm = form.get("algorithm") or "sliding"
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    limiter = RateLimiter(
        ctx.client, ctx.target.limiter("burst"), cfg.burst_limit, cfg.burst_window_s, algorithm
    )
    identity = ctx.fresh("client")
    allowed = denied = 0
    first_denied = None
    last = None
    for i in range(cfg.burst_requests):
        last = limiter.hit(identity)
        if last.allowed:
            allowed += 1
        else:
            denied += 1
            first_denied = first_denied or i + 1
    assert last is not None
    return outcome(
        f"{cfg.burst_requests} requests in a burst at {cfg.burst_limit} per "
        f"{cfg.burst_window_s:g} s ({algorithm}): {allowed} allowed, {denied} denied.",
        {
            "algorithm": algorithm,
            "requests": cfg.burst_requests,
            "limit": cfg.burst_limit,
            "window_s": cfg.burst_window_s,
            "allowed": allowed,
            "denied": denied,
            "first_denied": first_denied,
            "retry_after_s": round(last.retry_after_s, 2),
            "identity": identity,
            "key": limiter.key_for(identity),
        },
    )


# --- locks ---------------------------------------------------------------------------
def locks_card(ctx: CardContext, action: str, form: Mapping[str, str]) -> dict:
    return _lease_expiry(ctx) if action == "expire" else _race(ctx)


def _race(ctx: CardContext) -> dict:
    cfg, resource = ctx.config, ctx.target.name("payment", "playground")
    ledger, timeline = FencedLedger(), _Timeline()

    def worker(i: int) -> dict[str, Any]:
        name = "worker-A" if i == 0 else "worker-B"
        lock = Lock(ctx.client, resource, ttl=5.0, timeout=10.0)
        fence = lock.try_acquire()
        if fence is None:
            timeline.add(f"{name}: lock busy, waits")
            fence = lock.acquire()
            won = False
        else:
            won = True
        timeline.add(f"{name}: acquired, fence {fence}")
        ledger.charge("playground", fence or 0, 100)
        time.sleep(cfg.race_work_s)
        lock.release()
        timeline.add(f"{name}: released")
        return {"name": name, "won": won, "fence": fence}

    results = _together(2, worker)
    for r in results:
        if isinstance(r, Exception):
            raise r
    # by fence: if one thread was so late that it found the lock free, it still came second
    winner, loser = sorted(results, key=lambda r: r["fence"])
    return outcome(
        f"{winner['name']} won the lock with fence {winner['fence']}; {loser['name']} waited "
        f"and got fence {loser['fence']}. The ledger saw the fences in order.",
        {
            "winner": winner["name"],
            "winner_fence": winner["fence"],
            "loser": loser["name"],
            "loser_fence": loser["fence"],
            "resource": resource,
        },
        timeline.events,
    )


def _lease_expiry(ctx: CardContext) -> dict:
    """A holder pauses past its lease; the next holder's fence makes its late write fail."""
    cfg, resource = ctx.config, ctx.target.name("payment", "playground")
    ledger, timeline = FencedLedger(), _Timeline()
    a = Lock(ctx.client, resource, ttl=cfg.lease_s)
    a_fence = a.acquire(timeout=5.0)
    timeline.add(f"worker-A: acquired, fence {a_fence}, lease {cfg.lease_s * 1000:.0f} ms")
    timeline.add(f"worker-A: paused {cfg.pause_s * 1000:.0f} ms (GC, swap, network)")
    b = Lock(ctx.client, resource, ttl=5.0)
    b_fence = b.acquire(timeout=cfg.pause_s + 5.0)
    timeline.add(f"worker-B: acquired after A's lease ran out, fence {b_fence}")
    ledger.charge("playground", b_fence or 0, 100)
    timeline.add(f"worker-B: charged with fence {b_fence}")
    time.sleep(max(0.0, cfg.pause_s - cfg.lease_s))
    refused = None
    try:
        ledger.charge("playground", a_fence or 0, 100)
        timeline.add("worker-A: charged AGAIN (this must not happen)")
    except StaleFence as exc:
        refused = str(exc)
        timeline.add(f"worker-A: woke up, charge refused: {exc}")
    release_error = None
    try:
        a.release()
    except LockNotOwnedError as exc:
        release_error = exc.reason
        timeline.add(f"worker-A: release refused ({exc.reason}): it had lost the lock")
    b.release()
    timeline.add("worker-B: released")
    return outcome(
        f"worker-A's lease expired while it was paused; worker-B took the lock with fence "
        f"{b_fence}, and the ledger refused A's late charge with fence {a_fence}.",
        {
            "a_fence": a_fence,
            "b_fence": b_fence,
            "stale_write_refused": refused is not None,
            "release_error": release_error,
            "charges": ledger.charges,
            "resource": resource,
        },
        timeline.events,
    )


# --- pub/sub ---------------------------------------------------------------------------
def pubsub_card(ctx: CardContext, action: str, form: Mapping[str, str]) -> dict:
    shop = ctx.shop.start()
    text = (form.get("message") or "hello from the playground")[:500]
    nonce = secrets.token_hex(4)
    channel = shop.channel("playground")
    receivers = publish(ctx.client, channel, {"text": text, "nonce": nonce})
    deadline = time.monotonic() + 2.0
    seen = False
    while not seen and time.monotonic() < deadline:
        seen = any(
            isinstance(n["data"], dict) and n["data"].get("nonce") == nonce
            for n in list(shop.notifications)
        )
        if not seen:
            time.sleep(0.02)
    return outcome(
        f"Published to {channel}: {receivers} subscriber(s) got it"
        + ("; the shop's notifier received it." if seen else "; the shop's notifier did not."),
        {
            "channel": channel,
            "receivers": receivers,
            "received_by_shop": seen,
            "message": {"text": text, "nonce": nonce},
        },
    )


# --- leaderboard and unique counts ----------------------------------------------------------
def leaderboard_card(ctx: CardContext, action: str, form: Mapping[str, str]) -> dict:
    board = ctx.shop.best_sellers()
    names = [p["name"] for p in PRODUCTS.values()]
    rng = secrets.SystemRandom()
    for _ in range(ctx.config.sales):
        board.increment(rng.choice(names[:8]), 1)
    top = [{"rank": e.rank, "product": e.member, "sold": int(e.score)} for e in board.top(5)]
    return outcome(
        f"Recorded {ctx.config.sales} sales (ZINCRBY); today's board has {board.size()} "
        f"products, {top[0]['product']} leads."
        if top
        else "The board is empty.",
        {"key": board.key, "top": top, "size": board.size()},
    )


def hll_card(ctx: CardContext, action: str, form: Mapping[str, str]) -> dict:
    n = ctx.config.hll_items
    counter = UniqueCounter(
        ctx.client, ctx.fresh("playground-visitors"), ttl=3600, prefix=ctx.target.name("hll")
    )
    batch = 1000
    for start in range(0, n, batch):
        counter.add(*(f"visitor-{i}" for i in range(start, min(n, start + batch))))
    estimate = counter.count()
    state = hll_state(ctx.client, counter.key())
    error = abs(estimate - n) / n * 100
    size = f"{state.bytes:,} bytes" if state and state.bytes else "size unknown"
    return outcome(
        f"{n:,} distinct visitors counted as {estimate:,} ({error:.2f}% off) in {size}.",
        {
            "exact": n,
            "estimate": estimate,
            "error_pct": round(error, 3),
            "key": counter.key(),
            "bytes": state.bytes if state else None,
            "encoding": state.encoding if state else None,
            "shop_unique_visitors_7d": ctx.shop.unique_visitors(),
        },
    )
