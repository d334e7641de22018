"""The web's background audit: one run at a time, the last report kept with its age."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dashboard.inspect.errors import CONNECTION_ERRORS

from .engine import Audit


class AuditJob:
    """The web's background audit: one at a time, the last report kept with its age."""

    def __init__(self, factory: Callable[[], Audit], clock: Callable[[], float] = time.time):
        self.factory, self.clock = factory, clock
        self._lock = threading.Lock()
        self._audit: Audit | None = None
        self._thread: threading.Thread | None = None
        self.state = "idle"
        self.error: str | None = None
        self.report: dict[str, Any] | None = None

    def start(self) -> bool:
        """Start a run unless one is running; the previous report stays until it ends."""
        with self._lock:
            if self.state == "running":
                return False
            self._audit = self.factory()
            self.state, self.error = "running", None
            self._thread = threading.Thread(target=self._run, name="audit", daemon=True)
            self._thread.start()
            return True

    def _run(self) -> None:
        audit = self._audit
        assert audit is not None
        try:
            report = audit.run()
        except Exception as exc:  # shown on the page; the user can re-run
            with self._lock:
                self.state = "failed"
                reason = "unreachable" if isinstance(exc, CONNECTION_ERRORS) else "failed"
                self.error = f"audit {reason}: {type(exc).__name__}: {exc}"
            return
        with self._lock:
            self.report, self.state = report, "done"

    def wait(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def snapshot(self) -> dict[str, Any]:
        """State, progress of the running audit, and the age of the kept report."""
        with self._lock:
            audit, report = self._audit, self.report
            progress = audit.progress() if audit is not None and self.state == "running" else None
            finished = report["finished_at"] if report else None
            return {
                "state": self.state,
                "error": self.error,
                "phase": progress["phase"] if progress else None,
                "scan": progress["scan"] if progress else None,
                "finished_at": finished,
                "age_s": None if finished is None else round(self.clock() - finished, 1),
            }
