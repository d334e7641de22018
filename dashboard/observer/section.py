"""One piece of the picture: what a reader last read, when, and whether it is still good.

A :class:`Section` wraps a *reader* (a function that asks Redis and returns plain
data) with the bookkeeping every view needs and none should redo:

* **One refresh at a time.** :meth:`Section.claim` lets exactly one caller run the
  reader; everyone else reads the last result. N tabs cost what one costs.
* **Timestamp the data, not the poll.** ``as_of`` is when the reader *started*
  asking Redis (wall clock), so "age" is the data's age, not the request's.
* **Refresh only while watched.** :meth:`watch` extends a lease; a section no
  one watched for ``lease_s`` stops refreshing (unless it has an ``idle_period_s``,
  for sampling). htmx polls send no "closed" event, hence a lease, not a count.
* **Keep the last good picture.** A failed refresh keeps the data and records the
  error; :meth:`freshness` then says ``stale`` with the reason. Retries back off
  (doubling up to ``MAX_BACKOFF_S``) and the backoff resets on the first success.
* **Polls never overlap.** The next refresh is due ``period_s`` after the previous
  one *ended*.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

MAX_BACKOFF_S = 30.0
STALE_FACTOR = 2.5  # data older than this many periods (plus the read time) is stale


class Section:
    """A refreshed reading of one kind (``overview``, ``locks``, ``streams:*``...)."""

    def __init__(
        self,
        name: str,
        reader: Callable[[], Any],
        *,
        period_s: float,
        lease_s: float = 15.0,
        idle_period_s: float | None = None,
        describe: Callable[[BaseException], str] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.reader = reader
        self.period_s = period_s
        self.lease_s = lease_s
        self.idle_period_s = idle_period_s
        self._describe = describe or (lambda exc: f"{type(exc).__name__}: {exc}")
        self._clock, self._monotonic = clock, monotonic
        self._cond = threading.Condition()
        self.data: Any = None
        self.as_of: float | None = None
        self.read_ms: float | None = None
        self.error: str | None = None
        self.error_at: float | None = None
        self.failures = 0
        self.refreshing = False
        self.generation = 0  # bumps with every finished refresh, good or bad
        self.reads = 0
        self._watched_until = 0.0
        self._next_due = 0.0
        self.last_exception: BaseException | None = None

    # --- viewers -----------------------------------------------------------------------

    def watch(self) -> bool:
        """Extend the lease; True when the section was not watched before (wake the reader)."""
        now = self._monotonic()
        with self._cond:
            cold = now >= self._watched_until
            self._watched_until = now + self.lease_s
            return cold

    def watched(self) -> bool:
        return self._monotonic() < self._watched_until

    def wait_first(self, timeout: float) -> bool:
        """Wait until the section has been read once (or failed once); True if it has."""
        deadline = time.monotonic() + timeout  # real time: the injected clock is the data's
        with self._cond:
            while self.generation == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def wait_newer(self, generation: int, timeout: float) -> bool:
        """Wait for a refresh that finished after ``generation``; True if one did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.generation <= generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # --- the scheduler's side ------------------------------------------------------------

    def due_in(self) -> float | None:
        """Seconds until the next refresh is due (<= 0: now); None: nothing to do."""
        now = self._monotonic()
        with self._cond:
            if self.refreshing:
                return None
            if now >= self._watched_until and self.idle_period_s is None:
                return None
            return self._next_due - now

    def request(self) -> None:
        """Make the section due now (an explicit refresh, or the first viewer)."""
        with self._cond:
            self._next_due = 0.0

    def claim(self) -> bool:
        """Take the right to run the reader; False when a refresh already runs."""
        with self._cond:
            if self.refreshing:
                return False
            self.refreshing = True
            return True

    def refresh(self) -> None:
        """Run the reader (the caller claimed it) and record the outcome."""
        started_wall, started = self._clock(), self._monotonic()
        try:
            data = self.reader()
        except Exception as exc:  # any failure keeps the last good data
            self._finish(None, exc, started_wall, started)
        else:
            self._finish(data, None, started_wall, started)

    def _finish(
        self, data: Any, exc: BaseException | None, started_wall: float, started: float
    ) -> None:
        ended = self._monotonic()
        with self._cond:
            self.refreshing = False
            self.generation += 1
            self.reads += 1
            self.read_ms = round((ended - started) * 1000, 1)
            period = self.period_s if ended < self._watched_until else self._idle_period()
            if exc is None:
                self.data, self.as_of = data, started_wall
                self.error = self.error_at = self.last_exception = None
                self.failures = 0
                self._next_due = ended + period
            else:
                self.error, self.error_at = self._describe(exc), self._clock()
                self.last_exception = exc
                self.failures += 1
                backoff = min(period * 2 ** (self.failures - 1), MAX_BACKOFF_S)
                self._next_due = ended + max(backoff, period)
            self._cond.notify_all()

    def _idle_period(self) -> float:
        return self.idle_period_s if self.idle_period_s is not None else self.period_s

    # --- what views show -----------------------------------------------------------------

    def freshness(self) -> dict[str, Any]:
        """How old the data is and whether it can be trusted (every JSON twin has this)."""
        now, mono = self._clock(), self._monotonic()
        with self._cond:
            age = None if self.as_of is None else max(0.0, now - self.as_of)
            expected = self.period_s * STALE_FACTOR + (self.read_ms or 0) / 1000
            if self.data is None and self.as_of is None:
                state = "error" if self.error else "loading"
            elif self.error is not None or (age is not None and age > expected and self.watched()):
                state = "stale"
            else:
                state = "ok"
            retry = None
            if self.error is not None and not self.refreshing:
                retry = round(max(0.0, self._next_due - mono), 1)
            return {
                "section": self.name,
                "state": state,
                "as_of": None if self.as_of is None else round(self.as_of, 3),
                "age_ms": None if age is None else int(age * 1000),
                "refreshing": self.refreshing,
                "period_ms": int(self.period_s * 1000),
                "read_ms": self.read_ms,
                "error": self.error,
                "error_at": None if self.error_at is None else round(self.error_at, 3),
                "failures": self.failures,
                "retry_in_s": retry,
                "generation": self.generation,
            }

    def current(self) -> tuple[Any, dict[str, Any]]:
        """The last good data and its freshness, read together."""
        with self._cond:  # a re-entrant lock: freshness() takes it again
            return self.data, self.freshness()
