"""What the locks readings saw over time: acquisitions, holders and contention.

A lock is often held for a millisecond: a reading once a second almost never catches
a holder, so "held now" alone makes a busy lock look idle. The readings already carry
our lock layout's counters (``lock:{r}:info``: attempts, failures, waits, releases,
hold time, and the fencing counter, INCR'd by every acquisition), so the difference
between two readings says how many acquisitions and failed attempts happened in
between, without one more Redis read. Foreign layouts keep no counters; for them a
new holder seen between readings counts as one acquisition.

:class:`LockHistory` keeps, bounded: the last counters per lock, the newest
``max_events`` events, and a timeline of ``bucket_s`` buckets over ``window_s``.
It is fed by the observer (a listener on the ``locks`` reading), so it fills while
someone watches ``/locks`` and costs nothing otherwise.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

_COUNTERS = (
    "attempts",
    "failures",
    "waits",
    "wait_ms_total",
    "releases",
    "hold_ms_total",
    "expired",
)
RESOURCES_SHOWN = 50


def _delta(now: dict[str, Any], before: dict[str, Any], name: str) -> int:
    a, b = now.get(name), before.get(name)
    if a is None or b is None or a < b:  # unknown, or the info hash expired and restarted
        return 0
    return int(a) - int(b)


class LockHistory:
    """Bounded history of lock activity, one :meth:`record` per locks reading."""

    def __init__(
        self,
        *,
        max_events: int = 200,
        window_s: float = 600.0,
        bucket_s: float = 10.0,
        max_locks: int = 5000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_s, self.bucket_s, self.max_locks = window_s, bucket_s, max_locks
        self._clock = clock
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._buckets: deque[dict[str, Any]] = deque(maxlen=int(window_s // bucket_s) + 1)
        self._last: dict[str, dict[str, Any]] = {}
        self._totals: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.samples = 0
        self.since: float | None = None
        self.last_activity: float | None = None

    def record(self, reading: dict[str, Any], at: float | None = None) -> None:
        """Fold one locks reading (``read_live``'s data) into the history."""
        now = at if at is not None else self._clock()
        with self._lock:
            self.samples += 1
            self.since = self.since or now
            seen: dict[str, dict[str, Any]] = {}
            for entry in reading.get("entries", ()):
                ident = str(entry.get("id") or entry.get("key"))
                seen[ident] = entry
                before = self._last.get(ident)
                if before is not None:
                    self._compare(ident, entry, before, now)
            for ident, before in self._last.items():
                if ident not in seen and before.get("held"):
                    self._event(now, before, "released", 1, holder=before.get("holder"))
            self._last = dict(list(seen.items())[: self.max_locks])

    def _compare(self, ident: str, now_: dict, before: dict, at: float) -> None:
        ours = now_.get("last_fence") is not None and before.get("last_fence") is not None
        if ours:
            acquired = _delta(now_, before, "last_fence")
        else:
            changed = now_.get("held") and now_.get("holder") != before.get("holder")
            acquired = 1 if changed else 0
        deltas = {name: _delta(now_, before, name) for name in _COUNTERS}
        if acquired:
            holder = now_.get("holder") if now_.get("held") else None
            self._event(at, now_, "acquired", acquired, holder=holder, fence=now_.get("last_fence"))
        if deltas["failures"]:
            self._event(at, now_, "contended", deltas["failures"], holder=now_.get("holder"))
        if deltas["expired"]:
            self._event(at, now_, "expired", deltas["expired"])
        if before.get("held") and not now_.get("held") and not acquired:
            self._event(at, now_, "released", 1, holder=before.get("holder"))
        if not (acquired or deltas["failures"] or deltas["waits"]):
            return
        self.last_activity = at
        total = self._totals.setdefault(
            ident,
            {
                "resource": now_.get("resource"),
                "key": now_.get("key"),
                "id": now_.get("id"),
                "layout": now_.get("layout"),
                "acquired": 0,
                "contended": 0,
                "waits": 0,
                "wait_ms": 0,
                "releases": 0,
                "hold_ms": 0,
                "last_at": at,
            },
        )
        total["acquired"] += acquired
        total["contended"] += deltas["failures"]
        total["waits"] += deltas["waits"]
        total["wait_ms"] += deltas["wait_ms_total"]
        total["releases"] += deltas["releases"]
        total["hold_ms"] += deltas["hold_ms_total"]
        total["last_at"] = at
        if now_.get("held"):
            total["last_holder"] = now_.get("holder")
        if len(self._totals) > self.max_locks:
            oldest = min(self._totals, key=lambda k: self._totals[k]["last_at"])
            del self._totals[oldest]
        bucket = self._bucket(at)
        bucket["acquired"] += acquired
        bucket["contended"] += deltas["failures"]

    def _bucket(self, at: float) -> dict[str, Any]:
        start = at - at % self.bucket_s
        if not self._buckets or self._buckets[-1]["at"] < start:
            self._buckets.append({"at": start, "acquired": 0, "contended": 0})
        return self._buckets[-1]

    def _event(self, at: float, entry: dict, kind: str, count: int, **extra: Any) -> None:
        self._events.append(
            {
                "at": round(at, 3),
                "kind": kind,
                "count": count,
                "resource": entry.get("resource"),
                "key": entry.get("key"),
                "id": entry.get("id"),
                "layout": entry.get("layout"),
                **extra,
            }
        )

    def active(self, within_s: float = 60.0) -> bool:
        """Whether anything happened recently (or, with one reading of some locks, whether
        it is too early to tell)."""
        with self._lock:
            if self.samples < 2:
                return bool(self._last)
            return self.last_activity is not None and self._clock() - self.last_activity < within_s

    def view(self, q: str = "") -> dict[str, Any]:
        """Plain data for ``/locks``: events (newest first), per-lock totals over the
        window (most contended first), the timeline. ``q`` filters like the page."""
        needle = q.strip().lower()

        def wanted(item: dict[str, Any]) -> bool:
            fields = (item.get("resource"), item.get("key"), item.get("layout"))
            return not needle or any(needle in str(f or "").lower() for f in fields)

        now = self._clock()
        with self._lock:
            horizon = now - self.window_s
            events = [e for e in reversed(self._events) if e["at"] >= horizon and wanted(e)]
            totals = [dict(t) for t in self._totals.values() if t["last_at"] >= horizon]
            buckets = [dict(b) for b in self._buckets if b["at"] >= horizon]
        locks = [t for t in totals if wanted(t)]
        for t in locks:
            t["avg_wait_ms"] = t["wait_ms"] / t["waits"] if t["waits"] else None
            t["avg_hold_ms"] = t["hold_ms"] / t["releases"] if t["releases"] else None
        locks.sort(key=lambda t: (-t["contended"], -t["acquired"], str(t["resource"])))
        return {
            "events": events[:100],
            "locks": locks[:RESOURCES_SHOWN],
            "timeline": buckets,
            "window_s": self.window_s,
            "bucket_s": self.bucket_s,
            "since": self.since,
            "samples": self.samples,
            "acquired": sum(b["acquired"] for b in buckets),
            "contended": sum(b["contended"] for b in buckets),
        }
