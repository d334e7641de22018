"""Which passes a scan needs, and which of their results already count.

The :class:`Plan` matches the scan to the shards as the client knows them. It
keeps the passes still running (one per shard, or per part of a shard whose slots
moved), the committed ones and their merged rollup, and, in a cluster, which slots
are committed: a slot counts once, from one pass whose node served it for the whole
walk. When the node map changes, passes whose node no longer serves their slots
are retired (their numbers dropped) and new passes cover what is missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from dashboard.inspect.errors import ERRORS, describe_error
from dashboard.inspect.nodes import is_topology_error

from .passes import ShardPass, backoff, quota_for
from .rollup import Rollup
from .scan import NodeScanner, ScanOptions, is_refusal
from .sources import Shard, choose, close_quietly, plan

Event = Callable[[str, str | None, str], None]


class Plan:
    """The scan's passes; mutated only from the job thread, read under ``lock``."""

    def __init__(
        self,
        client: Any,
        options: ScanOptions,
        *,
        event: Event,
        lock: threading.RLock,
        monotonic: Callable[[], float],
        on_keys: Callable[[list[bytes]], None] | None = None,
    ) -> None:
        self.client, self.options = client, options
        self._event, self._lock, self._monotonic = event, lock, monotonic
        self.on_keys = on_keys
        opts = options
        self.committed = Rollup(opts.delimiter, opts.depth, opts.top_n, opts.max_namespaces)
        self.passes: list[ShardPass] = []  # not committed yet
        self.done: list[ShardPass] = []
        self.restarts = 0
        self.replan_at: float | None = None
        self._universe: set[int] = set()  # cluster: every slot ever seen assigned
        self._covered: set[int] = set()  # cluster: slots committed
        self._whole = False  # not a cluster: the one shard is committed
        self._stuck_since: float | None = None
        self._waits: dict[str, tuple[float, int]] = {}  # shard -> (since, count)
        self._attempts: dict[str, int] = {}
        self._sample_total: int | None = None
        self._sample_known = False

    # --- outcomes --------------------------------------------------------------------

    def commit(self, p: ShardPass) -> None:
        with self._lock:
            self.committed.merge(p.rollup)
            p.committed = True
            self.passes.remove(p)
            self.done.append(p)
            if p.assigned is None:
                self._whole = True
            else:
                self._covered |= p.assigned
        p.close()

    def drop(self, p: ShardPass, reason: str, *, restart: bool) -> None:
        """Forget a pass and what it counted (``restart``: it had started walking)."""
        with self._lock:
            if p in self.passes:
                self.passes.remove(p)
            if restart:
                self.restarts += 1
        p.close()
        self._event("restart" if restart else "wait", p.source.address, reason)

    def wait(self, p: ShardPass, reason: str, now: float) -> None:
        """A pass that could not start (slots migrating): try again later, not forever."""
        shard = p.source.shard.primary
        since, count = self._waits.get(shard, (now, 0))
        self._waits[shard] = (since, count + 1)
        self.drop(p, reason, restart=False)
        if now - since >= self.options.topology_wait_s:
            raise RuntimeError(f"{shard}: {reason} for {self.options.topology_wait_s:g} s")
        self.replan_at = now + backoff(count + 1)

    def started(self, p: ShardPass) -> None:
        self._waits.pop(p.source.shard.primary, None)

    def complete(self) -> bool:
        if self._universe:
            return self._universe <= self._covered
        return self._whole

    def all(self) -> list[ShardPass]:
        return sorted((*self.done, *self.passes), key=lambda p: p.source.shard.primary)

    def merged(self) -> Rollup:
        """Committed and running rollups together (the partial picture)."""
        opts = self.options
        merged = Rollup(opts.delimiter, opts.depth, opts.top_n, opts.max_namespaces)
        for rollup in (self.committed, *(p.rollup for p in self.passes)):
            merged.merge(rollup)
        return merged

    def close(self) -> None:
        for p in (*self.passes, *self.done):
            p.close()

    # --- planning --------------------------------------------------------------------

    def replan(self, running: Any, *, strict: bool = False) -> None:
        """Match the passes to the shards as the client knows them: retire passes whose
        shard moved (``running`` ones are told to stop), add passes for whatever no
        pass covers. ``strict`` (the first plan): errors propagate, so an unreachable
        server fails at once; later, topology errors are retried with backoff."""
        now = self._monotonic()
        self.replan_at = None
        try:
            shards = plan(self.client)
            self._retire_misfits(shards, running)
            if self._add_passes(shards):
                self._stuck_since = None
                return
        except Exception as exc:
            if strict or not (isinstance(exc, ERRORS) and is_topology_error(exc)):
                raise
            self._event("retry", None, describe_error("planning the scan", exc))
        self._stuck_since = self._stuck_since if self._stuck_since is not None else now
        if now - self._stuck_since >= self.options.topology_wait_s:
            raise RuntimeError(
                f"part of the keyspace had no reachable node for "
                f"{self.options.topology_wait_s:g} s; resume or re-scan when the servers are back"
            )
        self.replan_at = now + backoff(2)

    def _retire_misfits(self, shards: list[Shard], running: Any) -> None:
        by_primary = {s.primary: s for s in shards}
        for p in list(self.passes):
            shard = by_primary.get(p.source.shard.primary)
            fits = shard is not None and (p.assigned is None or p.assigned <= shard.slots)
            if fits and shard.replicas and p.source.role == "replica":
                fits = p.source.address in shard.replicas
            if fits or p.stop:
                continue
            p.stop, p.retire = f"{p.source.shard.primary} no longer serves this shard", True
            if p not in running:  # a running one is dropped when its worker stops
                self.drop(p, p.stop, restart=p.start is not None)

    def _add_passes(self, shards: list[Shard]) -> bool:
        """Passes for what no pass covers; False when some of it has no owner yet."""
        wanted: list[tuple[Shard, frozenset[int] | None]] = []
        whole = True
        if shards and shards[0].slots is not None:
            for s in shards:
                self._universe |= s.slots or frozenset()
            taken = set(self._covered)
            for p in self.passes:
                taken |= p.assigned or frozenset()
            missing = self._universe - taken
            for s in shards:
                if s.slots and s.slots & missing:
                    wanted.append((s, frozenset(s.slots & missing)))
                    missing -= s.slots
            whole = not missing
        elif not self._whole and not self.passes:
            wanted.append((shards[0], None))
        for shard, assigned in wanted:
            self._add_pass(shard, assigned)
        self._set_quotas(len(shards))
        return whole

    def _add_pass(self, shard: Shard, assigned: frozenset[int] | None) -> None:
        opts = self.options
        source = choose(self.client, shard, opts.scan_from, opts.max_lag_s)
        try:
            dbsize = _dbsize(source.conn)
        except BaseException:
            close_quietly(source)
            raise
        scanner = NodeScanner(
            source.conn,
            opts,
            name=source.address,
            cluster=assigned is not None,
            on_keys=self.on_keys,
            slots=assigned,
        )
        rollup = Rollup(opts.delimiter, opts.depth, opts.top_n, opts.max_namespaces)
        attempt = self._attempts[shard.primary] = self._attempts.get(shard.primary, 0) + 1
        p = ShardPass(source, assigned, scanner, rollup, attempt=attempt, dbsize=dbsize)
        with self._lock:
            self.passes.append(p)
        self._event("source", source.address, source.reason)

    def _set_quotas(self, shards: int) -> None:
        want = self.options.sample_keys
        if not want:
            return
        if not self._sample_known:  # the first plan: every shard's DBSIZE is in
            sizes = [p.dbsize for p in self.passes]
            self._sample_total = None if None in sizes else sum(s or 0 for s in sizes)
            self._sample_known = True
        for p in self.passes:
            if p.quota is None:
                p.quota = quota_for(want, p.dbsize, self._sample_total, shards)


def _dbsize(conn: Any) -> int | None:
    try:
        return int(conn.dbsize())
    except ERRORS as exc:
        if not is_refusal(exc):
            raise
        return None
