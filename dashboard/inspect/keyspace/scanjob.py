"""A keyspace scan as a background job the web UI can start, poll, cancel and resume.

A :class:`ScanJob` splits the keyspace into shards (a standalone server or
Sentinel-managed primary: one; a cluster: one per primary and its slots), reads
each from one node (``scan_from``: the primary, a replica, or ``auto``;
:mod:`~dashboard.inspect.keyspace.sources`) and walks them in worker threads,
``parallel`` at a time (0: all at once), each with its own cursor and page budget
(:mod:`~dashboard.inspect.keyspace.passes`). The job thread folds every page into
its shard's rollup; a shard whose walk is complete and whose node did not change
under it is committed into the result. A cancel or an error loses nothing:
:meth:`ScanJob.resume` continues from the saved cursors.

**Topology.** A connection error, ``MOVED``/``ASK``/``CLUSTERDOWN``/``TRYAGAIN``
makes the job refresh the node map (:func:`~dashboard.inspect.nodes.refresh_topology`)
and retry with backoff for up to ``topology_wait_s``. A shard whose node restarted,
failed over or lost slots is walked again from the start on its new owner; a
MOVED/ASK reply is counted as ``moved``, never as vanished. Every such step is in
``events`` and ``restarts``; the scan never ends ``done`` with a slot unaccounted for.

Sampling (``sample_keys > 0``): each shard stops after its share of the sample
(proportional to its DBSIZE) and the counters are extrapolated by
``DBSIZE / scanned``; the result says ``estimated: true`` and gives the factor.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from dashboard.inspect.errors import ERRORS, describe_error
from dashboard.inspect.nodes import is_topology_error, refresh_topology

from .passes import ShardPass, backoff, factor_of, overall_progress, path_name, walk
from .planner import Plan
from .scan import Batch, ScanOptions

PREFETCH_PAGES = 2
MAX_EVENTS = 50
REFRESH_GAP_S = 0.2  # at most one node-map refresh this often
REPLICA_RETRIES = 3  # errors in a row before a replica's walk reads another node
IDLE, RUNNING, CANCELLING = "idle", "running", "cancelling"
CANCELLED, FAILED, DONE = "cancelled", "failed", "done"


class ScanJob:
    """One keyspace scan; thread-safe.

    ``on_batch(batch)`` runs after each page is folded in; ``on_keys(keys)`` runs in
    a worker thread between a page's SCAN and its facts request; ``on_event(event)``
    after each entry of ``events`` (a shard redone, a retry, a node-map refresh).
    Seams for tests, the CLI and tracing; ``clock``/``monotonic``/``sleep`` are injectable.
    """

    def __init__(
        self,
        client: Any,
        options: ScanOptions | None = None,
        *,
        on_batch: Callable[[Batch], None] | None = None,
        on_keys: Callable[[list[bytes]], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.options = options or ScanOptions()
        self.on_batch, self.on_keys, self.on_event = on_batch, on_keys, on_event
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset()

    def _reset(self) -> None:
        self._plan = Plan(
            self.client,
            self.options,
            event=self._event,
            lock=self._lock,
            monotonic=self._monotonic,
            on_keys=self.on_keys,
        )
        self._planned = False
        self._running: dict[ShardPass, threading.Thread] = {}
        self._last_refresh = float("-inf")
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.state = IDLE
        self.error: str | None = None
        self.last_exception: BaseException | None = None  # what ended the last run, for callers
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.duration = 0.0
        self.runs = 0
        self.max_batch_us = 0
        self._result: dict[str, Any] | None = None

    # --- control -------------------------------------------------------------------

    def start(self) -> bool:
        """Run in a background thread: a fresh scan, or a resume after cancel/failure.

        Returns False when it is already running or finished (use :meth:`rescan`).
        """
        with self._lock:
            if self.state in (RUNNING, CANCELLING, DONE):
                return False
            self.state = RUNNING
            self._cancel.clear()
            self._thread = threading.Thread(target=self._run, name="keyspace-scan", daemon=True)
            self._thread.start()
            return True

    resume = start

    def run(self) -> dict[str, Any]:
        """Run (or resume) in the calling thread until done, cancelled or failed."""
        with self._lock:
            if self.state in (RUNNING, CANCELLING):
                raise RuntimeError("this scan is already running in another thread")
            if self.state != DONE:
                self.state = RUNNING
                self._cancel.clear()
        if self.state == RUNNING:
            self._run()
        return self.snapshot()

    def cancel(self) -> None:
        """Stop after the current page; :meth:`resume` continues from there."""
        with self._lock:
            if self.state == RUNNING:
                self.state = CANCELLING
                self._cancel.set()

    def rescan(self) -> bool:
        """Forget everything and scan again from the first cursor."""
        self.cancel()
        self.wait()
        with self._lock:
            self._plan.close()
            self._reset()
        return self.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background thread; True when it is not running anymore."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # --- the run -------------------------------------------------------------------

    def _run(self) -> None:
        began = self._monotonic()
        with self._lock:
            self.runs += 1
            self.error = None
            if self.started_at is None:
                self.started_at = self._clock()
        try:
            self._walk()
            # Nothing changes the rollup now: build the JSON without holding the lock
            # (it takes a while with thousands of namespaces; snapshot() keeps answering).
            result = self._result_json() if self._plan.complete() else None
            with self._lock:
                self.duration += self._monotonic() - began
                if result is None:
                    self.state = CANCELLED
                else:
                    self.state, self._result = DONE, result
                    self.finished_at = result["finished_at"]
        except Exception as exc:  # reported in snapshot(); the UI offers resume
            with self._lock:
                self.duration += self._monotonic() - began
                self.state = FAILED
                self.last_exception = exc
                self.error = (
                    describe_error("keyspace scan", exc)
                    if isinstance(exc, ERRORS)
                    else f"keyspace scan failed: {type(exc).__name__}: {exc}"
                )
        finally:
            self._plan.close()  # pinned clients drop their connections; a resume reconnects

    def _walk(self) -> None:
        """Start workers as passes become ready, fold their pages, act on their ends.

        Every page a worker fetched is folded, even on cancel or error, so cursors and
        rollups always agree (resume loses and repeats nothing).
        """
        plan, running = self._plan, self._running
        failure: BaseException | None = None
        for p in plan.passes:
            if not p.retire:
                p.stop = None  # stopped by a cancel or a failure: go on from the cursor
        plan.replan(running, strict=not self._planned)
        self._planned = True
        # Workers wait while the job thread folds (or runs on_batch): bounded read-ahead.
        pages: queue.Queue[Any] = queue.Queue(PREFETCH_PAGES * max(4, len(plan.passes)))
        while True:
            now = self._monotonic()
            if failure is None and not self._cancel.is_set():
                try:
                    if plan.replan_at is not None and now >= plan.replan_at:
                        plan.replan(running)
                    self._launch(pages, now)
                except Exception as exc:
                    failure = exc
            if failure is not None:
                for p in running:
                    p.stop = p.stop or "the scan failed"
            if not running and (failure or self._cancel.is_set() or plan.complete()):
                break
            wake = self._wake_at(now)
            if wake is None and not running:
                break
            try:
                item = pages.get(timeout=None if wake is None else max(0.0, wake - now))
            except queue.Empty:
                continue
            try:
                if item[0] == "page":
                    self._fold(item[1], item[2], hook=failure is None)
                else:
                    running.pop(item[1]).join()
                    self._end(item[1], item[2], item[3])
            except Exception as exc:  # e.g. the on_batch hook: stop fetching, keep state
                failure = failure or exc
        if failure is not None:
            raise failure
        if not self._cancel.is_set() and not plan.complete():  # nothing left to try
            raise RuntimeError("the scan ran out of work with part of the keyspace not walked")

    def _launch(self, out: Any, now: float) -> None:
        passes, running = self._plan.passes, self._running
        limit = self.options.parallel or len(passes)
        throttle_s = self.options.throttle_ms / 1000
        for p in passes:
            if len(running) >= limit:
                return
            if p in running or p.stop or p.not_before > now:
                continue
            thread = threading.Thread(
                target=walk,
                args=(self.client, p, out, self._cancel.is_set, throttle_s, self._sleep),
                name="keyspace-scan-fetch",
                daemon=True,
            )
            running[p] = thread
            thread.start()

    def _wake_at(self, now: float) -> float | None:
        """When the loop must look again without a message: a retry's backoff ends.
        (Passes waiting for a free worker start when a running one ends.)"""
        plan = self._plan
        times = [
            p.not_before
            for p in plan.passes
            if p not in self._running and not p.stop and p.not_before > now
        ]
        if plan.replan_at is not None:
            times.append(plan.replan_at)
        return min(times) if times else None

    def _fold(self, p: ShardPass, batch: Batch, hook: bool = True) -> None:
        with self._lock:
            if p.counters["batches"] == 0:
                self._plan.started(p)
            p.fold(batch)
            self.max_batch_us = max(self.max_batch_us, batch.server_us or batch.wall_us)
        if hook and self.on_batch is not None:
            self.on_batch(batch)

    def _end(self, p: ShardPass, outcome: str, detail: Any) -> None:
        plan, now = self._plan, self._monotonic()
        if p not in plan.passes:  # dropped meanwhile: whatever it found does not count
            return
        if outcome in ("verified", "sampled"):
            plan.commit(p)
        elif outcome == "error":
            raise detail
        elif outcome == "stopped":
            if p.retire:
                plan.drop(p, p.stop or "the shard moved", restart=True)
                plan.replan_at = now
        elif outcome == "changed":  # the node map the client holds is stale too
            self._refresh(now, force=True)
            if p.start is None:
                plan.wait(p, detail, now)
            else:
                plan.drop(p, detail, restart=True)
                plan.replan_at = now
        else:  # trouble: refresh the map, retry after a backoff
            p.troubles += 1
            p.trouble_since = p.trouble_since if p.trouble_since is not None else now
            if now - p.trouble_since >= self.options.topology_wait_s:
                raise detail
            if p.troubles == 1 or p.troubles % 10 == 0:
                self._event("retry", p.source.address, describe_error("scan page", detail))
            if is_topology_error(detail):
                self._refresh(now)
            if p.source.role == "replica" and p.troubles >= REPLICA_RETRIES:
                why = f"replica {p.source.address} keeps failing; choosing the source again"
                plan.drop(p, why, restart=p.start is not None)
            else:
                p.not_before = now + backoff(p.troubles)
            plan.replan_at = now

    def _refresh(self, now: float, force: bool = False) -> None:
        if now - self._last_refresh < REFRESH_GAP_S and not force:
            return
        self._last_refresh = now
        try:
            moved = refresh_topology(self.client)
        except ERRORS as exc:
            self._event("refresh", None, describe_error("node map refresh", exc))
            return
        self._event("refresh", None, "primaries changed" if moved else "primaries unchanged")

    # --- results -------------------------------------------------------------------

    def _event(self, kind: str, node: str | None, reason: str) -> None:
        event = {"at": round(self._clock(), 3), "kind": kind, "node": node, "reason": reason}
        with self._lock:
            self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _result_json(self) -> dict[str, Any]:
        done = self._plan.done
        estimated = any(not p.scanner.done for p in done)
        factor = factor_of(done) if estimated else 1.0
        reasons = {p.scanner.memory_reason for p in done} - {None}
        self._plan.committed.bytes_reason = "; ".join(sorted(reasons)) or None
        return {
            **self._plan.committed.to_json(factor),
            "estimated": estimated,
            "factor": round(factor, 6),
            "finished_at": self._clock(),
        }

    def result(self) -> dict[str, Any] | None:
        """The rollup JSON (docs/scan.md) once the scan is done, else None."""
        with self._lock:
            return self._result

    def partial(self) -> dict[str, Any]:
        """The rollup of what was scanned so far (not extrapolated)."""
        with self._lock:
            return self._plan.merged().to_json()

    def snapshot(self, include_result: bool = True) -> dict[str, Any]:
        """Progress, counters and (when done) the result, as plain JSON data."""
        with self._lock:
            passes = self._plan.all()
            sizes = {p.source.address: p.dbsize for p in passes}
            known = None if None in sizes.values() or not sizes else sum(sizes.values())
            progress = [p.progress() for p in passes]
            overall = overall_progress(progress, [p.quota or p.dbsize or 0 for p in passes])
            now = self._clock()
            total = {
                k: sum(p.counters[k] for p in passes)
                for k in ("scanned", "analysed", "vanished", "refused", "moved", "skipped")
            }
            reasons = {r for p in passes for r in (p.scanner.path_reason, p.scanner.memory_reason)}
            snap: dict[str, Any] = {
                "state": self.state,
                "error": self.error,
                "resumable": self.state in (CANCELLED, FAILED),
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "age_s": None if self.finished_at is None else round(now - self.finished_at, 3),
                "duration_s": round(self.duration, 3),
                "runs": self.runs,
                "path": path_name({p.scanner.path for p in passes if p.scanner.path}),
                "path_reasons": sorted(reasons - {None}),
                "dbsize": known,
                "progress": None if overall is None else round(overall, 4),
                **total,
                "batches": sum(p.counters["batches"] for p in passes),
                "server_ms": round(sum(p.counters["server_us"] for p in passes) / 1000, 3),
                "max_batch_ms": round(self.max_batch_us / 1000, 3),
                "sampling": bool(self.options.sample_keys),
                "restarts": self._plan.restarts,
                "events": list(self.events),
                "options": self.options.public(),
                "nodes": [p.state() for p in passes],
            }
            if include_result:
                snap["result"] = self._result
            return snap


def scan_keyspace(
    client: Any,
    options: ScanOptions | None = None,
    *,
    on_batch: Callable[[Batch], None] | None = None,
    on_keys: Callable[[list[bytes]], None] | None = None,
) -> dict[str, Any]:
    """Scan the whole keyspace in the calling thread; returns :meth:`ScanJob.snapshot`."""
    return ScanJob(client, options, on_batch=on_batch, on_keys=on_keys).run()
