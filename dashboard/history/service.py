"""One target's history: its store, its one writer, the recorder the observer feeds,
and retention. Made beside the target's observer (``web.state.AppState``)."""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from typing import Any

from dashboard.history import queries
from dashboard.history.retention import Retention, apply
from dashboard.history.sampling import Recorder
from dashboard.history.store import Store
from dashboard.history.writer import Writer

_OPEN: weakref.WeakSet[History] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """A dashboard stopping (SIGTERM to gunicorn) writes what is queued before it goes."""
    for history in list(_OPEN):
        history.close()


class History:
    """The state store of one target, written by one writer thread."""

    def __init__(self, settings: Any, *, target: str = "", url: str = "") -> None:
        self.settings = settings
        self.interval_s = float(settings.history_interval)
        self.retention = Retention.from_settings(settings)
        self.store = Store(settings.state, target=target, url=url)
        self.last_maintenance: dict[str, Any] | None = None
        self._maintained = threading.Lock()
        self.writer = Writer(self.store, maintenance=self.maintain)
        self.recorder = Recorder(self.writer, settings)
        _OPEN.add(self)

    def attach(self, observer: Any) -> None:
        """Record the observer's readings and scans from now on."""
        observer.subscribe(self.recorder)

    def maintain(self, now: float | None = None) -> dict[str, Any]:
        """Downsample, and enforce the age and size limits (the writer runs it hourly)."""
        with self._maintained:
            done = self.store.maintain(lambda conn: apply(conn, self.retention, now))
            self.last_maintenance = {"at": round(time.time(), 3), **done}
            return self.last_maintenance

    @property
    def generation(self) -> int:
        """Bumps with every write: views use it to tell a new picture of the history."""
        return self.writer.written

    def status(self, counts: bool = True) -> dict[str, Any]:
        """Where the history is kept and how it is doing (the pages and /metrics show it);
        ``counts=False`` skips counting rows (``/metrics`` does not show them)."""
        found = queries.counts(self.store) if counts else {}
        return {
            "enabled": True,
            "mode": self.store.mode,
            "path": self.store.path,
            "requested_path": self.store.requested_path or None,
            "warning": self.store.warning,
            "size_bytes": self.store.size_bytes(),
            "max_bytes": self.retention.max_bytes,
            "retention_days": round(self.retention.max_age_s / 86400, 3),
            "interval_s": self.interval_s,
            "scans": found.get("scans"),
            "series": found.get("series"),
            "samples": found.get("samples"),
            "first_sample": found.get("first_sample"),
            "last_sample": found.get("last_sample"),
            "first_scan": found.get("first_scan"),
            "written": self.writer.written,
            "dropped": self.writer.dropped,
            "write_errors": self.writer.errors,
            "last_error": self.writer.last_error,
            "last_maintenance": self.last_maintenance,
        }

    def close(self) -> None:
        if self not in _OPEN:
            return
        _OPEN.discard(self)
        self.writer.close()
        self.store.close()


def disabled_status() -> dict[str, Any]:
    """The status of a target whose history is off (``--no-state``)."""
    return {
        "enabled": False,
        "mode": "off",
        "path": None,
        "warning": None,
        "reason": "history is off (--no-state): the dashboard keeps nothing between readings",
    }
