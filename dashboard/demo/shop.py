"""A small shop built only on the pattern layer (``dashboard.patterns``).

* catalog: products read through cache-aside with stampede protection (``cache``);
  the "database" is an in-process table with a simulated query latency;
* login sessions with a sliding TTL and a cart in the session (``sessions``);
* per-user rate limiting of every API call (``ratelimit``, sliding window);
* payment under a per-account lock whose fencing token the payment ledger checks
  (``locks``): a holder whose lease ran out cannot charge twice;
* order events on a stream, processed by a consumer group of workers
  (``streams``, :mod:`dashboard.demo.fulfillment`);
* "your order shipped" notifications over pub/sub, received by a resubscribing
  subscriber (``pubsub``);
* a daily best-sellers leaderboard (``leaderboard``) and unique visitors per day in a
  HyperLogLog (``counters``).

Every name comes from :class:`~dashboard.demo.target.DemoTarget`, so on an external
Redis everything lands under ``demo:`` (see that module).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dashboard.demo.fulfillment import Fulfillment, WorkerTimings
from dashboard.demo.target import DemoTarget
from dashboard.patterns import streams
from dashboard.patterns.cache import Cache
from dashboard.patterns.counters import UniqueCounter, daily_periods
from dashboard.patterns.leaderboard import Leaderboard
from dashboard.patterns.locks import LockManager
from dashboard.patterns.pubsub import Message, Subscriber, publish
from dashboard.patterns.ratelimit import Decision, RateLimiter
from dashboard.patterns.sessions import SessionStore

PRODUCTS = {
    i + 1: {"id": i + 1, "name": name, "price_cents": price}
    for i, (name, price) in enumerate(
        [
            ("Espresso beans 1 kg", 2490), ("Pour-over kettle", 5900), ("Ceramic dripper", 2200),
            ("Paper filters x100", 650), ("Burr grinder", 14900), ("Milk jug", 1800),
            ("Travel mug", 2400), ("Scale 0.1 g", 3900), ("Cold brew jar", 2900),
            ("Tamper", 3400), ("Knock box", 2100), ("Decaf beans 500 g", 1390),
            ("Cleaning tablets", 990), ("Chemex 6 cup", 4900), ("Aeropress", 3990),
            ("Moka pot", 3290), ("Cup set x4", 2800), ("Barista apron", 3100),
        ]
    )
}  # fmt: skip
ORDER_GROUP = "fulfillment"
STREAM_MAXLEN = 10_000


class ApiRateLimited(RuntimeError):
    """The shop's API answered 429 for this user."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"429 Too Many Requests (retry in {decision.retry_after_s:.1f}s)")
        self.decision = decision


class StaleFence(RuntimeError):
    """The ledger refused a charge made with an older fencing token."""


@dataclass(frozen=True)
class ShopConfig:
    db_latency_s: float = 0.02
    cache_ttl_s: float = 60.0
    session_ttl_s: float = 300.0
    api_limit: int = 60
    api_window_s: float = 10.0
    payment_lock_ttl_s: float = 5.0
    visitors_keep_days: int = 7
    workers: tuple[str, ...] = ("worker-1", "worker-2", "worker-3")
    timings: WorkerTimings | None = None


class FencedLedger:
    """The payment provider (outside Redis): it remembers the highest fence per account
    and refuses a charge carrying a lower one. This is what makes the lock safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fences: dict[str, int] = {}
        self.charges = 0
        self.refused = 0

    def charge(self, account: str, fence: int, cents: int) -> None:
        with self._lock:
            last = self._fences.get(account, 0)
            if fence < last:
                self.refused += 1
                raise StaleFence(f"fence {fence} < {last} already seen for account {account}")
            self._fences[account] = fence
            self.charges += 1


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.values[name] = self.values.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.values)


class Shop:
    """The shop's services; thread-safe (the simulator calls it from several threads)."""

    def __init__(
        self,
        target: DemoTarget,
        client: Any,
        config: ShopConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.target, self.client = target, client
        self.config = c = config or ShopConfig()
        self.clock, self.sleep = clock, sleep
        self.counters = _Counters()
        self.ledger = FencedLedger()
        self.cache = Cache(
            client,
            prefix=target.name("cache"),
            ttl=c.cache_ttl_s,
            stale_grace=5.0,
            lock_timeout=5.0,
            wait_timeout=2.0,
            stats_flush_interval=5.0,
        )
        self.sessions = SessionStore(client, ttl=c.session_ttl_s, prefix=target.name("session"))
        self.api = RateLimiter(
            client, target.limiter("shop-api"), c.api_limit, c.api_window_s, "sliding"
        )
        self.locks = LockManager(client, ttl=c.payment_lock_ttl_s, timeout=2.0)
        self.orders_stream = target.name("shop", "orders")
        self.channel_prefix = target.name("shop", "notifications")
        self.visitors = UniqueCounter(
            client, "visitors", ttl=(c.visitors_keep_days + 1) * 86400, prefix=target.name("hll")
        )
        self.notifications: deque[dict[str, Any]] = deque(maxlen=50)
        self.fulfillment = Fulfillment(
            client, self.orders_stream, ORDER_GROUP, self._fulfil, c.workers, c.timings
        )
        self._subscriber: Subscriber | None = None
        self.started = False

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> Shop:
        """Start the order workers and the notification subscriber (idempotent)."""
        if not self.started:
            self.fulfillment.start()
            self._subscriber = Subscriber(
                self.client,
                patterns=[self.channel_prefix + ":*"],
                handler=self._notified,
                ping_interval=10.0,
                name="shop-notifications",
            ).start()
            self._subscriber.wait_subscribed(5.0)
            self.started = True
        return self

    def stop(self) -> None:
        self.fulfillment.stop()
        if self._subscriber is not None:
            self._subscriber.stop()
        self.cache.flush_stats()
        self.started = False

    # --- names -------------------------------------------------------------------------
    def best_sellers(self, day: str | None = None) -> Leaderboard:
        day = day or self.today()
        return Leaderboard(
            self.client,
            "best-sellers",
            period=day,
            ttl=8 * 86400,
            prefix=self.target.name("leaderboard"),
        )

    def today(self) -> str:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC).date().isoformat()

    def channel(self, user: str) -> str:
        return f"{self.channel_prefix}:{user}"

    def payment_resource(self, user: str) -> str:
        return self.target.name("payment", user)

    # --- API ---------------------------------------------------------------------------
    def api_call(self, user: str, cost: int = 1) -> Decision:
        """Every API request of a user passes the limiter first; raises on 429."""
        decision = self.api.hit(user, cost)
        self.counters.add("api_allowed" if decision.allowed else "api_denied")
        if not decision.allowed:
            raise ApiRateLimited(decision)
        return decision

    def _load_product(self, product_id: int) -> dict[str, Any] | None:
        """The slow path: a database query."""
        self.counters.add("db_queries")
        self.sleep(self.config.db_latency_s)
        return PRODUCTS.get(product_id)

    def product(self, product_id: int) -> dict[str, Any] | None:
        """Catalog read: cache-aside, one recomputation per miss across all processes."""
        return self.cache.get_or_set(
            f"product:{product_id}", lambda: self._load_product(product_id), tags=("catalog",)
        )

    def visit(self, visitor: str) -> None:
        self.visitors.add(visitor, period=self.today())
        self.counters.add("visits")

    def unique_visitors(self, days: int = 7) -> int:
        last = dt.date.fromisoformat(self.today())
        return self.visitors.count_union(daily_periods(last, days))

    def login(self, user: str) -> str:
        self.api_call(user)
        self.counters.add("logins")
        return self.sessions.create(user, {"cart": []})

    def logout(self, sid: str) -> bool:
        return self.sessions.delete(sid)

    def add_to_cart(self, sid: str, product_id: int, quantity: int = 1) -> list[list[int]]:
        session = self._session(sid)
        self.api_call(session.user_id or "?")
        if self.product(product_id) is None:
            raise ValueError(f"no product {product_id}")
        cart = [*session.data.get("cart", []), [product_id, quantity]][-20:]
        self.sessions.set(sid, "cart", cart)
        return cart

    def checkout(self, sid: str) -> str | None:
        """Pay under the account's lock (fenced), then emit the order event."""
        session = self._session(sid)
        user = session.user_id or "?"
        self.api_call(user)
        cart = session.data.get("cart") or []
        if not cart:
            return None
        total = sum(
            (self.product(pid) or {"price_cents": 0})["price_cents"] * qty for pid, qty in cart
        )
        with self.locks.lock(self.payment_resource(user)) as lock:
            self.ledger.charge(user, lock.fence or 0, total)
            order_id = streams.add(
                self.client,
                self.orders_stream,
                {
                    "user": user,
                    "items": json.dumps(cart),
                    "total_cents": total,
                    "fence": lock.fence or 0,
                },
                maxlen=STREAM_MAXLEN,
            )
        self.sessions.set(sid, "cart", [])
        self.counters.add("orders")
        return order_id

    def emit_order(self, user: str, product_id: int, quantity: int = 1) -> str:
        """An order event without the web flow (the playground's bursts of orders)."""
        return streams.add(
            self.client,
            self.orders_stream,
            {"user": user, "items": json.dumps([[product_id, quantity]]), "total_cents": 0},
            maxlen=STREAM_MAXLEN,
        )

    def _session(self, sid: str) -> Any:
        session = self.sessions.get(sid)
        if session is None:
            raise LookupError("401: session expired or logged out")
        return session

    # --- background handlers -----------------------------------------------------------
    def _fulfil(self, entry: streams.Entry) -> None:
        """One order: count best-sellers, tell the customer."""
        fields = {_text(k): _text(v) for k, v in entry.fields.items()}
        board = self.best_sellers()
        for pid, qty in json.loads(fields.get("items") or "[]"):
            product = PRODUCTS.get(int(pid))
            if product is not None:
                board.increment(product["name"], int(qty))
        user = fields.get("user", "?")
        publish(self.client, self.channel(user), {"order": entry.id, "status": "shipped"})
        self.counters.add("fulfilled")

    def _notified(self, message: Message) -> None:
        self.notifications.append({"channel": message.channel, "data": message.data})
        self.counters.add("notifications")

    # --- read side for the page --------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        sub = self._subscriber.stats() if self._subscriber is not None else None
        return {
            "started": self.started,
            "counters": self.counters.snapshot(),
            "cache": self.cache.stats(),
            "ledger": {"charges": self.ledger.charges, "refused": self.ledger.refused},
            "consumers": self.fulfillment.stats(),
            "subscriber": sub,
            "names": {
                "orders_stream": self.orders_stream,
                "order_group": ORDER_GROUP,
                "notifications": self.channel_prefix + ":*",
                "cache_prefix": self.cache.prefix,
                "session_prefix": str(self.sessions.prefix),
                "api_limiter": self.api.name,
            },
        }


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
