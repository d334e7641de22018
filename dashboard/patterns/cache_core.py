"""Cache-aside, the core shared by ``Cache`` and ``AsyncCache`` (see ``cache``)."""

from __future__ import annotations

import contextlib
import math
import random as _random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError, ResponseError

from dashboard.keyid import display_key
from dashboard.patterns import scripts
from dashboard.patterns.codecs import (
    HEADER_START,
    JSON,
    Codec,
    Counters,
    Envelope,
    EnvelopeError,
    as_bytes,
    encode_envelope,
    entry_key,
    lock_key,
    parse_envelope,
    tag_key,
    tag_versions_steps,
    write_id_of,
)
from dashboard.patterns.runtime import Batch, Call, Script, Sleep, Steps, cmd

POLL_FIRST, POLL_MAX = 0.005, 0.1  # waiter backoff (seconds)
NO_VERSION = "-"  # stamp for a tag whose version could not be read: never matches


class _Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS: Any = _Miss()  # returned by ``get`` on a miss, so that a cached None stays None


class CacheError(RedisError):
    """A cache key that cannot be used (e.g. it holds a hash); names the key."""


@dataclass
class _Found:
    state: str  # "fresh" | "stale" | "miss"
    write_id: str = ""  # of the entry at the key ("" when absent or foreign)
    value: Any = None
    envelope: Envelope | None = None
    remaining_ms: int | None = None  # fresh time left; None = no expiry


@dataclass
class _Job:
    key: str | bytes
    loader: Callable[[], Any]
    ttl: float | None
    tags: list[str]


def _tag_list(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str | bytes):
        raise TypeError("tags must be an iterable of str, e.g. tags=('user:1',)")
    out = list(dict.fromkeys(tags))
    for t in out:
        if not isinstance(t, str) or not t:
            raise TypeError(f"a tag must be a non-empty str, not {t!r}")
    return out


def _ms(seconds: float, name: str) -> int:
    if seconds < 0:
        raise ValueError(f"{name} must be >= 0, got {seconds!r}")
    return round(seconds * 1000)


class CacheCore:
    """Cache-aside with negative caching, tags, write-through and stampede control.

    Times are in seconds. ``clock``/``sleep``/``random`` are injectable so tests
    control loader timing, waiting and the XFetch draw without real sleeps.
    """

    default_sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "cache",
        ttl: float = 300.0,
        negative_ttl: float = 30.0,
        jitter: float = 0.1,
        stale_grace: float = 0.0,
        lock_timeout: float = 10.0,
        wait_timeout: float = 5.0,
        beta: float = 1.0,
        tag_ttl: float = 30 * 86400.0,
        codec: Codec = JSON,
        stats_flush_interval: float | None = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter is a fraction in [0, 1), got {jitter!r}")
        if min(ttl, negative_ttl, lock_timeout, tag_ttl) <= 0:
            raise ValueError("ttl, negative_ttl, lock_timeout and tag_ttl must be > 0")
        if beta < 0 or wait_timeout < 0:
            raise ValueError(f"beta and wait_timeout must be >= 0, got {beta!r}, {wait_timeout!r}")
        self.client, self.prefix, self.codec = client, prefix, codec
        self.ttl, self.negative_ttl, self.jitter, self.beta = ttl, negative_ttl, jitter, beta
        self.grace_ms = _ms(stale_grace, "stale_grace")
        self.lock_ms = max(1, _ms(lock_timeout, "lock_timeout"))
        self.tag_ms = max(1, _ms(tag_ttl, "tag_ttl"))
        self.wait_timeout = wait_timeout
        self.clock, self.random = clock, random
        self.sleep = self.default_sleep if sleep is None else sleep
        self.counters = Counters(prefix, stats_flush_interval, clock)

    def entry_key(self, key: str | bytes) -> str | bytes:
        """The Redis key of the entry for ``key``."""
        return entry_key(self.prefix, key)

    # -- public API -------------------------------------------------------------------
    def _get(self, key: str | bytes, default: Any = MISS, *, allow_stale: bool = False) -> Steps:
        """The cached value (a cached None is None), or ``default`` on a miss."""
        found = yield from self._read(key)
        if found.state == "fresh" or (allow_stale and found.state == "stale"):
            yield from self._count_hit(found)
            return found.value
        yield from self._count("misses")
        return default

    def _set(
        self, key: str | bytes, value: Any, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> Steps:
        """Store unconditionally (last write wins); None is cached as a negative entry."""
        ekey = self.entry_key(key)
        stamps = yield from self._stamp(_tag_list(tags))
        blob, px = self._encode(ekey, value, ttl, stamps, 0)
        yield cmd("set", ekey, blob, px=px)

    def _delete(self, key: str | bytes) -> Steps:
        """Invalidate ``key`` with a tombstone that a loader already running cannot overwrite.

        The tombstone lives ``lock_timeout``: loaders are expected to finish by then.
        """
        tomb = encode_envelope("tombstone", self.codec.name)
        yield cmd("set", self.entry_key(key), tomb, px=self.lock_ms)

    def _invalidate_tags(self, *tags: str) -> Steps:
        """Give each tag a new version: every entry stamped with an older one misses."""
        px = self.tag_ms
        yield Batch(
            [
                cmd("set", tag_key(self.prefix, t), secrets.token_hex(8), px=px)
                for t in _tag_list(tags)
            ]
        )

    def _get_or_set(
        self,
        key: str | bytes,
        loader: Callable[[], Any],
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> Steps:
        """Cache-aside: the cached value, else ``loader()`` computed by one caller at a time.

        A fresh hit may be refreshed early (XFetch). On a miss one caller (across
        processes) takes the recompute lock; others serve the stale value if one is
        in grace, else wait up to ``wait_timeout`` for the winner's value and then
        compute themselves (counted as ``wait_timeouts``).
        """
        job = _Job(key, loader, ttl, _tag_list(tags))
        found = yield from self._read(key)
        if found.state == "fresh":
            yield from self._count_hit(found)
            if self._refresh_early(found):
                token = yield from self._try_lock(key)
                if token is not None:
                    yield from self._count("early_refreshes")
                    return (yield from self._locked_compute(job, token, found))
            return found.value
        token = yield from self._try_lock(key)
        if token is None and found.state == "stale":
            yield from self._count("stale_served")
            return found.value
        yield from self._count("misses")
        if token is None:
            return (yield from self._wait(job, found))
        return (yield from self._locked_compute(job, token, found))

    def _write_through(
        self,
        key: str | bytes,
        value: Any,
        store: Callable[[Any], Any],
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> Steps:
        """Write the source of truth with ``store(value)``, then the cache.

        Returns True when cached, False when a concurrent write changed the entry
        meanwhile (then the key is tombstoned: we cannot know whose value is newer).
        If the cache write fails, the key is dropped (best effort) and the error raised.
        """
        ekey = self.entry_key(key)
        with _named(ekey):
            seen = write_id_of((yield cmd("getrange", ekey, 0, HEADER_START - 1)))
        stamps = yield from self._stamp(_tag_list(tags))
        blob, px = self._encode(ekey, value, ttl, stamps, 0)
        yield Call(store, (value,))  # only now: a value the codec refuses never reaches it
        try:
            with _named(ekey):
                stored = bool((yield Script(_STORE, [ekey], [seen, blob, px])))
        except Exception:
            yield from self._drop_quietly(key)
            raise
        if not stored:
            yield from self._count("store_conflicts")
            yield from self._drop_quietly(key)
        return stored

    def stats(self) -> dict[str, int]:
        """This instance's counters (process memory)."""
        return self.counters.snapshot()

    def _flush_stats(self) -> Steps:
        """Add the counts since the last flush to the shared ``<prefix>:stats`` hash."""
        yield from self.counters.flush_steps(quiet=False)

    # -- internals ----------------------------------------------------------------------
    def _read(self, key: str | bytes) -> Steps:
        """GET + PTTL in one MULTI (one round trip), then tag versions if the entry has tags."""
        ekey = self.entry_key(key)
        with _named(ekey):
            raw, pttl = yield Batch([cmd("get", ekey), cmd("pttl", ekey)], transaction=True)
        if raw is None:
            return _Found("miss")
        try:
            env = parse_envelope(raw)
        except EnvelopeError:
            return _Found("miss", write_id_of(raw))
        wid = env.write_id
        if env.kind == "tombstone" or (env.kind == "value" and env.codec != self.codec.name):
            return _Found("miss", wid)
        if env.tags and not (yield from self._tags_current(env.tags)):
            return _Found("miss", wid)
        try:
            value = None if env.kind == "negative" else self.codec.loads(env.payload)
        except Exception:  # any codec's failure means: unusable entry, recompute it
            yield from self._count("decode_errors")
            return _Found("miss", wid)
        remaining = None if pttl < 0 else pttl - env.grace_ms
        state = "fresh" if remaining is None or remaining > 0 else "stale"
        return _Found(state, wid, value, env, remaining)

    def _tags_current(self, stamps: dict[str, str]) -> Steps:
        current = yield from tag_versions_steps(self.prefix, list(stamps))
        return current == list(stamps.values())

    def _stamp(self, tags: list[str]) -> Steps:
        """Each tag's current version, creating one if the tag has none (one round trip)."""
        if not tags:
            return {}
        ops = []
        for t in tags:
            tkey = tag_key(self.prefix, t)
            ops += [cmd("set", tkey, secrets.token_hex(8), nx=True, px=self.tag_ms)]
            ops += [cmd("get", tkey)]
        replies = (yield Batch(ops))[1::2]
        return {
            t: v.decode("ascii", "replace") if v is not None else NO_VERSION
            for t, v in zip(tags, replies, strict=True)
        }

    def _encode(
        self, ekey: str | bytes, value: Any, ttl: float | None, stamps: dict[str, str], delta: int
    ) -> tuple[bytes, int]:
        """The envelope and its physical TTL (jittered logical TTL + stale grace)."""
        negative = value is None
        base = self.negative_ttl if negative else (self.ttl if ttl is None else ttl)
        if base <= 0:
            raise ValueError(f"ttl for {display_key(as_bytes(ekey))} must be > 0, got {base!r}")
        try:
            payload = b"" if negative else self.codec.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"cannot encode the value for {display_key(as_bytes(ekey))}: {exc}"
            ) from exc
        spread = self.jitter * (2 * self.random() - 1) if self.jitter else 0.0
        ttl_ms = max(1, round(base * 1000 * (1 + spread)))
        blob = encode_envelope(
            "negative" if negative else "value",
            self.codec.name,
            ttl_ms=ttl_ms,
            grace_ms=self.grace_ms,
            delta_ms=delta,
            tags=stamps,
            payload=payload,
        )
        return blob, ttl_ms + self.grace_ms

    def _refresh_early(self, found: _Found) -> bool:
        """XFetch: recompute before expiry with probability rising as expiry nears."""
        env = found.envelope
        if env is None or found.remaining_ms is None or env.delta_ms <= 0 or self.beta <= 0:
            return False
        draw = max(1.0 - self.random(), 1e-300)  # random() is in [0, 1): draw in (0, 1]
        gap = env.delta_ms * self.beta * -math.log(draw)
        return gap >= found.remaining_ms

    def _try_lock(self, key: str | bytes) -> Steps:
        token = secrets.token_hex(16)
        # SET NX is not idempotent, so it is a script: a resend finds its own token
        ok = yield Script(_TAKE, [lock_key(self.prefix, key)], [token, self.lock_ms])
        return token if ok else None

    def _locked_compute(self, job: _Job, token: str, found: _Found) -> Steps:
        """Compute under the recompute lock, then release it. A cancelled task (asyncio)
        does not release: the lock then frees itself after ``lock_timeout``."""
        release = Script(_RELEASE, [lock_key(self.prefix, job.key)], [token])
        try:
            again = yield from self._read(job.key)  # a winner may have stored meanwhile
            if again.state == "fresh" and again.write_id != found.write_id:
                value = again.value
            else:
                value = yield from self._compute(job, again.write_id)
        except Exception:
            yield release
            raise
        yield release
        return value

    def _wait(self, job: _Job, found: _Found) -> Steps:
        """Poll with backoff for the lock holder's value; take over if the lock frees."""
        yield from self._count("lock_waits")
        deadline = self.clock() + self.wait_timeout
        delay = POLL_FIRST
        while (left := deadline - self.clock()) > 0:
            yield Sleep(min(delay, left))
            delay = min(delay * 2, POLL_MAX)
            found = yield from self._read(job.key)
            if found.state == "fresh":
                return found.value
            token = yield from self._try_lock(job.key)
            if token is not None:
                return (yield from self._locked_compute(job, token, found))
        yield from self._count("wait_timeouts")
        return (yield from self._compute(job, found.write_id))

    def _compute(self, job: _Job, seen: str) -> Steps:
        """Stamp tags, run the loader, store unless another write replaced ``seen``."""
        stamps = yield from self._stamp(job.tags)  # before the loader: an invalidation wins
        started = self.clock()
        value = yield Call(job.loader)
        delta_ms = max(0, round((self.clock() - started) * 1000))
        yield from self._count("recomputations")
        ekey = self.entry_key(job.key)
        blob, px = self._encode(ekey, value, job.ttl, stamps, delta_ms)
        with _named(ekey):
            stored = yield Script(_STORE, [ekey], [seen, blob, px])
        if not stored:
            yield from self._count("store_conflicts")
        return value

    def _drop_quietly(self, key: str | bytes) -> Steps:
        """Best effort: tombstone, else DEL (allowed even when Redis is out of memory)."""
        try:
            yield from self._delete(key)
        except RedisError:
            with contextlib.suppress(RedisError):
                yield cmd("delete", self.entry_key(key))

    def _count_hit(self, found: _Found) -> Steps:
        yield from self._count("hits")
        if found.envelope is not None and found.envelope.kind == "negative":
            yield from self._count("negative_hits")

    def _count(self, name: str) -> Steps:
        if self.counters.add(name):
            yield from self.counters.flush_steps(quiet=True)


@contextlib.contextmanager
def _named(ekey: str | bytes) -> Iterator[None]:
    """Turn a server error about ``ekey`` (WRONGTYPE, ...) into one that names it."""
    try:
        yield
    except ResponseError as exc:
        raise CacheError(f"cache entry {display_key(as_bytes(ekey))}: {exc}") from exc


_STORE = scripts.load("cache_store")
_RELEASE = scripts.load("compare_and_delete")
_TAKE = scripts.load("set_if_absent")
