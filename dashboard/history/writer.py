"""The one writer of a state store: a thread fed by a bounded queue.

The observer's listeners run on its reader threads and must stay short, so they only
put an operation on the queue (:meth:`Writer.submit`); this thread takes whatever has
queued up and writes it in one transaction, and runs retention (downsampling, age and
size limits) every ``maintenance_every_s``. A full queue (the disk stalled) drops the
newest operation and counts it instead of growing without bound.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from dashboard.history.store import Store

log = logging.getLogger(__name__)

Op = Callable[[sqlite3.Connection], Any]
QUEUE_SIZE = 2000
BATCH = 500
FAILURES_BEFORE_FALLBACK = 3


class Writer:
    """Writes queued operations to ``store`` on one thread; runs ``maintenance`` too."""

    def __init__(
        self,
        store: Store,
        *,
        maintenance: Callable[[], Any] | None = None,
        maintenance_every_s: float = 3600.0,
        start: bool = True,
    ) -> None:
        self.store = store
        self.maintenance = maintenance
        self.maintenance_every_s = maintenance_every_s
        self._queue: queue.Queue[Op | threading.Event | None] = queue.Queue(QUEUE_SIZE)
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: str | None = None
        self._failures = 0
        self._next_maintenance = time.monotonic()  # once at start, then periodically
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._closed = False
        if start:
            self._thread.start()

    def submit(self, op: Op) -> bool:
        """Queue ``op``; False (and counted) when the queue is full or the writer closed."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(op)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written; True if it was in time."""
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def run_maintenance_now(self, timeout: float = 30.0) -> bool:
        """Ask for retention at once (tests, and after a big import); waits for it."""
        self._next_maintenance = 0.0
        return self.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            wait = max(0.05, min(5.0, self._next_maintenance - time.monotonic()))
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = False  # nothing queued: time for maintenance, perhaps
            ops: list[Op] = []
            events: list[threading.Event] = []
            stop = False
            while item is not False:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    events.append(item)
                else:
                    ops.append(item)
                if len(ops) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if ops:
                self._write(ops)
            if time.monotonic() >= self._next_maintenance:
                self._maintain()
            for event in events:
                event.set()
            if stop:
                return

    def _write(self, ops: list[Op]) -> None:
        try:
            self.store.write(ops)
        except Exception as exc:  # a full disk, a file removed under us, a bug in one op
            self.errors += 1
            self._failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("history: writing %d rows failed: %s", len(ops), self.last_error)
            if isinstance(exc, sqlite3.Error) and self._failures >= FAILURES_BEFORE_FALLBACK:
                self.store.fall_back(self.last_error)
                self._failures = 0
            return
        self._failures = 0
        self.written += len(ops)

    def _maintain(self) -> None:
        self._next_maintenance = time.monotonic() + self.maintenance_every_s
        if self.maintenance is None:
            return
        try:
            self.maintenance()
        except Exception as exc:  # retention must not stop the writer
            self.errors += 1
            self.last_error = f"retention: {type(exc).__name__}: {exc}"
            log.warning("history: %s", self.last_error)
