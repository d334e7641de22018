"""One pass of the scan over one shard, read from one node, in a thread of its own.

A :class:`ShardPass` owns a :class:`~dashboard.inspect.keyspace.scan.NodeScanner`
(the cursor), the shard's own :class:`~dashboard.inspect.keyspace.rollup.Rollup`
and its counters. :func:`walk` runs it in a worker thread and reports to the job
through a queue: ``("page", pass, batch)`` for every page, then exactly one
``("end", pass, outcome, detail)``:

* ``verified``: the walk is complete and the source's identity did not change
  (``sources.changed``), so the shard's numbers are exact and can be committed;
* ``sampled``: the pass took its share of a sample;
* ``changed``: the source restarted, failed over, lost or is moving slots, or keys
  answered MOVED/ASK: the pass cannot be trusted and must be redone (``detail``: why);
* ``trouble``: a topology or transient error (``detail``: the exception): the job
  refreshes the node map and retries, keeping the cursor when the node is the same;
* ``stopped``: the job asked it to stop (cancel, or the shard moved);
* ``error``: anything else (``detail``: the exception); the job fails.
"""

from __future__ import annotations

import math
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dashboard.inspect.nodes import is_topology_error, is_transient_error

from .rollup import Rollup
from .scan import LUA, PIPELINE, Batch, NodeScanner
from .sources import Identity, Source, changed, close_quietly, identity, migrating


@dataclass(eq=False)
class ShardPass:
    source: Source
    assigned: frozenset[int] | None  # cluster: the slots this pass counts
    scanner: NodeScanner
    rollup: Rollup
    attempt: int = 1
    dbsize: int | None = None
    quota: int | None = None
    start: Identity | None = None
    committed: bool = False
    stop: str | None = None  # set by the job: why this pass must stop now
    retire: bool = False  # stopped passes are dropped (the shard moved), not resumed
    not_before: float = 0.0
    trouble_since: float | None = None
    troubles: int = 0
    counters: dict[str, int] = field(
        default_factory=lambda: (
            dict.fromkeys(
                ("fetched", "scanned", "analysed", "vanished", "refused", "moved", "skipped"), 0
            )
            | {"batches": 0, "server_us": 0}
        )
    )

    @property
    def finished(self) -> bool:
        return self.scanner.done or (
            self.quota is not None and self.counters["fetched"] >= self.quota
        )

    def progress(self) -> float | None:
        if self.committed or self.scanner.done:
            return 1.0
        if self.quota is not None:
            return min(1.0, self.counters["analysed"] / self.quota) if self.quota else 1.0
        if not self.dbsize:
            return None
        return min(0.999, self.counters["scanned"] / self.dbsize)

    def fold(self, batch: Batch) -> None:
        """Count a page (the job holds its lock)."""
        self.rollup.add_batch(batch.facts)
        c = self.counters
        c["batches"] += 1
        c["scanned"] += batch.scanned
        c["analysed"] += len(batch.facts)
        c["vanished"] += batch.vanished
        c["refused"] += batch.refused
        c["moved"] += batch.moved
        c["skipped"] += batch.skipped
        c["server_us"] += batch.server_us or 0
        self.trouble_since, self.troubles = None, 0  # a good page ends a run of errors

    def state(self) -> dict[str, Any]:
        """Plain data for the job snapshot's ``nodes``."""
        c = self.counters
        p = self.progress()
        shown = ("scanned", "analysed", "vanished", "refused", "moved", "skipped", "batches")
        return {
            **self.scanner.state(),
            **self.source.public(),
            "done": self.committed or self.scanner.done,
            "slots": None if self.assigned is None else len(self.assigned),
            "attempt": self.attempt,
            "dbsize": self.dbsize,
            "quota": self.quota,
            **{k: c[k] for k in shown},
            "server_ms": round(c["server_us"] / 1000, 3),
            "progress": None if p is None else round(p, 4),
        }

    def close(self) -> None:
        close_quietly(self.source)


def walk(
    client: Any,
    shard_pass: ShardPass,
    out: queue.Queue[Any],
    cancelled: Callable[[], bool],
    throttle_s: float,
    sleep: Callable[[float], None],
) -> None:
    """Run ``shard_pass`` until it ends; report every page and the outcome on ``out``."""
    p = shard_pass
    try:
        now = identity(client, p.source)
        why = migrating(now, p.assigned) if p.start is None else changed(p.start, now, p.assigned)
        if why:  # before a first page: wait for a migration; later: redo the pass
            out.put(("end", p, "changed", why))
            return
        p.start = p.start or now
        while True:
            if cancelled() or p.stop:
                out.put(("end", p, "stopped", p.stop))
                return
            if p.finished:
                out.put(("end", p, *_verdict(client, p)))
                return
            batch = p.scanner.next_batch()
            p.counters["fetched"] += len(batch.facts)
            out.put(("page", p, batch))
            if throttle_s:
                sleep(throttle_s)
    except Exception as exc:
        kind = "trouble" if is_topology_error(exc) or is_transient_error(exc) else "error"
        out.put(("end", p, kind, exc))


def _verdict(client: Any, p: ShardPass) -> tuple[str, str | None]:
    if not p.scanner.done:
        return "sampled", None
    why = changed(p.start, identity(client, p.source), p.assigned) if p.start else None
    if why is None and p.scanner.moved:
        why = f"{p.scanner.moved} key(s) answered MOVED/ASK: their slot moved mid-pass"
    return ("changed", why) if why else ("verified", None)


def quota_for(sample_keys: int, dbsize: int | None, total: int | None, shards: int) -> int | None:
    """A pass's share of a sample: proportional to its node's DBSIZE."""
    if not sample_keys:
        return None
    if total and dbsize is not None:
        return math.ceil(sample_keys * dbsize / total)
    return math.ceil(sample_keys / max(1, shards))


def backoff(troubles: int) -> float:
    """Seconds before retrying after the n-th error in a row (50 ms doubling to 2 s)."""
    return min(2.0, 0.05 * 2 ** max(0, troubles - 1))


def factor_of(done: list[ShardPass]) -> float:
    """DBSIZE over keys scanned: how much a sampled scan's counters are scaled up."""
    sizes = [p.dbsize for p in done]
    scanned = sum(p.counters["scanned"] for p in done)
    if None in sizes or not scanned:
        return 1.0
    return max(1.0, sum(s or 0 for s in sizes) / scanned)


def path_name(paths: set[str | None]) -> str | None:
    if paths == {LUA}:
        return LUA
    if paths == {PIPELINE}:
        return PIPELINE
    return "mixed" if paths else None


def overall_progress(progress: list[float | None], weights: list[int]) -> float | None:
    """Progress of the whole job: per shard, weighted by its size (or its sample quota)."""
    if not progress or None in progress:
        return None
    if not all(weights):
        weights = [1] * len(progress)
    return sum(p * w for p, w in zip(progress, weights, strict=True)) / sum(weights)
