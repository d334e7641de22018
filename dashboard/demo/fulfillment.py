"""The shop's order workers: one consumer group, a few consumers that can be slowed,
crashed ("killed") and revived, so that pending entries, lag and reclaims show up
on ``/streams`` exactly as they would with real workers.

A killed consumer crash-loops for ``crash_s`` seconds: it keeps taking entries and
fails on each before acknowledging (they stay pending under its name), then it
stops for good. Survivors reclaim what it left once the entries have been idle for
``claim_idle_ms`` (XAUTOCLAIM in :class:`dashboard.patterns.streams.Worker`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dashboard.patterns import streams


class ConsumerCrashed(RuntimeError):
    """Raised by a killed consumer's handler: the entry stays pending."""


@dataclass
class WorkerTimings:
    claim_idle_ms: int = 5000
    claim_every_ms: int = 1000
    block_ms: int = 500
    count: int = 10
    crash_s: float = 3.0


@dataclass
class _Consumer:
    name: str
    worker: streams.Worker | None = None
    slow_s: float = 0.0
    crashing_until: float = 0.0
    status: str = "stopped"  # running | crashing | dead | stopped
    totals: dict[str, int] = field(default_factory=dict)  # of earlier Worker objects


_COUNTERS = ("processed", "failed", "reclaimed", "dead_lettered", "deleted")


class Fulfillment:
    """``handler(entry)`` processes one order; it runs in every consumer's thread."""

    def __init__(
        self,
        client: Any,
        stream: str,
        group: str,
        handler: Callable[[streams.Entry], Any],
        consumers: tuple[str, ...] = ("worker-1", "worker-2", "worker-3"),
        timings: WorkerTimings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.stream, self.group = client, stream, group
        self.handler = handler
        self.timings = timings or WorkerTimings()
        self.clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.consumers = {name: _Consumer(name) for name in consumers}

    def start(self) -> None:
        streams.ensure_group(self.client, self.stream, self.group, start_id="0")
        self._stop.clear()
        for consumer in self.consumers.values():
            if consumer.status != "dead":
                self._start(consumer)

    def stop(self) -> None:
        self._stop.set()
        for consumer in self.consumers.values():
            if consumer.worker is not None:
                consumer.worker.stop(timeout=5)
            if consumer.status != "dead":
                consumer.status = "stopped"

    def _start(self, consumer: _Consumer) -> None:
        t = self.timings
        if consumer.worker is not None:
            consumer.worker.stop(timeout=5)
            _add(consumer.totals, consumer.worker.stats())
        consumer.worker = streams.Worker(
            self.client,
            self.stream,
            self.group,
            consumer.name,
            lambda entry, c=consumer: self._handle(c, entry),
            count=t.count,
            block_ms=t.block_ms,
            claim_idle_ms=t.claim_idle_ms,
            claim_every_ms=t.claim_every_ms,
        ).start()
        consumer.status = "running"

    def _handle(self, consumer: _Consumer, entry: streams.Entry) -> None:
        if self.clock() < consumer.crashing_until:
            raise ConsumerCrashed(f"{consumer.name} crashed before acknowledging {entry.id}")
        if consumer.slow_s:
            self._stop.wait(consumer.slow_s)
        self.handler(entry)

    def kill(self, name: str) -> float:
        """Crash-loop ``name`` for ``crash_s`` seconds, then stop it; returns crash_s."""
        consumer = self._get(name)
        crash_s = self.timings.crash_s
        with self._lock:
            if consumer.status != "running":
                raise ValueError(f"consumer {name} is {consumer.status}, not running")
            consumer.crashing_until = self.clock() + crash_s
            consumer.status = "crashing"
        timer = threading.Timer(crash_s, self._bury, args=(consumer,))
        timer.daemon = True
        timer.start()
        return crash_s

    def _bury(self, consumer: _Consumer) -> None:
        """Stop the crashed consumer's thread, then call it dead (not before: its last
        batch may still add pending entries)."""
        with self._lock:
            if consumer.status != "crashing":  # revived meanwhile
                return
            worker = consumer.worker
        if worker is not None:
            worker.stop(timeout=5)
        with self._lock:
            if consumer.status == "crashing":
                consumer.status = "dead"
            elif consumer.status == "running" and not self._stop.is_set():
                self._start(consumer)  # revived while we were stopping it

    def revive(self, name: str) -> None:
        """Start ``name`` again (it first re-reads what is still pending under its name)."""
        consumer = self._get(name)
        with self._lock:
            consumer.crashing_until = 0.0
            if consumer.status == "crashing":  # still running: just stop failing
                consumer.status = "running"
            elif consumer.status in {"dead", "stopped"} and not self._stop.is_set():
                self._start(consumer)

    def set_slow(self, name: str | None, seconds: float) -> None:
        """Make one consumer (or none) take ``seconds`` extra per entry."""
        for consumer in self.consumers.values():
            consumer.slow_s = seconds if consumer.name == name else 0.0

    def _get(self, name: str) -> _Consumer:
        if name not in self.consumers:
            raise ValueError(f"no consumer {name!r}; consumers: {', '.join(self.consumers)}")
        return self.consumers[name]

    def stats(self) -> list[dict[str, Any]]:
        """Per consumer: status, slowness and the worker counters (all incarnations)."""
        out = []
        for c in self.consumers.values():
            counts = dict.fromkeys(_COUNTERS, 0)
            _add(counts, c.totals)
            if c.worker is not None:
                _add(counts, c.worker.stats())
            out.append({"name": c.name, "status": c.status, "slow_s": c.slow_s, **counts})
        return out


def _add(into: dict[str, int], stats: dict[str, Any]) -> None:
    for name in _COUNTERS:
        into[name] = into.get(name, 0) + int(stats.get(name) or 0)
