"""Every write the dashboard sends to an inspected Redis, recorded: who, what, when.

Write actions are rare and deliberate (``--allow-writes`` only), so each one is
logged twice: as one line on the ``dashboard.writes`` logger (the server's log:
kept as long as your logs are) and in a bounded in-memory list the ``/writes``
page shows. A bulk job is one entry when it starts and is updated with its outcome
when it ends, not one line per key.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("dashboard.writes")
KEPT = 500


@dataclass
class WriteRecord:
    """One write action: ``who`` asked (user and address), ``action`` on ``subject``."""

    id: int
    at: float
    who: str
    target: str
    action: str
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None
    ok: bool | None = None  # None while a bulk job runs
    finished_at: float | None = None


class WriteLog:
    """A bounded, thread-safe list of write records, newest last, mirrored to logging."""

    def __init__(self, kept: int = KEPT) -> None:
        self._records: deque[WriteRecord] = deque(maxlen=kept)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def record(
        self,
        who: str,
        target: str,
        action: str,
        subject: str,
        detail: dict[str, Any] | None = None,
        *,
        outcome: str | None = None,
        ok: bool | None = None,
    ) -> WriteRecord:
        """Add a record (``ok`` None: started, :meth:`finish` completes it)."""
        now = time.time()
        with self._lock:
            entry = WriteRecord(
                next(self._ids),
                now,
                who,
                target,
                action,
                subject,
                dict(detail or {}),
                outcome,
                ok,
                now if ok is not None else None,
            )
            self._records.append(entry)
        _emit("done" if ok is not None else "started", entry)
        return entry

    def finish(self, entry: WriteRecord, outcome: str, ok: bool) -> None:
        """Complete a started record with what happened."""
        with self._lock:
            entry.outcome, entry.ok, entry.finished_at = outcome, ok, time.time()
        _emit("done", entry)

    def entries(self, limit: int = KEPT) -> list[dict[str, Any]]:
        """The newest ``limit`` records, newest first, as plain data."""
        with self._lock:
            records = list(self._records)[-limit:]
        return [asdict(r) for r in reversed(records)]


def _emit(phase: str, entry: WriteRecord) -> None:
    log.info(
        "write %s: %s",
        phase,
        json.dumps(asdict(entry), ensure_ascii=True, default=str, sort_keys=True),
    )
