"""What the history samples from the observer's readings, and how often.

:class:`Recorder` is an observer listener (``Observer.subscribe``). It runs on the
observer's reader threads, so it only decides whether a reading is due (at most one
sample per section per ``history_interval``) and queues the work; the writer thread
turns the reading into rows. Every finished scan is recorded.

While the store is on, the sampled sections (server overview, rate limits, locks and
streams ``*``) are read every ``history_interval`` even when nobody watches them
(``Kind.idle_period`` in :mod:`dashboard.observer.readers`); watched, they refresh
faster, and the recorder still keeps one sample per interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from dashboard.history.record import COUNTER, GAUGE, record_samples, record_scan
from dashboard.history.writer import Writer

MAX_GROUPS = 200  # stream groups sampled per reading, the most lagging first
SAMPLED = ("overview", "ratelimits", "locks", "streams:*")

Sample = tuple[str, dict[str, str] | None, str, float | None]

# (metric, kind, panel, field) of the overview reading; docs/history.md lists them.
SERVER_FACTS = (
    ("used_memory_bytes", GAUGE, "memory", "used"),
    ("max_memory_bytes", GAUGE, "memory", "max"),
    ("keys", GAUGE, "keyspace", "total_keys"),
    ("keys_with_ttl", GAUGE, "keyspace", "total_expires"),
    ("ops_per_sec", GAUGE, "stats", "ops_per_sec"),
    ("keyspace_hits", COUNTER, "stats", "keyspace_hits"),
    ("keyspace_misses", COUNTER, "stats", "keyspace_misses"),
    ("evicted_keys", COUNTER, "stats", "evicted_keys"),
    ("expired_keys", COUNTER, "stats", "expired_keys"),
    ("connected_clients", GAUGE, "clients", "connected"),
    ("blocked_clients", GAUGE, "clients", "blocked"),
)


def replication_lag(overview: dict[str, Any]) -> float | None:
    """Seconds: a replica's silence from its primary, or a primary's slowest replica."""
    repl = overview.get("replication") or {}
    if not repl.get("available"):
        return None
    if repl.get("master_last_io_seconds_ago") is not None:
        return float(repl["master_last_io_seconds_ago"])
    lags = [r.get("lag") for r in repl.get("replicas") or [] if r.get("lag") is not None]
    return float(max(lags)) if lags else None


def server_samples(overview: dict[str, Any]) -> Iterator[Sample]:
    for metric, kind, panel, name in SERVER_FACTS:
        values = overview.get(panel) or {}
        value = values.get(name) if values.get("available", True) else None
        yield metric, None, kind, value
    yield "replication_lag_seconds", None, GAUGE, replication_lag(overview)


def stream_samples(reading: dict[str, Any]) -> Iterator[Sample]:
    groups = [
        (s["key"], g)
        for s in reading.get("streams") or []
        if not s.get("error")
        for g in s.get("groups") or []
    ]
    groups.sort(key=lambda sg: (-(sg[1].get("lag") or 0), -(sg[1].get("pending") or 0)))
    for stream, group in groups[:MAX_GROUPS]:
        labels = {"stream": stream, "group": group["name"]}
        yield "stream_lag", labels, GAUGE, group.get("lag")
        yield "stream_pending", labels, GAUGE, group.get("pending")


def live_samples(kind: str, reading: dict[str, Any], settings: Any) -> Iterator[Sample]:
    """Limiter or lock counts, once the key search has covered the keyspace."""
    from dashboard.inspect.live.state import lock_view, ratelimit_view

    search = reading.get("search") or {}
    if not (search.get("complete") or search.get("passes")):
        return  # a partial search would record a dip that is not there
    shape = ratelimit_view if kind == "ratelimits" else lock_view
    totals = shape(reading, settings)["totals"]
    prefix = "ratelimit_" if kind == "ratelimits" else "locks_"
    for name, value in totals.items():
        yield prefix + name, None, GAUGE, value


class Recorder:
    """The observer listener that feeds one target's writer."""

    def __init__(self, writer: Writer, settings: Any) -> None:
        self.writer = writer
        self.settings = settings
        self.interval = float(settings.history_interval)
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def due(self, section: str, as_of: float) -> bool:
        """One sample per section per slot of ``interval`` seconds (slots are aligned to
        the clock, so a watched section refreshing every 2 s does not drift ahead)."""
        slot = int(as_of // self.interval)
        with self._lock:
            if self._last.get(section, -1) >= slot:
                return False
            self._last[section] = slot
            return True

    def __call__(self, section: str, data: Any, as_of: float | None) -> None:
        if section == "keyspace":
            if data and data.get("result"):
                self.writer.submit(lambda conn, p=data: record_scan(conn, p))
            return
        if section not in SAMPLED or data is None or as_of is None:
            return
        if not self.due(section, as_of):
            return
        self.writer.submit(self._samples_op(section, data, as_of))

    def _samples_op(self, section: str, data: Any, as_of: float) -> Callable[[Any], Any]:
        settings = self.settings

        def op(conn: Any) -> int:
            if section == "overview":
                samples = server_samples(data)
            elif section == "streams:*":
                samples = stream_samples(data)
            else:
                samples = live_samples(section, data, settings)
            return record_samples(conn, as_of, samples, self.writer.store.series_ids)

        return op
