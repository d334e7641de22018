"""A keyspace scan as a background job the web UI can start, poll, cancel and resume.

A :class:`ScanJob` walks every primary (one :class:`~dashboard.inspect.keyspace.scan.NodeScanner`
and cursor per node; nodes take turns page by page so progress moves evenly),
feeds a :class:`~dashboard.inspect.keyspace.rollup.Rollup` and keeps counters behind a
lock. :meth:`ScanJob.snapshot` returns plain data at any moment. A page is folded
into the rollup only after its facts arrived, and the cursor moves with it, so a
cancel or a connection error loses nothing: :meth:`ScanJob.resume` continues from
the last cursors and ends with the same totals as an uninterrupted scan.

Sampling (``sample_keys > 0``): each node stops after its share of the sample
(proportional to its DBSIZE) and the counters are extrapolated by
``DBSIZE / scanned``; the result says ``estimated: true`` and gives the factor.
SCAN returns keys in hash-table order, which is unrelated to key names or age,
so the first pages are a fair sample of the whole.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dashboard.connection import is_cluster
from dashboard.inspect.errors import ERRORS, describe_error
from dashboard.inspect.nodes import node_clients

from .rollup import Rollup
from .scan import LUA, PIPELINE, Batch, NodeScanner, ScanOptions, is_refusal

PREFETCH_PAGES = 2
_END = object()
IDLE, RUNNING, CANCELLING = "idle", "running", "cancelling"
CANCELLED, FAILED, DONE = "cancelled", "failed", "done"


@dataclass
class _Node:
    scanner: NodeScanner
    dbsize: int | None = None
    quota: int | None = None
    fetched: int = 0  # analysed keys fetched (ahead of `analysed` while pages queue)
    scanned: int = 0
    analysed: int = 0
    vanished: int = 0
    refused: int = 0
    batches: int = 0
    server_us: int = 0

    @property
    def finished(self) -> bool:
        return self.scanner.done or (self.quota is not None and self.fetched >= self.quota)

    def progress(self) -> float | None:
        if self.scanner.done:
            return 1.0
        if self.quota is not None:
            return min(1.0, self.analysed / self.quota) if self.quota else 1.0
        if not self.dbsize:
            return None
        return min(0.999, self.scanned / self.dbsize)


class ScanJob:
    """One keyspace scan; thread-safe.

    ``on_batch(batch)`` runs after each page is folded in; ``on_keys(keys)`` runs in
    the fetching thread between a page's SCAN and its facts request. Both are seams
    for tests, the CLI and tracing; ``clock``/``monotonic``/``sleep`` are injectable.
    """

    def __init__(
        self,
        client: Any,
        options: ScanOptions | None = None,
        *,
        on_batch: Callable[[Batch], None] | None = None,
        on_keys: Callable[[list[bytes]], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.options = options or ScanOptions()
        self.on_batch = on_batch
        self.on_keys = on_keys
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset()

    def _reset(self) -> None:
        opts = self.options
        self.rollup = Rollup(opts.delimiter, opts.depth, opts.top_n, opts.max_namespaces)
        self._nodes: list[_Node] = []
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
            self._reset()
        return self.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background thread; True when it is not running anymore."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # --- the walk ------------------------------------------------------------------

    def _run(self) -> None:
        began = self._monotonic()
        with self._lock:
            self.runs += 1
            self.error = None
            if self.started_at is None:
                self.started_at = self._clock()
        try:
            self._prepare()
            self._walk()
            # Nothing changes the rollup now: build the JSON without holding the lock
            # (it takes a while with thousands of namespaces; snapshot() keeps answering).
            result = self._result_json() if all(n.finished for n in self._nodes) else None
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

    def _prepare(self) -> None:
        """Node list and DBSIZE; on resume, fresh connections but the same cursors."""
        cluster = is_cluster(self.client)
        conns = node_clients(self.client)
        if not self._nodes:
            self._nodes = [
                _Node(
                    NodeScanner(
                        conn, self.options, name=address, cluster=cluster, on_keys=self.on_keys
                    )
                )
                for address, _role, conn in conns
            ]
        else:
            by_address = {address: conn for address, _role, conn in conns}
            for node in self._nodes:
                if node.scanner.name not in by_address and not node.finished:
                    raise RuntimeError(
                        f"node {node.scanner.name} is no longer a primary; re-scan from the start"
                    )
                node.scanner.conn = by_address.get(node.scanner.name, node.scanner.conn)
        for node in self._nodes:
            if not node.finished:
                try:
                    node.dbsize = int(node.scanner.conn.dbsize())
                except ERRORS as exc:
                    if not is_refusal(exc):
                        raise
                    node.dbsize = None
        self._set_quotas()

    def _set_quotas(self) -> None:
        want = self.options.sample_keys
        if not want or any(node.quota is not None for node in self._nodes):
            return
        sizes = [node.dbsize for node in self._nodes]
        total = sum(s for s in sizes if s)
        for node in self._nodes:
            if total and node.dbsize is not None:
                node.quota = math.ceil(want * node.dbsize / total)
            else:
                node.quota = math.ceil(want / len(self._nodes))

    def _walk(self) -> None:
        """Fetch pages in a helper thread while this one folds them into the rollup.

        The fetcher waits on Redis most of the time and the rollup is Python CPU, so
        the two overlap. Every page fetched is folded, even on cancel or error, so
        the cursors and the rollup always agree (resume loses and repeats nothing).
        """
        pages: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH_PAGES)
        stop = threading.Event()
        fetcher = threading.Thread(
            target=self._fetch, args=(pages, stop), name="keyspace-scan-fetch", daemon=True
        )
        fetcher.start()
        failure: BaseException | None = None
        try:
            while (item := pages.get()) is not _END:
                if isinstance(item, BaseException):
                    failure = item
                    break
                self._fold(*item, hook=failure is None)
        except BaseException as exc:  # e.g. the on_batch hook: stop fetching, keep state
            failure = exc
            stop.set()
            while (item := pages.get()) is not _END and not isinstance(item, BaseException):
                self._fold(*item, hook=False)
        finally:
            fetcher.join()
        if failure is not None:
            raise failure

    def _fetch(self, pages: queue.Queue[Any], stop: threading.Event) -> None:
        try:
            while not (self._cancel.is_set() or stop.is_set()):
                active = [node for node in self._nodes if not node.finished]
                if not active:
                    break
                for node in active:
                    if self._cancel.is_set() or stop.is_set():
                        break
                    batch = node.scanner.next_batch()
                    node.fetched += len(batch.facts)
                    pages.put((node, batch))
                    if self.options.throttle_ms:
                        self._sleep(self.options.throttle_ms / 1000)
            pages.put(_END)
        except BaseException as exc:
            pages.put(exc)

    def _fold(self, node: _Node, batch: Batch, hook: bool = True) -> None:
        with self._lock:
            self.rollup.add_batch(batch.facts)
            node.batches += 1
            node.scanned += batch.scanned
            node.analysed += len(batch.facts)
            node.vanished += batch.vanished
            node.refused += batch.refused
            node.server_us += batch.server_us or 0
            self.max_batch_us = max(self.max_batch_us, batch.server_us or batch.wall_us)
        if hook and self.on_batch is not None:
            self.on_batch(batch)

    def _result_json(self) -> dict[str, Any]:
        estimated = any(not node.scanner.done for node in self._nodes)
        factor = self._factor() if estimated else 1.0
        reasons = {n.scanner.memory_reason for n in self._nodes} - {None}
        self.rollup.bytes_reason = "; ".join(sorted(reasons)) or None
        return {
            **self.rollup.to_json(factor),
            "estimated": estimated,
            "factor": round(factor, 6),
            "finished_at": self._clock(),
        }

    def _factor(self) -> float:
        sizes = [node.dbsize for node in self._nodes]
        scanned = sum(node.scanned for node in self._nodes)
        if None in sizes or not scanned:
            return 1.0
        return max(1.0, sum(s or 0 for s in sizes) / scanned)

    # --- what the UI polls ---------------------------------------------------------

    def result(self) -> dict[str, Any] | None:
        """The rollup JSON (docs/scan.md) once the scan is done, else None."""
        with self._lock:
            return self._result

    def partial(self) -> dict[str, Any]:
        """The rollup of what was scanned so far (not extrapolated)."""
        with self._lock:
            return self.rollup.to_json()

    def snapshot(self, include_result: bool = True) -> dict[str, Any]:
        """Progress, counters and (when done) the result, as plain JSON data."""
        with self._lock:
            nodes = self._nodes
            paths = {n.scanner.path for n in nodes if n.scanner.path}
            dbsizes = [n.dbsize for n in nodes]
            known = None if None in dbsizes or not nodes else sum(d or 0 for d in dbsizes)
            progress = [n.progress() for n in nodes]
            overall = _overall(progress, [n.quota or n.dbsize or 0 for n in nodes])
            now = self._clock()
            snap: dict[str, Any] = {
                "state": self.state,
                "error": self.error,
                "resumable": self.state in (CANCELLED, FAILED),
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "age_s": None if self.finished_at is None else round(now - self.finished_at, 3),
                "duration_s": round(self.duration, 3),
                "runs": self.runs,
                "path": _path_name(paths),
                "path_reasons": sorted(
                    {
                        r
                        for n in nodes
                        for r in (n.scanner.path_reason, n.scanner.memory_reason)
                        if r
                    }
                ),
                "dbsize": known,
                "progress": None if overall is None else round(overall, 4),
                "scanned": sum(n.scanned for n in nodes),
                "analysed": sum(n.analysed for n in nodes),
                "vanished": sum(n.vanished for n in nodes),
                "refused": sum(n.refused for n in nodes),
                "batches": sum(n.batches for n in nodes),
                "server_ms": round(sum(n.server_us for n in nodes) / 1000, 3),
                "max_batch_ms": round(self.max_batch_us / 1000, 3),
                "sampling": bool(self.options.sample_keys),
                "options": self.options.public(),
                "nodes": [
                    {
                        **n.scanner.state(),
                        "dbsize": n.dbsize,
                        "quota": n.quota,
                        "scanned": n.scanned,
                        "analysed": n.analysed,
                        "vanished": n.vanished,
                        "refused": n.refused,
                        "batches": n.batches,
                        "server_ms": round(n.server_us / 1000, 3),
                        "progress": None if p is None else round(p, 4),
                    }
                    for n, p in zip(nodes, progress, strict=True)
                ],
            }
            if include_result:
                snap["result"] = self._result
            return snap


def _path_name(paths: set[str | None]) -> str | None:
    if paths == {LUA}:
        return LUA
    if paths == {PIPELINE}:
        return PIPELINE
    return "mixed" if paths else None


def _overall(progress: list[float | None], weights: list[int]) -> float | None:
    """Progress of the whole job: per node, weighted by its size (or its sample quota)."""
    if not progress or None in progress:
        return None
    if not all(weights):
        weights = [1] * len(progress)
    return sum(p * w for p, w in zip(progress, weights, strict=True)) / sum(weights)


def scan_keyspace(
    client: Any,
    options: ScanOptions | None = None,
    *,
    on_batch: Callable[[Batch], None] | None = None,
    on_keys: Callable[[list[bytes]], None] | None = None,
) -> dict[str, Any]:
    """Scan the whole keyspace in the calling thread; returns :meth:`ScanJob.snapshot`."""
    return ScanJob(client, options, on_batch=on_batch, on_keys=on_keys).run()
