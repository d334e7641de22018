"""Traffic for the demo shop: a few background threads playing many users.

Knobs (changed while running): ``users`` (distinct customers), ``rps`` (requests per
second across all of them), ``burst_every_s``/``burst_size`` (now and then one user
fires a burst of API calls, so limiters block on ``/ratelimits``) and
``slow_consumer`` (one order worker takes ``slow_s`` extra per order, so its pending
entries and the group's lag grow on ``/streams``).

Bounded: at most :data:`MAX_THREADS` threads whatever the knobs; ``users`` and
``rps`` are capped; each user keeps at most one session; errors are counted and the
last few kept, never accumulated.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from dashboard.demo.shop import PRODUCTS, ApiRateLimited, Shop

MAX_USERS = 10_000
MAX_RPS = 500.0
MAX_THREADS = 8
MAX_BURST = 1_000
FIRST_BURST_S = 3.0  # the first burst comes soon, so /ratelimits has a blocked user early


@dataclass
class Knobs:
    users: int = 40
    rps: float = 25.0
    burst_every_s: float = 20.0  # 0: no bursts
    burst_size: int = 100
    slow_consumer: bool = False
    slow_s: float = 0.5

    def checked(self) -> Knobs:
        if not 1 <= self.users <= MAX_USERS:
            raise ValueError(f"users must be 1..{MAX_USERS}, got {self.users}")
        if not 0.1 <= self.rps <= MAX_RPS:
            raise ValueError(f"requests per second must be 0.1..{MAX_RPS:g}, got {self.rps:g}")
        if self.burst_every_s < 0 or not 1 <= self.burst_size <= MAX_BURST:
            raise ValueError(f"burst size must be 1..{MAX_BURST} and its interval >= 0")
        if not 0 <= self.slow_s <= 10:
            raise ValueError(f"slow consumer delay must be 0..10 s, got {self.slow_s:g}")
        return self


class _Pacer:
    """Hands out request slots ``1/rps`` apart to any number of threads."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def slot(self, rps: float) -> float:
        """Seconds to wait before the caller's request."""
        with self._lock:
            now = self.clock()
            self._next = max(self._next + 1.0 / rps, now - 1.0)  # no catch-up storm
            return max(0.0, self._next - now)


class Simulator:
    """Start/stop background users against a :class:`Shop`."""

    def __init__(
        self,
        shop: Shop,
        knobs: Knobs | None = None,
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shop = shop
        self.knobs = (knobs or Knobs()).checked()
        self.clock = clock
        self.rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sessions: dict[str, str] = {}
        self._sessions_lock = threading.Lock()
        self._pacer = _Pacer(clock)
        self._last_burst = clock()
        self.requests = 0
        self.bursts = 0
        self.errors: deque[str] = deque(maxlen=5)
        self.error_count = 0
        self.started_at: float | None = None

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        if self.running:
            return
        self.shop.start()
        self._apply_slow()
        self._stop.clear()
        self.started_at = self.clock()
        self._last_burst = self.started_at - max(0.0, self.knobs.burst_every_s - FIRST_BURST_S)
        self._threads = [  # enough for MAX_RPS; idle ones just wait for their slot
            threading.Thread(target=self._loop, name=f"demo-user-{i}", daemon=True)
            for i in range(MAX_THREADS)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        self.started_at = None

    def update(self, **values: Any) -> Knobs:
        """Change knobs (validated as a whole, applied at once)."""
        knobs = Knobs(**{**asdict(self.knobs), **values}).checked()
        self.knobs = knobs
        with self._sessions_lock:  # users shrank: forget the sessions of those gone
            for user in [u for u in self._sessions if int(u.split("-")[1]) >= knobs.users]:
                del self._sessions[user]
        self._apply_slow()
        return knobs

    def _apply_slow(self) -> None:
        workers = list(self.shop.fulfillment.consumers)
        slow = workers[-1] if self.knobs.slow_consumer and workers else None
        self.shop.fulfillment.set_slow(slow, self.knobs.slow_s)

    # --- the users -----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._stop.wait(self._pacer.slot(self.knobs.rps)):
                return
            try:
                self._one_request()
            except (ApiRateLimited, LookupError):
                pass  # a 429 or an expired session: what real users get too
            except Exception as exc:  # counted: one user's error ends nothing
                self.error_count += 1
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])

    def _one_request(self) -> None:
        knobs = self.knobs
        with self._rng_lock:
            user = f"user-{self.rng.randrange(knobs.users)}"
            roll = self.rng.random()
            product = self.rng.choice(list(PRODUCTS))
            visitor = f"visitor-{self.rng.randrange(knobs.users * 50)}"
            burst_due = knobs.burst_every_s > 0 and (
                self.clock() - self._last_burst >= knobs.burst_every_s
            )
            if burst_due:
                self._last_burst = self.clock()
            self.requests += 1
        if burst_due:
            self._burst(user, knobs.burst_size)
        elif roll < 0.35:
            self.shop.visit(visitor)
            self.shop.product(product)
        elif roll < 0.55:
            self.shop.api_call(user)
            self.shop.product(product)
        elif roll < 0.80:
            self.shop.add_to_cart(self._session(user), product, 1 + (product % 2))
        elif roll < 0.95:
            self.shop.checkout(self._session(user))
        else:
            self._logout(user)

    def _burst(self, user: str, size: int) -> None:
        self.bursts += 1
        for _ in range(size):
            if self._stop.is_set():
                return
            with contextlib.suppress(ApiRateLimited):
                self.shop.api_call(user)

    def _session(self, user: str) -> str:
        with self._sessions_lock:
            sid = self._sessions.get(user)
        if sid is not None and self.shop.sessions.get(sid) is not None:
            return sid
        sid = self.shop.login(user)
        with self._sessions_lock:
            self._sessions[user] = sid
        return sid

    def _logout(self, user: str) -> None:
        with self._sessions_lock:
            sid = self._sessions.pop(user, None)
        if sid is not None:
            self.shop.logout(sid)

    def stats(self) -> dict[str, Any]:
        running = self.running
        return {
            "running": running,
            "knobs": asdict(self.knobs),
            "threads": len(self._threads) if running else 0,
            "requests": self.requests,
            "bursts": self.bursts,
            "sessions": len(self._sessions),
            "errors": self.error_count,
            "last_errors": list(self.errors),
            "uptime_s": round(self.clock() - self.started_at, 1) if self.started_at else None,
        }
