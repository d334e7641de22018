"""The keyspace cycle: one scan that feeds the keyspace view, the audit and the metrics.

A cycle is an :class:`~dashboard.inspect.audit.Audit` driven phase by phase: server
facts, then ONE :class:`~dashboard.inspect.keyspace.scanjob.ScanJob` whose pages feed
both the namespace rollup and every key rule, then the stream and server rules. The
finished cycle becomes the *scan picture*: one id, one "as of" time, one key count,
shown by every page that uses key facts.

* Never two scans of one server at once: :meth:`KeyspaceCycle.request` joins a
  running scan instead of starting another.
* A scan that fails (a failover, a restart, a timeout) is resumed from its cursors
  after a backoff, up to ``MAX_RESUMES`` times; each resume is recorded in the
  picture's ``events``. A scan that still cannot finish leaves the previous picture
  on screen with the error beside it: it never becomes "done" with keys missing.
* Re-scans run every ``rescan_interval`` seconds after the previous one ended (0:
  only on demand) and on demand (the Re-scan button, the CLI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dashboard.inspect.audit import Audit, AuditConfig
from dashboard.inspect.errors import CONNECTION_ERRORS, ERRORS, describe_error
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import CANCELLED, DONE, FAILED
from dashboard.inspect.nodes import is_topology_error

MAX_RESUMES = 8
CLEAN_AUDIT_TRIES = 3
RESUME_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)


class KeyspaceCycle:
    """The observer's keyspace scans: one at a time, the last finished one kept."""

    def __init__(
        self,
        client: Any,
        options: ScanOptions,
        *,
        audit_config: AuditConfig | None = None,
        target: str | None = None,
        rescan_interval_s: float = 600.0,
        on_failure: Callable[[BaseException], None] | None = None,
        on_finished: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.audit_config = audit_config or AuditConfig()
        self.target = target
        self.rescan_interval_s = rescan_interval_s
        self.on_failure = on_failure
        self.on_finished = on_finished
        self._clock, self._monotonic = clock, monotonic
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._sleep = sleep or (lambda s: self._wake.wait(s))
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._audit: Audit | None = None
        self._cancel = False
        self._sequence = 0
        self._failures = 0
        self.picture: dict[str, Any] | None = None  # the last finished scan
        self.running: dict[str, Any] | None = None  # the scan under way: id, reason, events
        self.error: str | None = None  # why the last attempt did not finish
        self.state = "idle"  # idle | running | cancelled | failed
        self._next_due: float | None = 0.0  # monotonic; None: only on demand

    # --- control ---------------------------------------------------------------------

    def request(self, reason: str = "on demand") -> bool:
        """Start a scan now; False when one is already running (it is joined instead)."""
        with self._lock:
            if self.state == "running":
                return False
            self.state, self.error, self._cancel = "running", None, False
            self._sequence += 1
            started = self._clock()
            self.running = {
                "id": _scan_id(started, self._sequence),
                "reason": reason,
                "started_at": round(started, 3),
                "events": [],
            }
            self._audit = None
            self._idle.clear()
            self._thread = threading.Thread(target=self._run, name="keyspace-cycle", daemon=True)
            self._thread.start()
            return True

    def cancel(self) -> bool:
        """Stop the running scan after its current page; the last picture stays."""
        with self._lock:
            if self.state != "running":
                return False
            self._cancel = True
            audit = self._audit
        self._wake.set()
        if audit is not None:
            audit.cancel()
        return True

    def due(self) -> bool:
        """True when the schedule asks for a scan (and none is running)."""
        with self._lock:
            if self.state == "running" or self._next_due is None:
                return False
            return self._monotonic() >= self._next_due

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running scan; True when none is running anymore."""
        return self._idle.wait(timeout)

    # --- the run -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._cycle()
        finally:
            self._idle.set()

    def _cycle(self) -> None:
        began = self._monotonic()
        try:
            picture = self._scan_and_audit()
        except Exception as exc:  # reported on every page that uses the picture
            with self._lock:
                self.state = "cancelled" if self._cancel else "failed"
                self.error = (
                    describe_error("keyspace scan", exc)
                    if isinstance(exc, ERRORS)
                    else f"keyspace scan failed: {type(exc).__name__}: {exc}"
                )
                self._schedule(began, failed=True)
            if self.on_failure is not None and not self._cancel:
                self.on_failure(exc)
            return
        with self._lock:
            if picture is None:
                self.state = "cancelled"
                self.error = "the scan was cancelled; the previous picture stays"
            else:
                self.picture, self.state, self.error = picture, "idle", None
            self.running = None
            self._schedule(began, failed=False)
        if picture is not None and self.on_finished is not None:
            self.on_finished(picture)

    def _schedule(self, began: float, failed: bool) -> None:
        """Next scan: ``rescan_interval`` after this one; sooner after a failure when there
        is no picture yet (backing off 5, 10, 20, 30 s), never while nobody asked (0)."""
        self._failures = self._failures + 1 if failed else 0
        interval = self.rescan_interval_s
        if failed and self.picture is None and not self._cancel:
            retry = min(5.0 * 2 ** (self._failures - 1), 30.0)
            self._next_due = self._monotonic() + (min(retry, interval) if interval > 0 else retry)
        elif interval <= 0:
            self._next_due = None
        else:
            self._next_due = self._monotonic() + interval

    def _scan_and_audit(self) -> dict[str, Any] | None:
        """One clean scan and its audit. A shard walked again after a topology change
        (its pages reached the key rules twice, though the rollup dropped the first walk)
        makes the audit start over on a fresh scan, up to ``CLEAN_AUDIT_TRIES`` times."""
        for attempt in range(1, CLEAN_AUDIT_TRIES + 1):
            picture = self._scan_and_audit_once()
            if picture is None or not picture["scan"].get("restarts"):
                return picture
            if attempt < CLEAN_AUDIT_TRIES and not self._cancel:
                self._event(
                    f"{picture['scan']['restarts']} shard(s) were walked again after the "
                    "topology changed; scanning once more so the audit counts each key once"
                )
        picture["audit"].setdefault("limitations", []).append(
            {
                "rule": "*",
                "reason": "the topology kept changing during the scans: key rules may have "
                "counted the keys of a re-walked shard twice",
            }
        )
        return picture

    def _scan_and_audit_once(self) -> dict[str, Any] | None:
        audit = Audit(self.client, self.audit_config, self.options, target=self.target)
        with self._lock:
            self._audit = audit
        attempts = 0
        while True:  # server facts first; a server that is away is waited for, briefly
            try:
                audit.begin()
                break
            except ERRORS as exc:
                if self._cancel or attempts >= MAX_RESUMES or not _transient(exc):
                    raise
                self._event(f"reading server facts failed: {describe_error('INFO', exc)}; retrying")
                self._pause(attempts, exc)
                attempts += 1
        job = audit.new_job()
        snapshot = job.run()
        resumes = 0
        while snapshot["state"] == FAILED and not self._cancel and resumes < MAX_RESUMES:
            self._event(f"scan interrupted: {snapshot['error']}; resuming from its cursors")
            self._pause(resumes, job.last_exception)
            resumes += 1
            snapshot = job.run()
        if self._cancel or snapshot["state"] == CANCELLED:
            return None
        if snapshot["state"] != DONE:
            raise RuntimeError(snapshot["error"] or f"the scan ended {snapshot['state']}")
        report = audit.finish(snapshot)
        result = job.result()
        with self._lock:
            running = dict(self.running or {})
        scan = {k: v for k, v in snapshot.items() if k != "result"}
        scan.update(
            id=running.get("id"),
            reason=running.get("reason"),
            events=_timeline(running.get("events", []), snapshot.get("events", [])),
            as_of=scan.get("finished_at"),
            resumes=resumes,
        )
        report["scan"] = {**(report.get("scan") or {}), "id": scan["id"], "as_of": scan["as_of"]}
        return {"scan": scan, "result": result, "audit": report}

    def _pause(self, attempt: int, exc: BaseException | None) -> None:
        """Back off before trying again; the observer re-reads the node map meanwhile."""
        if self.on_failure is not None and exc is not None:
            self.on_failure(exc)
        self._sleep(RESUME_BACKOFF_S[min(attempt, len(RESUME_BACKOFF_S) - 1)])

    def _event(self, text: str) -> None:
        with self._lock:
            if self.running is not None:
                self.running["events"].append({"at": round(self._clock(), 3), "event": text})

    # --- what views read -----------------------------------------------------------------

    def progress(self) -> dict[str, Any] | None:
        """The running scan's progress (ScanJob snapshot fields, without the result)."""
        with self._lock:
            audit, running, state = self._audit, self.running, self.state
        if state != "running" or running is None:
            return None
        job = audit.job if audit is not None else None
        scan = job.snapshot(include_result=False) if job is not None else None
        phase = audit.phase if audit is not None else "pending"
        return {**running, "phase": phase, "scan": scan}

    def status(self) -> dict[str, Any]:
        """Where the cycle stands: the last picture's id and age, the running scan, errors."""
        with self._lock:
            picture = self.picture
            due = self._next_due
            status = {
                "state": self.state,
                "error": self.error,
                "rescan_interval_s": self.rescan_interval_s,
                "next_scan_in_s": None
                if due is None or self.state == "running"
                else round(max(0.0, due - self._monotonic()), 1),
            }
        now = self._clock()
        if picture is not None:
            scan = picture["scan"]
            status["scan_id"] = scan["id"]
            status["as_of"] = scan["as_of"]
            status["age_ms"] = int(max(0.0, now - (scan["finished_at"] or now)) * 1000)
        else:
            status.update(scan_id=None, as_of=None, age_ms=None)
        status["running"] = self.progress()
        return status

    def freshness(self) -> dict[str, Any]:
        """The scan picture's freshness, in the same shape as a live section's."""
        status = self.status()
        with self._lock:
            picture, error = self.picture, self.error
        running = status["state"] == "running"
        age_ms = status["age_ms"]
        interval = self.rescan_interval_s
        if picture is None:
            state = "error" if error and not running else "loading"
        elif error or (interval > 0 and age_ms is not None and age_ms > 2500 * interval):
            state = "stale"
        else:
            state = "ok"
        scan = picture["scan"] if picture else {}
        return {
            "section": "keyspace",
            "state": state,
            "as_of": status["as_of"],
            "age_ms": age_ms,
            "refreshing": running,
            "period_ms": int(interval * 1000),
            "read_ms": None if not scan else round(scan.get("duration_s", 0) * 1000, 1),
            "error": error,
            "retry_in_s": status["next_scan_in_s"] if error else None,
            "scan_id": status["scan_id"],
        }


def _transient(exc: BaseException) -> bool:
    """Errors worth waiting out (a lost connection, a timeout, a failover), not a refusal."""
    return isinstance(exc, CONNECTION_ERRORS) or is_topology_error(exc)


def _scan_id(started: float, sequence: int) -> str:
    """Sortable and unique per target: the start time in ms, and a counter."""
    return f"{int(started * 1000)}-{sequence}"


def _timeline(cycle: list[dict[str, Any]], scan: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cycle's events and the scan's own (a shard walked again, an error retried, the
    node map re-read, docs/scan.md) in one timeline; which node each shard was read
    from is in the scan's ``nodes``, not repeated here."""
    own = [
        {
            "at": e["at"],
            "event": f"scan {e['kind']}"
            + (f" ({e['node']})" if e["node"] else "")
            + f": {e['reason']}",
        }
        for e in scan
        if e["kind"] != "source"
    ]
    return sorted([*cycle, *own], key=lambda e: e["at"])
