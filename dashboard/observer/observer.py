"""The observer: one background reader per inspected Redis, and the picture it keeps.

Views never ask Redis for what a page shows; they ask the observer, which answers
from memory with the data's age (``freshness``). The observer decides when Redis
is read:

* **Live sections** (rate limits, locks, streams, pub/sub channels, the overview)
  refresh every ``live_refresh_s`` / ``server_refresh_s`` while someone watches
  them (a lease of ``watch_lease_s`` that every page view renews), once per cadence
  however many watch, never two refreshes of one section at once.
* **The keyspace cycle** (one scan feeding keyspace, audit and metrics) runs at
  start, every ``rescan_interval`` seconds, and on demand; never two at once.
* **The node map** is re-read after errors that mean the topology moved (and
  every ``TOPOLOGY_EVERY_S``), so a failover or resharding is followed without a
  restart.

A scheduler thread wakes at the earliest due time and hands due sections to a
small pool of reader threads. Nothing here renders or knows about Flask.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dashboard.connection import mask_url
from dashboard.deadline import deadline
from dashboard.inspect.audit import AuditConfig
from dashboard.inspect.errors import describe_error
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.nodes import is_topology_error, refresh_topology
from dashboard.observer import readers
from dashboard.observer.keyspace import KeyspaceCycle
from dashboard.observer.section import Section

log = logging.getLogger(__name__)

READER_THREADS = 4
PARAMETERIZED_KEPT = 8  # distinct match globs kept per kind (streams, pubsub)
TOPOLOGY_EVERY_S = 30.0
TOPOLOGY_MIN_GAP_S = 1.0
TICK_S = 0.25


class UnknownSection(KeyError):
    """A section name the observer does not have."""


class Observer:
    """Everything one dashboard knows about one Redis (a *target*)."""

    def __init__(
        self,
        client: Any,
        settings: Any,
        *,
        name: str = "default",
        audit_config: AuditConfig | None = None,
        start: bool = True,
    ) -> None:
        self.client = client
        self.settings = settings
        self.name = name
        self.url = mask_url(settings.url)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._pool = ThreadPoolExecutor(READER_THREADS, thread_name_prefix=f"observer-{name}")
        self.live_keys = readers.LiveKeys(settings)
        self.stream_watch = readers.StreamWatch(client, settings)
        self._sections: OrderedDict[str, Section] = OrderedDict()
        self._listeners: list[Callable[[str, Any, float | None], None]] = []
        self._topology_at = time.monotonic()
        self.topology_events: list[dict[str, Any]] = []
        self.keyspace = KeyspaceCycle(
            client,
            ScanOptions.from_settings(settings),
            audit_config=audit_config,
            target=self.url,
            rescan_interval_s=settings.rescan_interval,
            on_failure=self._after_error,
            on_finished=lambda picture: self._publish("keyspace", picture, None),
        )
        for kind in readers.KINDS.values():  # sampled kinds read even while nobody watches
            if kind.idle_period is not None and kind.idle_period(settings) is not None:
                self.section(kind.name)
        self._thread = threading.Thread(target=self._loop, name=f"observer-{name}", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Begin reading: the first scan, then the schedule. Made with ``start=False``,
        an observer gets its listeners (history) before its first reading."""
        with self._lock:
            if self._thread.is_alive() or self._thread.ident is not None:
                return
            self.keyspace.request("first scan at start")
            self._thread.start()

    # --- sections ------------------------------------------------------------------------

    def _make(self, kind: readers.Kind, param: str | None) -> Section:
        s = self.settings
        name = kind.name if param is None else f"{kind.name}:{param}"
        return Section(
            name,
            self._guarded(name, lambda: kind.read(self, param)),
            period_s=kind.period(s),
            lease_s=s.watch_lease_s,
            # only the unfiltered reading of a parameterized kind is sampled while idle
            idle_period_s=None
            if kind.idle_period is None or param not in (None, "*")
            else kind.idle_period(s),
            describe=lambda exc: describe_error(kind.name, exc),
        )

    def _guarded(self, name: str, reader: Callable[[], Any]) -> Callable[[], Any]:
        """The reader under one deadline (``request_timeout``: a stalled Redis costs a
        refresh that long, not the sum of its commands' timeouts), reporting errors
        that mean the topology moved and publishing good readings."""

        def run() -> Any:
            started = time.time()
            try:
                with deadline(self.settings.request_timeout):
                    data = reader()
            except Exception as exc:
                self._after_error(exc)
                raise
            self._publish(name, data, started)
            return data

        return run

    def subscribe(self, listener: Callable[[str, Any, float | None], None]) -> None:
        """Call ``listener(section, data, as_of)`` after every good reading, and
        ``listener("keyspace", picture, None)`` after every finished scan (history,
        metrics). Listeners run on the reader's thread: keep them short."""
        with self._lock:
            self._listeners.append(listener)

    def _publish(self, name: str, data: Any, as_of: float | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, data, as_of)
            except Exception:  # a listener's bug must not fail the reading
                log.exception("observer %s: listener failed on %s", self.name, name)

    def section(self, kind: str, param: str | None = None) -> Section:
        """The section of ``kind`` (and ``param``, e.g. a match glob), made on first use."""
        spec = readers.KINDS.get(kind)
        if spec is None:
            raise UnknownSection(kind)
        param = (param or "*") if spec.parameterized else None
        name = kind if param is None else f"{kind}:{param}"
        with self._lock:
            section = self._sections.get(name)
            if section is None:
                section = self._make(spec, param)
                self._sections[name] = section
                made = [n for n in self._sections if n.startswith(kind + ":")]
                for old in made[:-PARAMETERIZED_KEPT]:
                    if not self._sections[old].watched():
                        del self._sections[old]
            else:
                self._sections.move_to_end(name)
            return section

    def read(
        self, kind: str, param: str | None = None, *, wait_s: float | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """``(data, freshness)`` for a view; marks the section watched.

        When nobody watched the section before, its data is missing or old: the view
        waits up to ``wait_s`` (``first_wait_s``) for a fresh reading, joined by every
        other viewer arriving meanwhile.
        """
        section = self.section(kind, param)
        wait = self.settings.first_wait_s if wait_s is None else wait_s
        generation = section.generation
        if section.watch():
            fresh = section.freshness()
            old = fresh["age_ms"] is not None and fresh["age_ms"] > section.period_s * 2000
            if generation == 0 or old:
                section.request()
            self._wake.set()
            if old and wait > 0:
                section.wait_newer(generation, wait)
        if section.generation == 0 and wait > 0:
            section.wait_first(wait)
        return section.current()

    def refresh(
        self,
        kind: str,
        param: str | None = None,
        *,
        timeout: float = 30.0,
        younger_than_ms: float = 0.0,
    ) -> tuple[Any, dict[str, Any]]:
        """Read now (joining a refresh already under way) and wait for the result.

        For explicit requests ("Check again", ``?fresh=1``, after an action, tests); a
        reading younger than ``younger_than_ms`` is good enough and is not re-read.
        """
        section = self.section(kind, param)
        section.watch()
        age = section.freshness()["age_ms"]
        if younger_than_ms and age is not None and age < younger_than_ms and not section.error:
            return section.current()
        generation = section.generation
        spec = readers.KINDS[kind]
        if spec.expire is not None:
            spec.expire(self)
        section.request()
        self._wake.set()
        section.wait_newer(generation + (1 if section.refreshing else 0), timeout)
        return section.current()

    @property
    def stream_history(self) -> Any:
        """Lag samples per (stream, group), filled by every streams refresh."""
        return self.stream_watch.history

    # --- the keyspace --------------------------------------------------------------------

    def rescan(self, reason: str = "on demand") -> bool:
        """Start a keyspace scan now, unless one is running (then it is joined)."""
        return self.keyspace.request(reason)

    def scan_picture(self, *, wait_s: float = 0.0) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """``(last finished scan picture or None, cycle status)``."""
        if self.keyspace.picture is None and wait_s > 0:
            self.keyspace.wait(wait_s)
        return self.keyspace.picture, self.keyspace.status()

    # --- the scheduler -------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._closed.is_set():
            wait = TICK_S
            try:
                wait = self._tick()
            except Exception:  # the scheduler must outlive any bug in one section
                log.exception("observer %s: scheduler error", self.name)
            self._wake.wait(wait)
            self._wake.clear()

    def _tick(self) -> float:
        """Start every due refresh; returns how long to sleep (until the next one is due)."""
        if self.keyspace.due():
            self.keyspace.request("scheduled re-scan")
        with self._lock:
            sections = list(self._sections.values())
        wait = TICK_S
        for section in sections:
            due = section.due_in()
            if due is not None and due <= 0 and section.claim():
                self._pool.submit(self._run_section, section)
            elif due is not None:
                wait = min(wait, max(due, 0.005))
        if time.monotonic() - self._topology_at >= TOPOLOGY_EVERY_S:
            self._topology_at = time.monotonic()
            self._pool.submit(self.refresh_topology, "periodic check", True)
        return wait

    def _run_section(self, section: Section) -> None:
        try:
            section.refresh()
        finally:
            self._wake.set()  # its next refresh may be due sooner than the scheduler's nap

    def _after_error(self, exc: BaseException) -> None:
        if is_topology_error(exc):
            self.refresh_topology(describe_error("read", exc))

    def refresh_topology(self, why: str, force: bool = False) -> bool:
        """Re-read the node map (at most once a ``TOPOLOGY_MIN_GAP_S`` unless ``force``);
        True when the primaries changed."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._topology_at < TOPOLOGY_MIN_GAP_S:
                return False
            self._topology_at = now
        try:
            moved = refresh_topology(self.client)
        except Exception as exc:  # the server may still be down; try again later
            moved = False
            log.debug("observer %s: topology refresh failed: %s", self.name, exc)
        if moved:
            with self._lock:
                did = "the primaries changed: node map re-read"
                self.topology_events.append({"at": round(time.time(), 3), "why": why, "did": did})
                del self.topology_events[:-20]
        return moved

    # --- health --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The reader's own health: every section's freshness, the keyspace cycle, topology."""
        with self._lock:
            sections = list(self._sections.values())
            events = list(self.topology_events)
        return {
            "target": self.name,
            "url": self.url,
            "sections": [s.freshness() | {"watched": s.watched()} for s in sections],
            "keyspace": self.keyspace.status(),
            "topology_events": events,
        }

    def close(self) -> None:
        """Stop the scheduler and the readers (a running scan is cancelled)."""
        self._closed.set()
        self._wake.set()
        self.keyspace.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
