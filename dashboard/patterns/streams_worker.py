"""A consumer-group worker: at-least-once processing, recovery, dead letters.

* An entry is XACKed only after the handler returned; a handler that raises
  leaves it pending, to be delivered again.
* On start the worker first re-reads its own pending entries (XREADGROUP id ``0``):
  a restarted consumer with the same name finishes what it had been given.
* Every ``claim_every_ms`` it runs XAUTOCLAIM: entries pending for longer than
  ``claim_idle_ms`` (their consumer died, or the handler failed) move to it. On
  Redis 7 XAUTOCLAIM also returns, and drops from the pending list, entries that
  were deleted or trimmed while pending; an own pending entry read back without
  fields (deleted) is XACKed. Both count as ``deleted``.
* An entry delivered more than ``max_deliveries`` times (its count comes from the
  XPENDING extended form) is added to the dead-letter stream and then XACKed. That
  is two single-key commands, so the streams may live on different cluster slots;
  a crash between them can dead-letter an entry twice, never lose it.
* ``stop()`` lets the current batch finish; nothing more is read.

Dead-letter entry fields: ``origin-id``, ``origin-stream``, ``origin-group``,
``consumer``, ``deliveries``, ``error``, and every original field prefixed with
``field:`` (:func:`original_fields` strips the prefix).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dashboard.patterns.runtime import Batch, Call, Sleep, Steps, blocking, cmd, run

FIELD_PREFIX = "field:"
_MAX_REMEMBERED_ERRORS = 1024
_MAX_ERROR_CHARS = 1000


class GroupMissing(RuntimeError):
    """The consumer group (or the stream) does not exist: call ``ensure_group`` first."""


@dataclass(frozen=True)
class Entry:
    """One entry handed to the handler; ``deliveries`` is 1 on the first delivery."""

    id: str
    fields: dict[Any, Any]
    deliveries: int


def as_text(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


def dead_letter_name(stream: str | bytes) -> str | bytes:
    """``<stream>:dead``; a hash-tagged stream's dead letters stay on its slot."""
    return stream + b":dead" if isinstance(stream, bytes) else f"{stream}:dead"


def original_fields(dead_fields: Mapping[Any, Any]) -> dict[Any, Any]:
    """The original entry's fields from a dead-letter entry's fields."""
    out: dict[Any, Any] = {}
    for name, value in dead_fields.items():
        prefix: Any = FIELD_PREFIX.encode() if isinstance(name, bytes) else FIELD_PREFIX
        if name.startswith(prefix):
            out[name[len(prefix) :]] = value
    return out


def _entries(reply: Any) -> list[tuple[Any, Any]]:
    """XREADGROUP's entries for one stream, in either reply shape redis-py gives."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [e for batch in reply.values() for e in _flatten(batch)]
    return [e for _stream, batch in reply for e in batch]


def _flatten(batch: Any) -> list[Any]:
    return batch[0] if batch and isinstance(batch[0], list) else batch


class WorkerCore:
    """Reads ``stream`` as ``consumer`` of ``group`` and calls ``handler(entry)``.

    ``block_ms`` bounds how long an idle read waits (0 does not block; the client's
    socket timeout must be longer). ``clock`` (seconds) and ``sleep`` are injectable:
    the clock schedules XAUTOCLAIM, sleep paces retries after a lost connection.
    """

    default_sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(
        self,
        client: Any,
        stream: str | bytes,
        group: str | bytes,
        consumer: str | bytes,
        handler: Callable[[Entry], Any],
        *,
        count: int = 10,
        block_ms: int = 2000,
        claim_idle_ms: int = 60_000,
        claim_every_ms: int | None = None,
        max_deliveries: int = 5,
        dead_letter_stream: str | bytes | None = None,
        dead_letter_maxlen: int | None = 100_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
        backoff_max: float = 5.0,
    ) -> None:
        if count < 1 or max_deliveries < 1 or block_ms < 0 or claim_idle_ms < 0:
            raise ValueError("count and max_deliveries must be >= 1, block/claim times >= 0")
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        every = claim_idle_ms if claim_every_ms is None else claim_every_ms
        self.claim_every = max(every, 0) / 1000
        self.max_deliveries = max_deliveries
        self.dead_letter_stream = dead_letter_stream or dead_letter_name(stream)
        self.dead_letter_maxlen = dead_letter_maxlen
        self._clock = clock
        self._sleep = sleep
        self.sleep = self.default_sleep
        self.backoff_max = backoff_max
        self.processed = self.failed = self.reclaimed = self.dead_lettered = self.deleted = 0
        self.last_error: str | None = None
        self.error: BaseException | None = None  # what ended the thread, if not stop()
        self._backlog_cursor: str | None = "0"  # None once own pending entries are re-read
        self._claim_cursor = "0-0"
        self._next_claim_at: float | None = None  # None: due now
        self._errors: dict[str, str] = {}
        self._stopping = False

    # --- one step --------------------------------------------------------------------

    def _run_once(self) -> Steps:
        """One batch: own pending entries first, then due reclaims, then new entries.

        Returns how many entries the step dealt with (0 when there was nothing).
        """
        try:
            if self._backlog_cursor is not None:
                handled = yield from self._own_pending()
                if handled:
                    return handled
            if self._next_claim_at is None or self._clock() >= self._next_claim_at:
                handled = yield from self._reclaim()
                if handled:
                    return handled
            return (yield from self._read_new())
        except ResponseError as exc:
            if str(exc).startswith("NOGROUP"):
                raise GroupMissing(
                    f"stream {self.stream!r} has no consumer group {self.group!r}: "
                    "create it with ensure_group()"
                ) from exc
            raise

    def _own_pending(self) -> Steps:
        reply = yield cmd(
            "xreadgroup",
            self.group,
            self.consumer,
            {self.stream: self._backlog_cursor},
            count=self.count,
        )
        entries = _entries(reply)
        if not entries:
            self._backlog_cursor = None
            return 0
        self._backlog_cursor = as_text(entries[-1][0])
        deliveries = yield from self._deliveries(entries)
        return (yield from self._handle(entries, deliveries))

    def _reclaim(self) -> Steps:
        reply = yield cmd(
            "xautoclaim",
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=self.count,
        )
        cursor, claimed = as_text(reply[0]), [e for e in reply[1] if e[0] is not None]
        gone = reply[2] if len(reply) > 2 else []  # Redis >= 7: deleted while pending
        self._claim_cursor = cursor
        if cursor == "0-0":  # scanned the whole pending list: rest until the next round
            self._next_claim_at = self._clock() + self.claim_every
        self.deleted += len(gone)
        for entry_id in gone:
            self._errors.pop(as_text(entry_id), None)
        self.reclaimed += len(claimed)
        deliveries = yield from self._deliveries(claimed)
        return (yield from self._handle(claimed, deliveries)) + len(gone)

    def _read_new(self) -> Steps:
        reply = yield cmd(
            "xreadgroup",
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.count,
            block=self.block_ms or None,
        )
        entries = _entries(reply)
        return (yield from self._handle(entries, {as_text(e[0]): 1 for e in entries}))

    def _deliveries(self, entries: list[tuple[Any, Any]]) -> Steps:
        """Delivery counts of entries this consumer holds (XPENDING extended, per id).

        An id missing from the answer is no longer ours (acked or claimed by
        another consumer meanwhile) and is skipped by :meth:`_handle`.
        """
        if not entries:
            return {}
        stream, group = self.stream, self.group
        replies = yield Batch([cmd("xpending_range", stream, group, i, i, 1) for i, _ in entries])
        counts: dict[str, int] = {}
        for rows in replies:
            for row in rows:
                if as_text(row["consumer"]) == as_text(self.consumer):
                    counts[as_text(row["message_id"])] = int(row["times_delivered"])
        return counts

    def _handle(self, entries: list[tuple[Any, Any]], deliveries: dict[str, int]) -> Steps:
        for raw_id, fields in entries:
            entry_id = as_text(raw_id)
            if entry_id not in deliveries:
                continue
            if not fields:  # deleted or trimmed while pending: nothing left to process
                yield cmd("xack", self.stream, self.group, entry_id)
                self._errors.pop(entry_id, None)
                self.deleted += 1
                continue
            times = deliveries[entry_id]
            if times > self.max_deliveries:
                reason = self._errors.pop(entry_id, None) or "delivery count exceeded"
                yield from self._dead_letter(entry_id, fields, times, reason)
                continue
            try:
                yield Call(self.handler, (Entry(entry_id, fields, times),))
            except Exception as exc:
                self.failed += 1
                self.last_error = f"{entry_id}: {type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
                if times >= self.max_deliveries:
                    self._errors.pop(entry_id, None)
                    yield from self._dead_letter(entry_id, fields, times, self.last_error)
                else:
                    self._remember_error(entry_id, self.last_error)
                continue
            yield cmd("xack", self.stream, self.group, entry_id)
            self._errors.pop(entry_id, None)
            self.processed += 1
        return len(entries)

    def _remember_error(self, entry_id: str, error: str) -> None:
        if len(self._errors) >= _MAX_REMEMBERED_ERRORS:
            self._errors.pop(next(iter(self._errors)))
        self._errors[entry_id] = error

    def _dead_letter(self, entry_id: str, fields: dict[Any, Any], times: int, error: str) -> Steps:
        meta = {
            "origin-id": entry_id,
            "origin-stream": self.stream,
            "origin-group": self.group,
            "consumer": self.consumer,
            "deliveries": times,
            "error": error,
        }
        for name, value in fields.items():
            prefix: Any = FIELD_PREFIX.encode() if isinstance(name, bytes) else FIELD_PREFIX
            meta[prefix + name] = value
        dead, maxlen = self.dead_letter_stream, self.dead_letter_maxlen
        yield cmd("xadd", dead, meta, maxlen=maxlen, approximate=True)
        yield cmd("xack", self.stream, self.group, entry_id)  # after the copy: never lost
        self.dead_lettered += 1

    # --- running (the loop; the shells run it in a thread or a task) -----------------

    def _run(self) -> Steps:
        """Process until stopped; a lost connection is retried with backoff."""
        delay = 0.05
        while not self._stopping:
            try:
                yield from self._run_once()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                yield Sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            else:
                delay = 0.05
        self._stopping = False

    def stats(self) -> dict[str, Any]:
        """Counters as plain data."""
        return {
            "processed": self.processed,
            "failed": self.failed,
            "reclaimed": self.reclaimed,
            "dead_lettered": self.dead_lettered,
            "deleted": self.deleted,
            "last_error": self.last_error,
            "alive": self.alive,
        }


class Worker(WorkerCore):
    """The consumer-group worker with blocking calls, run in a thread (``start``) or
    driven step by step (``run_once``); the asyncio twin is ``aio.AsyncWorker``."""

    run_once = blocking(WorkerCore._run_once)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Process until :meth:`stop`; a lost connection is retried with backoff."""
        try:
            run(self._run(), self.client, self._pause)
        finally:
            self._stop.clear()

    def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._stop.wait(seconds)

    def start(self) -> Worker:
        """Run in a daemon thread; returns self."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._thread_main, name=f"stream-worker-{as_text(self.consumer)}", daemon=True
        )
        self._thread.start()
        return self

    def _thread_main(self) -> None:
        try:
            self.run()
        except Exception as exc:
            self.error = exc
            self.last_error = f"{type(exc).__name__}: {exc}"

    def stop(self, timeout: float | None = None) -> bool:
        """Finish the current batch, read nothing more; True once the thread ended."""
        self._stopping = True
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
