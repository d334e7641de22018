"""Key facts for a whole keyspace, one SCAN page at a time, without blocking Redis.

Per key: type, PTTL (ms, -1 none), MEMORY USAGE and element count. The **lua** path
(``lua/scan_batch.lua``, one EVALSHA_RO per page, server time measured with TIME)
is preferred; the **pipeline** path (TYPE+PTTL+MEMORY USAGE, then the counts, each
pipeline between TIME calls) takes over when scripting is refused or missing
(ACL ``-@scripting``, Redis < 7, fakeredis), with per-command errors kept per key.
The next SCAN rides in the same round trip as a page's facts; the page size adapts
to ``target_ms``; keys that vanish mid-scan are counted, not fatal. In a cluster a
page's keys go in ARGV to the node that returned them (Redis 7 refuses one call's
KEYS of several slots), read again one call per slot when the node does not serve
them all (:mod:`~dashboard.inspect.keyspace.scriptpage`). How and why, settings,
numbers: docs/scan.md.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from redis import exceptions as rx
from redis.crc import key_slot

from dashboard.inspect.errors import CONNECTION_ERRORS, describe_error
from dashboard.inspect.nodes import is_topology_error, is_transient_error

from .options import LUA, PATHS, PIPELINE, SCAN_FROM, Batch, ScanOptions, is_refusal
from .rollup import Fact
from .scriptpage import MOVED, ScriptPage, group, ok, send

__all__ = [
    "LUA",
    "PATHS",
    "PIPELINE",
    "SCAN_FROM",
    "Batch",
    "NodeScanner",
    "ScanOptions",
    "is_refusal",
]

# Pages are sized for this share of target_ms: per-key cost varies (types, sizes,
# a busy host), and the headroom keeps nearly every page under the target.
AIM = 0.6
# Key names per page are capped too: a keyspace of megabyte-long names must not turn
# one page into a command of hundreds of megabytes.
MAX_PAGE_KEY_BYTES = 4 * 1024 * 1024
_TYPES = "string hash list set zset stream".split()
_COUNT_COMMANDS = dict(zip(_TYPES, "STRLEN HLEN LLEN SCARD ZCARD XLEN".split(), strict=True))
_TYPE_NAMES = {name.encode(): name for name in (*_TYPES, "none")}
_MOVED = "\x00moved"
_TYPE_NAMES[MOVED] = _MOVED
_GONE = ("none", _MOVED)


def _key_list(raw: list[Any]) -> list[bytes]:
    """SCAN's keys as bytes (a client with decode_responses=True hands out str)."""
    if all(type(k) is bytes for k in raw):
        return raw
    return [k if isinstance(k, bytes) else str(k).encode("utf-8", "surrogateescape") for k in raw]


def _type_name(value: Any) -> str:
    if isinstance(value, bytes):
        return _TYPE_NAMES.get(value) or value.decode("utf-8", "replace")
    return str(value)


@dataclass
class NodeScanner:
    """Walks one node's keyspace with its own cursor; call :meth:`next_batch` until done.

    ``conn``: a plain client for one node (in a cluster: that node, never routed, since
    a page's keys go to it in ARGV); ``cluster``: a cluster node (pages span slots);
    ``slots``: count only keys of these slots (a cluster shard's slots as assigned
    to this scanner; the others are ``skipped``); ``on_keys(keys)``: called between
    a page's SCAN and its facts (test seam).
    """

    conn: Any
    options: ScanOptions = field(default_factory=ScanOptions)
    name: str = ""
    cluster: bool = False
    on_keys: Callable[[list[bytes]], None] | None = None
    clock: Callable[[], float] = time.perf_counter
    slots: frozenset[int] | None = None
    cursor: int = 0
    done: bool = False
    count: int = 0
    moved: int = 0  # keys answered with MOVED/ASK so far: the slot map changed under us
    path: str | None = None
    path_reason: str | None = None
    memory: bool | None = None
    memory_reason: str | None = None

    def __post_init__(self) -> None:
        opts = self.options
        self.count = self.count or max(opts.min_count, min(opts.start_count, opts.max_count))
        if opts.path != "auto":
            self.path, self.path_reason = opts.path, "chosen by the path option"
        self._samples = b"" if opts.samples is None else str(opts.samples).encode()
        self._lua = ScriptPage(self.conn, self._samples)
        self._pending: list[bytes] | None = None  # keys SCAN returned, facts not yet gathered

    def next_batch(self) -> Batch:
        """Gather the facts of one page (and SCAN the next one in the same round trip).

        A page holds at most ``count`` keys: when SCAN returned more (its COUNT is a
        hint, and the count may have shrunk since), the rest waits for the next call
        under the same cursor. The scanner's state moves only once a page's facts are
        in hand, so after a connection error the same page is tried again.
        """
        if self.done:
            raise RuntimeError(f"scan of {self.name or 'node'} is already complete")
        started = self.clock()
        if self._pending is None:
            cursor, raw = self.conn.scan(self.cursor, count=self.count)
            self._pending, self.cursor = _key_list(raw), int(cursor)
        count = self.count
        page = _within_budget(self._pending[:count])
        rest = self._pending[len(page) :]
        if page and self.on_keys is not None:
            self.on_keys(page)
        keys, groups = self._assigned(page)
        after = None if rest or not self.cursor else self.cursor  # piggyback the next SCAN
        fell_back = False
        if keys:
            path, server_us, flat, following, fell_back = self._facts(keys, groups, after)
        else:
            path, server_us, flat = None, None, []
            following = None if after is None else self.conn.scan(after, count=count)
        wall_us = int((self.clock() - started) * 1_000_000)
        facts, vanished, refused, moved = _facts_of(keys, flat)
        self.moved += moved
        self._adapt(server_us, len(keys))
        if following is not None:
            self._pending, self.cursor = _key_list(following[1]), int(following[0])
        elif rest:
            self._pending = rest
        else:
            self._pending, self.done = None, True
        return Batch(
            facts,
            len(page),
            vanished,
            refused,
            count,
            path,
            server_us,
            wall_us,
            self.cursor,
            moved,
            len(page) - len(keys),
            self.name,
            fell_back,
        )

    def facts(self, keys: list[bytes]) -> tuple[list[Fact], int, int, int]:
        """``(facts, vanished, refused, server_us)`` of keys found another way (the key
        browser's and bulk actions' SCAN MATCH): one script call, or the pipeline path."""
        if not keys:
            return [], 0, 0, 0
        keys, groups = self._assigned(keys)
        _path, server_us, flat, _, _ = self._facts(keys, groups, None)
        facts, vanished, refused, moved = _facts_of(keys, flat)
        return facts, vanished + moved, refused, server_us or 0  # moved: not on this node

    def _assigned(self, page: list[bytes]) -> tuple[list[bytes], list[list[int]]]:
        """The page's keys this scanner counts, and their positions grouped by slot
        (one group when not in a cluster)."""
        if not self.cluster:
            return page, [list(range(len(page)))]
        slots = list(map(key_slot, page))
        if self.slots is not None and not self.slots.issuperset(slots):
            wanted = self.slots
            kept = [(k, s) for k, s in zip(page, slots, strict=True) if s in wanted]
            page, slots = [k for k, _ in kept], [s for _, s in kept]
        return page, group(slots)

    def _facts(
        self, keys: list[bytes], groups: list[list[int]], after: int | None
    ) -> tuple[Any, ...]:
        """``(path, server_us, flat, next SCAN reply, fell back)``; flat: type, pttl, bytes,
        count per key; fell back: a cluster page the node refused in the ARGV form (a key
        it does not serve) was read again one call per slot."""
        if self.path != PIPELINE:
            try:
                server_us, flat, following, fell_back = self._lua.facts(
                    keys, groups, after, self.count
                )
            except CONNECTION_ERRORS:
                raise
            except rx.RedisError as exc:
                if (
                    self.options.path == LUA
                    or retry_later(exc)  # CLUSTERDOWN, LOADING: the page is read again
                    or not (is_refusal(exc) or self.path == LUA)
                ):
                    raise
                # Refused or missing scripting (detected once), or a script that
                # failed mid-scan (e.g. an ACL key pattern): the pipeline path is
                # exact too, just slower. Remember why, for the report.
                self.path = PIPELINE
                self.path_reason = describe_error("EVALSHA_RO scan_batch", exc)
            else:
                self.path = LUA
                return LUA, server_us, flat, following, fell_back
        return (PIPELINE, *self._pipeline(keys, after), False)

    def _pipeline(self, keys: list[bytes], after: int | None) -> tuple[int, list[Any], Any]:
        """Two pipelines, each between TIME calls so the server's span is measured."""
        if self.memory is None:
            self._probe_memory(keys[0])
        samples = () if self.options.samples is None else (b"SAMPLES", self._samples)
        per_key = 3 if self.memory else 2
        commands: list[tuple[Any, ...]] = [("TIME",)]
        for key in keys:
            commands += [("TYPE", key), ("PTTL", key)]
            if self.memory:
                commands.append(("MEMORY USAGE", key, *samples))
        commands.append(("TIME",))
        if after is not None:
            commands.append(("SCAN", after, "COUNT", self.count))
        first = send(self.conn, commands)
        following = ok(first.pop()) if after is not None else None
        server_us = _span(first.pop(0), first.pop())
        flat: list[Any] = []
        counts: list[tuple[Any, ...]] = [("TIME",)]
        wanted: list[int] = []
        for i, key in enumerate(keys):
            kind_reply, ttl = first[per_key * i], first[per_key * i + 1]
            size = first[per_key * i + 2] if self.memory else None
            if isinstance(kind_reply, (rx.MovedError, rx.AskError)):
                flat += (MOVED, None, None, None)  # the slot left this node mid-scan
                continue
            kind_reply, ttl, size = _known(kind_reply), _known(ttl), _known(size)
            kind = None if kind_reply is None else _type_name(kind_reply)
            if kind is None:
                ttl = None
            flat += (None if kind is None else kind_reply, ttl, size, None)  # None: refused
            command = _COUNT_COMMANDS.get(kind or "")
            if command:
                counts.append((command, key))
                wanted.append(i)
        if wanted:
            replies = send(self.conn, [*counts, ("TIME",)])
            server_us += _span(replies.pop(0), replies.pop())
            for i, value in zip(wanted, replies, strict=True):
                flat[4 * i + 3] = _known(value)
        return server_us, flat, following

    def _probe_memory(self, key: bytes) -> None:
        """Ask once whether MEMORY USAGE exists for us: fakeredis fails a whole pipeline
        on an unknown command, and the command gate refuses before sending."""
        try:
            self.conn.execute_command("MEMORY USAGE", key)
        except CONNECTION_ERRORS:
            raise
        except rx.RedisError as exc:
            if is_refusal(exc) and "key" not in str(exc).lower():  # key-pattern NOPERM: per key
                self.memory, self.memory_reason = False, describe_error("MEMORY USAGE", exc)
                return
        self.memory = True

    def _adapt(self, measured_us: int | None, keys: int) -> None:
        """Size pages so the measured server time lands near ``AIM`` of the target."""
        opts = self.options
        if not keys or measured_us is None:
            return
        target_us = opts.target_ms * 1000
        per_key = max(measured_us, 1) / keys
        wanted = int(AIM * target_us / per_key)
        if measured_us > target_us:
            new = min(wanted, self.count // 2 or 1)
        elif measured_us < target_us / 2:
            new = min(max(wanted, self.count), self.count * 2)
        else:
            new = self.count
        self.count = max(opts.min_count, min(new, opts.max_count))

    def state(self) -> dict[str, Any]:
        """Plain data for progress reports (``memory``: MEMORY USAGE is in use)."""
        names = ("cursor", "done", "count", "path", "path_reason", "memory_reason")
        return {
            "node": self.name,
            "memory": self.memory is not False,
            "fallbacks": self._lua.fallbacks,
        } | {name: getattr(self, name) for name in names}


def retry_later(exc: BaseException) -> bool:
    """An error that says "not now" for the whole node (CLUSTERDOWN, TRYAGAIN, LOADING,
    a connection lost...), not "not for you" for one key: the page is read again later,
    never counted as refused keys."""
    return is_topology_error(exc) or is_transient_error(exc)


def _known(reply: Any) -> Any:
    """One per-key reply of the pipeline path: the value; None when the server would not
    give it for this key (ACL key pattern, a type changed meanwhile); raises when it
    would not answer anything now (:func:`retry_later`)."""
    if isinstance(reply, Exception):
        if retry_later(reply):
            raise reply
        return None
    return reply


def _facts_of(keys: list[bytes], flat: list[Any]) -> tuple[list[Fact], int, int, int]:
    """Facts from the flat reply, minus vanished keys (TYPE none, PTTL -2), refused
    ones and moved ones (their slot left the node: MOVED/ASK, not vanished).

    Column slices and ``zip`` keep the per-key work in C: this runs for every key.
    """
    raw_kinds, ttls = flat[0::4], flat[1::4]
    kinds: list[Any] = list(map(_TYPE_NAMES.get, raw_kinds))
    if None in kinds:  # module types, str replies, refused keys
        kinds = [None if raw is None else _type_name(raw) for raw in raw_kinds]
    facts = list(zip(keys, kinds, ttls, flat[2::4], flat[3::4], strict=True))
    if None not in kinds and "none" not in kinds and -2 not in ttls and _MOVED not in kinds:
        return facts, 0, 0, 0
    kept = [f for f in facts if f[1] is not None and f[1] not in _GONE and f[2] != -2]
    refused, moved = kinds.count(None), kinds.count(_MOVED)
    return kept, len(facts) - len(kept) - refused - moved, refused, moved


def _within_budget(keys: list[bytes]) -> list[bytes]:
    """The leading keys whose names fit in MAX_PAGE_KEY_BYTES (at least one key)."""
    ends = list(accumulate(map(len, keys)))
    if not ends or ends[-1] <= MAX_PAGE_KEY_BYTES:
        return keys
    return keys[: max(bisect_right(ends, MAX_PAGE_KEY_BYTES), 1)]


def _span(before: Any, after: Any) -> int:
    """Microseconds between two TIME replies ((sec, usec) pairs)."""
    if isinstance(before, Exception) or isinstance(after, Exception):
        return 0
    return (int(after[0]) - int(before[0])) * 1_000_000 + int(after[1]) - int(before[1])
