"""Bulk actions on the keys an audit finding is about, throttled and reported.

From a ``missing-ttl``, ``big-string`` or ``big-collection`` finding the user can set a
TTL on (or, for big keys, delete) exactly the keys the finding counts: the keys of
that namespace (split as the keyspace view and the audit split them) that meet the
rule's condition under the audit's own thresholds. A :class:`BulkJob` walks them with
``SCAN MATCH <namespace>:* COUNT c`` on every primary, reads each page's facts with
the keyspace scan's read-only script, and, when applying, writes one pipeline per
step:

* ``EXPIRE key ttl NX``: only keys that still have no TTL change (a TTL set meanwhile
  by the application is never replaced); ``UNLINK`` frees values in the background.
* **Throttled.** A step's server time (the facts script plus the write pipeline,
  measured with TIME) is kept near ``target_ms`` (the scan budget) by adapting how
  many keys a step takes (at most ``max_count``), and the job sleeps at least as long
  as each step took (plus ``throttle_ms``): the dashboard never holds Redis for more
  than about one scan batch, and uses at most half of its time.
* **A dry run first.** The same walk without writes counts what would change; the
  confirmation names that count, the action and the namespace.

Jobs run on their own thread; :class:`BulkJobs` keeps the recent ones per target and
refuses a second apply while one runs.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from dashboard.connection import is_cluster
from dashboard.inspect.audit.keyshape import LockDetector
from dashboard.inspect.errors import describe_error
from dashboard.inspect.keyspace.rollup import Rollup
from dashboard.inspect.keyspace.scan import Fact, NodeScanner, ScanOptions
from dashboard.inspect.nodes import node_clients
from dashboard.keyid import display_key, glob_escape

RULE_ACTIONS = {
    "missing-ttl": ("expire",),
    "big-string": ("expire", "unlink"),
    "big-collection": ("expire", "unlink"),
}
_COLLECTION_LIMITS = {
    "hash": "max_hash_fields",
    "set": "max_set_members",
    "zset": "max_zset_members",
    "list": "max_list_elements",
}
MAX_SPREAD_PCT = 50
EXAMPLES = 10
JOBS_KEPT = 20


class BulkError(ValueError):
    """A bulk request that cannot run; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Selector:
    """Which keys a finding is about: one namespace, and the rule's condition."""

    rule: str
    namespace: tuple[bytes, ...]
    delimiter: bytes
    depth: int
    exempt_types: frozenset[str] = frozenset()
    max_bytes: int = 0
    limits: tuple[tuple[str, int], ...] = ()
    lock_words: tuple[str, ...] = ()

    @classmethod
    def for_finding(
        cls, rule: str, namespace: tuple[bytes, ...], options: ScanOptions, config: Any
    ) -> Selector:
        """The selector of ``rule``'s finding on ``namespace`` under the audit ``config``."""
        if rule not in RULE_ACTIONS:
            raise BulkError(f"bulk actions exist for {', '.join(RULE_ACTIONS)}, not {rule!r}")
        c = config.of(rule)
        limits = tuple((t, int(c[name])) for t, name in _COLLECTION_LIMITS.items() if name in c)
        return cls(
            rule,
            tuple(namespace),
            options.delimiter,
            options.depth,
            frozenset(c.get("exempt_types", ())),
            int(c.get("max_bytes", 0)),
            limits,
            tuple(config.get("lock-without-ttl", "lock_words")),
        )

    @property
    def path(self) -> str:
        """The namespace as text (``(root)`` for keys outside every namespace)."""
        return display_key(self.delimiter.join(self.namespace)) if self.namespace else "(root)"

    def glob(self) -> bytes:
        """SCAN MATCH for the namespace (every key for the root bucket, filtered after)."""
        if not self.namespace:
            return b"*"
        return glob_escape(self.delimiter.join(self.namespace) + self.delimiter) + b"*"

    def scan_type(self) -> str | None:
        return "string" if self.rule == "big-string" else None

    def describe(self) -> str:
        where = f"namespace {self.path}"
        if self.rule == "missing-ttl":
            return f"keys of {where} without a TTL"
        if self.rule == "big-string":
            return f"string keys of {where} longer than {self.max_bytes:,} bytes"
        limits = ", ".join(f"{t} > {n:,}" for t, n in self.limits)
        return f"collections of {where} over the limits ({limits} elements, or > {self.max_bytes:,} bytes)"  # noqa: E501

    def matcher(self) -> Callable[[Fact], bool]:
        """A predicate over scan facts (one per job: it keeps a namespace cache)."""
        namespace = Rollup(self.delimiter, self.depth).namespace
        is_lock = LockDetector(self.delimiter, list(self.lock_words)).is_lock
        limits, exempt, ns, rule = dict(self.limits), self.exempt_types, self.namespace, self.rule

        def selects(fact: Fact) -> bool:
            key, kind, ttl, size, count = fact
            if namespace(key) != ns:
                return False
            if rule == "missing-ttl":
                return ttl == -1 and kind not in exempt and not is_lock(key, kind)
            if rule == "big-string":
                length = count if count is not None else size
                return kind == "string" and length is not None and length > self.max_bytes
            limit = limits.get(kind)
            return limit is not None and (
                (count is not None and count > limit)
                or (size is not None and size > self.max_bytes)
            )

        return selects


@dataclass(frozen=True)
class BulkAction:
    """What to do to each selected key: ``expire`` (TTL ``ttl_s``, plus up to
    ``spread_pct`` % at random so they do not all expire at once) or ``unlink``."""

    kind: str
    ttl_s: int | None = None
    spread_pct: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("expire", "unlink"):
            raise BulkError(f"action must be expire or unlink, got {self.kind!r}")
        if self.kind == "expire" and not (self.ttl_s and self.ttl_s > 0):
            raise BulkError("setting a TTL needs a positive number of seconds")
        if not 0 <= self.spread_pct <= MAX_SPREAD_PCT:
            raise BulkError(f"spread must be between 0 and {MAX_SPREAD_PCT} %")

    def describe(self) -> str:
        if self.kind == "unlink":
            return "delete (UNLINK)"
        spread = f", plus up to {self.spread_pct} % at random" if self.spread_pct else ""
        return f"set a TTL of {self.ttl_s:,} s{spread} (EXPIRE NX: only where none is set)"

    def ttl(self, rng: random.Random) -> int:
        assert self.ttl_s is not None
        extra = self.ttl_s * self.spread_pct // 100
        return self.ttl_s + (rng.randint(0, extra) if extra else 0)

    def targets(self, selected: list[Fact]) -> list[Fact]:
        """The selected keys this action would change (EXPIRE NX leaves TTL'd keys)."""
        if self.kind == "expire":
            return [f for f in selected if f[2] == -1]
        return selected


@dataclass
class BulkJob:
    """One walk over the selected keys: a dry run (counts) or an apply (writes)."""

    selector: Selector
    action: BulkAction
    apply: bool
    options: ScanOptions
    throttle_ms: float = 0.0
    who: str = ""
    dry_run_of: str | None = None
    sleep: Callable[[float], None] = time.sleep
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    state: str = "queued"
    error: str | None = None
    dbsize: int | None = None
    examined: int = 0
    scanned: int = 0
    selected: int = 0
    would_change: int = 0
    changed: int = 0
    skipped: int = 0
    vanished: int = 0
    steps: int = 0
    max_step_keys: int = 0
    max_step_server_us: int = 0
    server_us: int = 0
    expire_nx: bool = True
    examples: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def running(self) -> bool:
        return self.state in ("queued", "running")

    def run(self, client: Any) -> None:
        """Walk every primary; never raises (the outcome is in ``state``/``error``)."""
        self.state, self.started_at = "running", time.time()
        try:
            nodes = node_clients(client)
            self.dbsize = sum(int(conn.dbsize()) for _, _, conn in nodes)
            for address, _, conn in nodes:
                if self._walk(address, conn, is_cluster(client)):
                    break
            self.state = "cancelled" if self._cancel.is_set() else "done"
        except Exception as exc:  # the report says what failed; what was done is counted
            self.state, self.error = "failed", describe_error("bulk action", exc)
        finally:
            self.finished_at = time.time()

    def _walk(self, address: str, conn: Any, cluster: bool) -> bool:
        """One node's keys, step by step; True when cancelled."""
        opts = self.options
        scanner = NodeScanner(conn, opts, name=address, cluster=cluster)
        selects, rng = self.selector.matcher(), random.Random()
        glob, kind = self.selector.glob(), self.selector.scan_type()
        cursor = 0  # keys per step: scanner.count, sized like the keyspace scan's pages
        while True:
            if self._cancel.is_set():
                return True
            started = time.monotonic()
            count = scanner.count
            kwargs: dict[str, Any] = {"match": glob, "count": count}
            if kind:
                kwargs["_type"] = kind
            cursor, raw = conn.scan(cursor, **kwargs)
            keys = [bytes(k) for k in raw]
            facts, vanished, _refused, facts_us = scanner.facts(keys)
            chosen = [f for f in facts if selects(f)]
            targets = self.action.targets(chosen)
            write_us = self._write(conn, targets, rng) if self.apply and targets else 0
            with self._lock:
                self.steps += 1
                self.examined += count
                self.scanned += len(keys)
                self.vanished += vanished
                self.selected += len(chosen)
                self.would_change += len(targets)
                step_us = facts_us + write_us
                self.server_us += step_us
                self.max_step_keys = max(self.max_step_keys, len(keys))
                self.max_step_server_us = max(self.max_step_server_us, step_us)
                room = EXAMPLES - len(self.examples)
                self.examples += [display_key(f[0], 200) for f in targets[:room]]
            scanner._adapt(step_us, len(keys))  # the scan's own page sizing, on the whole step
            if int(cursor) == 0:
                return False
            took = time.monotonic() - started
            self.sleep(max(self.throttle_ms / 1000, took))

    def _write(self, conn: Any, targets: list[Fact], rng: random.Random) -> int:
        """One pipeline of writes between TIME calls; returns the server's span in us."""
        pipe = conn.pipeline(transaction=False)
        pipe.time()
        for fact in targets:
            if self.action.kind == "unlink":
                pipe.unlink(fact[0])
            else:
                pipe.expire(fact[0], self.action.ttl(rng), nx=self.expire_nx)
        pipe.time()
        replies = pipe.execute(raise_on_error=False)
        first, last, results = replies[0], replies[-1], replies[1:-1]
        errors = [r for r in results if isinstance(r, Exception)]
        if errors and self.expire_nx and _nx_unsupported(errors[0]):
            self.expire_nx = False  # Redis < 7: plain EXPIRE (we just saw these had none)
            return self._write(conn, targets, rng)
        if errors:
            raise errors[0]
        with self._lock:
            done = sum(1 for r in results if r)
            self.changed += done
            self.skipped += len(results) - done
        if isinstance(first, Exception) or isinstance(last, Exception):
            return 0
        return (int(last[0]) - int(first[0])) * 1_000_000 + int(last[1]) - int(first[1])

    def progress(self) -> float | None:
        """0..1, estimated from keys examined against the database size."""
        if self.state == "done":
            return 1.0
        if not self.dbsize:
            return None
        return min(0.99, self.examined / self.dbsize)

    def public(self) -> dict[str, Any]:
        """Plain data for the page and ``/bulk/job/<id>.json`` (docs/actions.md)."""
        with self._lock:
            return {
                "id": self.id,
                "mode": "apply" if self.apply else "dry-run",
                "rule": self.selector.rule,
                "namespace": self.selector.path,
                "selects": self.selector.describe(),
                "action": self.action.kind,
                "ttl_s": self.action.ttl_s,
                "spread_pct": self.action.spread_pct,
                "does": self.action.describe(),
                "state": self.state,
                "error": self.error,
                "dry_run_of": self.dry_run_of,
                "who": self.who,
                "progress": self.progress(),
                "dbsize": self.dbsize,
                "examined": self.examined,
                "scanned": self.scanned,
                "selected": self.selected,
                "would_change": self.would_change,
                "changed": self.changed if self.apply else None,
                "skipped": self.skipped if self.apply else None,
                "vanished": self.vanished,
                "steps": self.steps,
                "max_step_keys": self.max_step_keys,
                "max_step_server_ms": round(self.max_step_server_us / 1000, 3),
                "server_ms": round(self.server_us / 1000, 1),
                "budget_ms": self.options.target_ms,
                "expire_nx": self.expire_nx,
                "examples": list(self.examples),
                "created_at": round(self.created_at, 3),
                "started_at": self.started_at and round(self.started_at, 3),
                "finished_at": self.finished_at and round(self.finished_at, 3),
            }


def _nx_unsupported(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, ResponseError) and ("syntax" in text or "wrong number" in text)


class BulkJobs:
    """The recent jobs of one target; at most one apply runs at a time."""

    def __init__(self, kept: int = JOBS_KEPT) -> None:
        self._jobs: OrderedDict[str, BulkJob] = OrderedDict()
        self._lock = threading.Lock()
        self.kept = kept

    def start(
        self, job: BulkJob, client: Any, on_done: Callable[[BulkJob], None] | None = None
    ) -> BulkJob:
        """Run ``job`` on a thread of its own (409 while another apply runs)."""
        with self._lock:
            if job.apply and any(j.apply and j.running for j in self._jobs.values()):
                raise BulkError("another bulk action is running on this Redis: wait for it", 409)
            self._jobs[job.id] = job
            while len(self._jobs) > self.kept:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].running:
                    break
                del self._jobs[oldest]

        def run() -> None:
            job.run(client)
            if on_done is not None:
                on_done(job)

        threading.Thread(target=run, name=f"bulk-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> BulkJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self) -> list[BulkJob]:
        with self._lock:
            return list(reversed(self._jobs.values()))
