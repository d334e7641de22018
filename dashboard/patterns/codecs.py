"""Cache storage format: value codecs, the entry envelope, key layout, read side.

``dashboard.patterns.cache`` writes what this module defines; the dashboard
reads it back with :func:`entry_info` and :func:`read_stats` (read-only commands).

A codec turns an application value into bytes and back (``dumps``/``loads``);
JSON is the default, :class:`BytesCodec` stores bytes untouched. The envelope
wraps a codec payload in a small text header so that one Redis string holds
everything a reader needs, and ``redis-cli GET`` still shows it readably::

    rdc1 <write id: 16 hex> {"k":"v","c":"json","t":300000,"g":0,"d":12,"tg":{}}\\n<payload>

``k`` is the kind (``v`` value, ``n`` cached None, ``x`` tombstone left by a
delete), ``c`` the codec name, ``t`` the logical TTL and ``g`` the stale grace
(ms), ``d`` how long the loader took (ms, for XFetch), ``tg`` the tag version
each tag had when the loader started. The write id sits at a fixed offset so
``lua/cache_store.lua`` can compare it without parsing JSON.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from redis.exceptions import RedisError

from dashboard.keyid import display_key, escape_bytes
from dashboard.patterns import keys
from dashboard.patterns.runtime import Batch, Steps, cmd, run

MAGIC = b"rdc1 "
WRITE_ID_HEX = 16
_ID_END = len(MAGIC) + WRITE_ID_HEX
HEADER_START = _ID_END + 1
MAX_HEADER_BYTES = 64 * 1024
KINDS = {"v": "value", "n": "negative", "x": "tombstone"}
_HEX_ID = re.compile(rb"[0-9a-f]{%d}" % WRITE_ID_HEX)


@runtime_checkable
class Codec(Protocol):
    """Turns values into bytes and back; ``name`` is stored in every entry."""

    name: str

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonCodec:
    """Compact UTF-8 JSON: readable in redis-cli and safe to load (unlike pickle)."""

    name = "json"

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class BytesCodec:
    """Bytes in, the same bytes out: for values the application already serialized."""

    name = "bytes"

    def dumps(self, obj: Any) -> bytes:
        if not isinstance(obj, bytes | bytearray | memoryview):
            raise TypeError(f"BytesCodec stores bytes, not {type(obj).__name__}")
        return bytes(obj)

    def loads(self, data: bytes) -> Any:
        return bytes(data)


JSON = JsonCodec()
BYTES = BytesCodec()


class EnvelopeError(ValueError):
    """The bytes are not a cache entry written by this module (or are damaged)."""


@dataclass(frozen=True)
class Envelope:
    """One parsed cache entry."""

    write_id: str
    kind: str  # "value" | "negative" | "tombstone"
    codec: str
    ttl_ms: int
    grace_ms: int
    delta_ms: int
    tags: dict[str, str] = field(default_factory=dict)
    payload: bytes = b""
    header_bytes: int = 0


def new_write_id() -> str:
    """A random id for one write; a later write always has a different one."""
    return secrets.token_hex(WRITE_ID_HEX // 2)


def encode_envelope(
    kind: str,
    codec: str,
    *,
    ttl_ms: int = 0,
    grace_ms: int = 0,
    delta_ms: int = 0,
    tags: dict[str, str] | None = None,
    payload: bytes = b"",
    write_id: str | None = None,
) -> bytes:
    """Header + payload as the one string stored under the entry key."""
    code = next((c for c, name in KINDS.items() if name == kind), None)
    if code is None:
        raise ValueError(f"unknown entry kind {kind!r}")
    header = {"k": code, "c": codec, "t": ttl_ms, "g": grace_ms, "d": delta_ms, "tg": tags or {}}
    wid = write_id or new_write_id()
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return MAGIC + wid.encode("ascii") + b" " + text + b"\n" + payload


def write_id_of(raw: bytes | None) -> str:
    """The write id of an entry, ``""`` for a missing or foreign value (as the Lua does)."""
    if raw is None or not raw.startswith(MAGIC):
        return ""
    return raw[len(MAGIC) : _ID_END].decode("ascii", errors="replace")


def parse_envelope(raw: bytes) -> Envelope:
    """Parse an entry; ``raw`` may be a prefix of it (then the payload is cut short)."""
    if not raw.startswith(MAGIC):
        raise EnvelopeError("no rdc1 header: not written by dashboard.patterns.cache")
    if not _HEX_ID.fullmatch(raw[len(MAGIC) : _ID_END]) or raw[_ID_END:HEADER_START] != b" ":
        raise EnvelopeError("damaged header: bad write id")
    end = raw.find(b"\n", HEADER_START, HEADER_START + MAX_HEADER_BYTES)
    if end == -1:
        raise EnvelopeError("damaged header: no end of header line")
    try:
        header = json.loads(raw[HEADER_START:end])
        kind = KINDS[header["k"]]
        tags = header.get("tg", {})
        if not isinstance(tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise TypeError("tags")
        numbers = [int(header[n]) for n in ("t", "g", "d")]
        codec = str(header["c"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EnvelopeError(f"damaged header: {exc}") from None
    return Envelope(
        write_id=raw[len(MAGIC) : _ID_END].decode("ascii"),
        kind=kind,
        codec=codec,
        ttl_ms=numbers[0],
        grace_ms=numbers[1],
        delta_ms=numbers[2],
        tags=tags,
        payload=raw[end + 1 :],
        header_bytes=end + 1,
    )


# -- key layout (documented in dashboard.patterns.cache) ---------------------------------
COUNTERS = (
    "hits negative_hits misses stale_served recomputations early_refreshes lock_waits "
    "wait_timeouts store_conflicts decode_errors"
).split()
PREVIEW_BYTES = 200
STATS_TTL_MS = 86_400_000


def entry_key(prefix: str, key: str | bytes) -> str | bytes:
    """``<prefix>:entry:<key>``: the string holding one envelope."""
    return keys.key(prefix, "entry", key)


def lock_key(prefix: str, key: str | bytes) -> str | bytes:
    """``<prefix>:lock:<key>``: the recompute lock of one entry."""
    return keys.key(prefix, "lock", key)


def tag_key(prefix: str | bytes, tag: str) -> str | bytes:
    """``<prefix>:tag:<tag>``: the current version token of a tag."""
    return keys.key(prefix, "tag", tag)


def stats_key(prefix: str) -> str | bytes:
    """``<prefix>:stats``: the hash of counters shared by every process."""
    return keys.key(prefix, "stats")


def as_bytes(name: str | bytes) -> bytes:
    """Key names as bytes (what Redis returns), for display and slicing."""
    return name if isinstance(name, bytes) else name.encode("utf-8")


def tag_versions(client: Any, prefix: str | bytes, tags: list[str]) -> list[str | None]:
    """Current version of each tag, one GET per key in one non-transactional pipeline.

    A pipeline rather than MGET: tag keys live on any cluster slot.
    """
    return run(tag_versions_steps(prefix, tags), client)


def tag_versions_steps(prefix: str | bytes, tags: list[str]) -> Steps:
    """:func:`tag_versions` as core steps."""
    replies = yield Batch([cmd("get", tag_key(prefix, t)) for t in tags])
    return [None if v is None else v.decode("ascii", "replace") for v in replies]


class Counters:
    """Per-instance counters in process memory, flushed now and then to ``<prefix>:stats``.

    No I/O here: :meth:`add` says when a flush is due and :meth:`flush_batch` gives
    the commands. Flushing adds deltas with HINCRBY (one pipeline, no
    read-modify-write), so every process sharing the prefix adds up; the hash
    expires a day after the last flush so a retired prefix does not linger.
    """

    def __init__(self, prefix: str, interval: float | None, clock: Callable[[], float]) -> None:
        self.key, self.interval, self.clock = stats_key(prefix), interval, clock
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._pending = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._last_flush = clock()

    def add(self, name: str) -> bool:
        """Count one event; True when ``interval`` seconds have passed (flush now)."""
        with self._lock:
            self._totals[name] += 1
            self._pending[name] += 1
            now = self.clock()
            due = self.interval is not None and now - self._last_flush >= self.interval
            if due:
                self._last_flush = now
        return due

    def snapshot(self) -> dict[str, int]:
        """The totals since this instance was created."""
        with self._lock:
            return dict(self._totals)

    def flush_steps(self, quiet: bool) -> Steps:
        """Add the counts since the last flush to the shared hash (kept on failure;
        ``quiet``: a failure is swallowed, stats must never fail a cache call)."""
        with self._lock:
            pending = {k: v for k, v in self._pending.items() if v}
            self._pending = dict.fromkeys(COUNTERS, 0)
        if not pending:
            return
        ops = [cmd("hincrby", self.key, name, n) for name, n in pending.items()]
        try:
            yield Batch([*ops, cmd("pexpire", self.key, STATS_TTL_MS)])
        except RedisError:
            with self._lock:
                for name, n in pending.items():
                    self._pending[name] += n
            if not quiet:
                raise


# -- read side (dashboard): read-only commands only --------------------------------------
@dataclass
class EntryInfo:
    """What the dashboard shows for a key that may (or may not) be a cache entry."""

    key: str
    exists: bool
    ours: bool = False
    problem: str | None = None
    kind: str | None = None  # "value" | "negative" | "tombstone"
    codec: str | None = None
    write_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # tag -> version stamped
    stale_tags: list[str] = field(default_factory=list)  # tags invalidated since
    tags_checked: bool = False
    pttl_ms: int | None = None  # None: no expiry (or no key)
    ttl_ms: int | None = None
    grace_ms: int | None = None
    delta_ms: int | None = None
    remaining_fresh_ms: int | None = None
    fresh: bool = False
    in_grace: bool = False
    payload_bytes: int | None = None
    preview: str | None = None


def entry_info(client: Any, key: str | bytes, prefix: str | None = None) -> EntryInfo:
    """Inspect one key: header, freshness (server PTTL), tag validity, payload size.

    Reads the header plus a short preview (GETRANGE), never a whole large value.
    ``prefix`` locates tag keys; by default it is what precedes ``:entry:`` in the key.
    """
    raw_key = as_bytes(key)
    pipe = client.pipeline(transaction=False)
    pipe.strlen(raw_key)
    pipe.getrange(raw_key, 0, HEADER_START + MAX_HEADER_BYTES + PREVIEW_BYTES)
    pipe.pttl(raw_key)
    size, head, pttl = pipe.execute(raise_on_error=False)
    info = EntryInfo(key=display_key(raw_key), exists=isinstance(pttl, int) and pttl != -2)
    if not info.exists:
        return info
    info.pttl_ms = pttl if pttl >= 0 else None
    if isinstance(size, Exception) or isinstance(head, Exception):
        info.problem = "not a string: cache entries are strings"
        return info
    try:
        env = parse_envelope(head)
    except EnvelopeError as exc:
        info.problem = str(exc)
        return info
    info.ours, info.kind, info.codec, info.write_id = True, env.kind, env.codec, env.write_id
    info.ttl_ms, info.grace_ms, info.delta_ms = env.ttl_ms, env.grace_ms, env.delta_ms
    info.tags = dict(env.tags)
    info.payload_bytes = size - env.header_bytes
    info.preview = escape_bytes(env.payload[:PREVIEW_BYTES])
    if info.pttl_ms is not None:
        info.remaining_fresh_ms = info.pttl_ms - env.grace_ms
    fresh_by_time = info.remaining_fresh_ms is None or info.remaining_fresh_ms > 0
    base, found, _ = raw_key.partition(b":entry:")
    if env.tags and (prefix is not None or (found and base)):
        tags = list(env.tags)
        current = tag_versions(client, prefix if prefix is not None else base, tags)
        info.stale_tags = [t for t, v in zip(tags, current, strict=True) if v != env.tags[t]]
        info.tags_checked = True
    usable = env.kind != "tombstone" and not info.stale_tags
    info.fresh = usable and fresh_by_time
    info.in_grace = usable and not fresh_by_time
    return info


def read_stats(client: Any, prefix: str = "cache") -> dict[str, int]:
    """The counters every process flushed to ``<prefix>:stats`` (a bounded HMGET)."""
    out = {}
    for name, v in zip(COUNTERS, client.hmget(stats_key(prefix), COUNTERS), strict=True):
        try:
            out[name] = int(v) if v is not None else 0
        except ValueError:
            out[name] = 0
    return out
