"""Locks, the core shared by :class:`~dashboard.patterns.locks.Lock` and
:class:`~dashboard.patterns.aio.AsyncLock`: key layout, errors and every decision.

Key layout (details in docs/patterns/locks.md); all keys of one resource share the
hash tag ``{<resource>}``, so every script below runs on one cluster slot:

- ``lock:{<resource>}`` string: the holder's random token; PTTL = lease left. A plain
  string, so ``SET lock:{x} token NX PX ...`` locks from other code look the same.
- ``lock:{<resource>}:fence`` string: integer fencing counter, INCR'd by every
  acquisition. It intentionally has NO TTL: if it expired, the next holder would get
  fence 1 again and storage guarded by fences would accept a stale writer.
- ``lock:{<resource>}:info`` hash, TTL one day past the lock TTL, set again by every
  write but a release (which ends a lease that was still running, so the hash already
  lasts about a day past it): ``holder``, ``fence``, ``acquired_at_ms`` (server
  TIME), ``ttl_ms`` of the current holder, counters ``attempts``, ``failures``,
  ``expired`` (leases that ran out unreleased), ``extends``, ``releases``,
  ``hold_ms_total``, ``waits``, ``wait_ms_total``, and the ids that make the scripts
  idempotent: ``tried`` (last failed token), ``released`` (last released token),
  ``extend_id``.

Acquire is ONE script (type checks, INCR fence, SET PX, one HSET of info and counters):
one round trip, and a holder always has a fence. Acquire, release and extend are
idempotent, so a resend after a lost reply is safe; the wait statistic is not resent.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from random import getrandbits
from typing import Any

from redis.exceptions import RedisError, ResponseError

from dashboard.keyid import display_key, escape_bytes
from dashboard.patterns import keys
from dashboard.patterns.runtime import Script, Sleep, Steps, cmd
from dashboard.patterns.scripts import load

PREFIX = "lock"
INFO_TTL_MS = 86_400_000
_ACQUIRE = load("lock_acquire")
_RELEASE = load("lock_release")
_EXTEND = load("lock_extend")
_WAIT = load("lock_wait")
Resource = str | bytes


class LockError(Exception):
    """A lock operation failed; the message names the lock key."""


class LockNotOwnedError(LockError):
    """Release/extend of a lock this holder no longer has (it expired or was taken)."""

    def __init__(self, message: str, resource: Resource, reason: str) -> None:
        super().__init__(message)
        self.resource = resource
        self.reason = reason  # "expired" | "taken"


class LockTimeout(LockError, TimeoutError):
    """A context-manager acquire gave up after its timeout."""


# -- tokens ------------------------------------------------------------------------------
_TOKENS_PER_READ = 64
_tokens: list[str] = []
if hasattr(os, "register_at_fork"):  # where processes fork: a child never reuses its parent's
    os.register_at_fork(after_in_child=_tokens.clear)


def new_token() -> str:
    """A fresh holder token: 32 hex digits (128 bits) from the OS's random source, as
    ``secrets.token_hex(16)`` gives, read 64 tokens at a time (one system call instead
    of one per acquire). Each token is handed out once; a forked child drops the rest."""
    try:
        return _tokens.pop()
    except IndexError:
        raw = os.urandom(16 * _TOKENS_PER_READ).hex()
        fresh = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        token = fresh.pop()
        _tokens.extend(fresh)
        return token


# -- key layout ---------------------------------------------------------------------------
def show(name: str | bytes) -> str:
    """A key or resource as shown in messages (escaped, bounded)."""
    return display_key(name.encode("utf-8") if isinstance(name, str) else bytes(name))


def check_resource(resource: object) -> Resource:
    """The resource as used in keys; refuses empty names, non-str/bytes and braces."""
    if isinstance(resource, bool) or not isinstance(resource, str | bytes | int):
        raise TypeError(f"lock resource must be str or bytes, not {type(resource).__name__}")
    if isinstance(resource, int):
        resource = str(resource)
    if not resource:
        raise ValueError("lock resource must not be empty (it is the hash tag)")
    braces = (b"{", b"}") if isinstance(resource, bytes) else ("{", "}")
    if any(brace in resource for brace in braces):
        raise ValueError(
            f"lock resource {show(resource)!r} contains a brace; it is the hash tag of "
            "lock:{<resource>} and a brace would cut it short (pick another name)"
        )
    return resource


def lock_key(resource: Resource) -> str | bytes:
    """``lock:{<resource>}``: the string holding the holder's token."""
    return keys.key(PREFIX, keys.tag(check_resource(resource)))


def fence_key(resource: Resource) -> str | bytes:
    """``lock:{<resource>}:fence``: the fencing counter (no TTL, on purpose)."""
    return keys.key(lock_key(resource), "fence")


def info_key(resource: Resource) -> str | bytes:
    """``lock:{<resource>}:info``: holder details and counters (TTL, refreshed)."""
    return keys.key(lock_key(resource), "info")


def parse_lock_key(key: str | bytes) -> Resource | None:
    """The resource of a lock key (same type as ``key``); None for companions and others."""
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    head = PREFIX.encode() + b":{"
    if not (raw.startswith(head) and raw.endswith(b"}")):
        return None
    inner = raw[len(head) : -1]
    if not inner or b"{" in inner or b"}" in inner:
        return None
    return inner.decode("utf-8") if isinstance(key, str) else inner


def scan_match_patterns() -> list[str]:
    """SCAN MATCH patterns finding lock keys: the trailing ``}`` leaves out ``:fence``
    and ``:info``; filter results with :func:`parse_lock_key` (``lock:{a}b}`` matches too)."""
    return [f"{PREFIX}:{{*}}"]


def short_token(token: bytes | str | None) -> str | None:
    """A token shortened for display: first 8 characters + "…"."""
    if token is None:
        return None
    text = escape_bytes(token if isinstance(token, bytes) else token.encode("utf-8"))
    return text if len(text) <= 8 else text[:8] + "…"


def ms(seconds: float, what: str, key: str | bytes) -> int:
    """Seconds as whole milliseconds, at least 1 (the message names the lock)."""
    value = round(seconds * 1000)
    if value < 1:
        raise ValueError(f"lock {show(key)}: {what} must be at least 1 ms, got {seconds!r}")
    return value


def text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


# -- the core -----------------------------------------------------------------------------
class LockCore:
    """One named lock for one holder at a time; each acquire uses a fresh random token.

    ``ttl`` and ``timeout`` are seconds. ``clock`` (monotonic seconds), ``sleep`` and
    ``rng`` (uniform in [0, 1)) are injectable so tests run without waiting; each
    shell gives ``sleep`` its default (``time.sleep`` / ``asyncio.sleep``).
    """

    default_sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(
        self,
        client: Any,
        resource: Resource,
        ttl: float = 30.0,
        *,
        timeout: float | None = None,
        backoff_base: float = 0.005,
        backoff_max: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.resource = check_resource(resource)
        self.key = lock_key(self.resource)
        self.fence_key, self.info_key = fence_key(self.resource), info_key(self.resource)
        self._keys = [self.key, self.fence_key, self.info_key]
        self._pair = [self.key, self.info_key]
        self.ttl_ms = ms(ttl, "ttl", self.key)
        self.timeout = timeout
        if not 0 < backoff_base <= backoff_max:
            raise ValueError(f"need 0 < backoff_base <= backoff_max for lock {show(self.key)}")
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.clock, self.rng = clock, rng
        self.sleep = self.default_sleep if sleep is None else sleep
        self.token: str | None = None  # of the current acquisition
        self.fence: int | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {show(self.key)} fence={self.fence}>"

    def _try_acquire(self, ttl: float | None = None) -> Steps:
        """One attempt, no waiting: the fencing token, or None if someone holds the lock."""
        return (yield from self._acquire(blocking=False, ttl=ttl))

    def _acquire(
        self, blocking: bool = True, timeout: float | None = None, ttl: float | None = None
    ) -> Steps:
        """Take the lock; returns its fencing token (>= 1, larger than every earlier one),
        or None when not blocking / after ``timeout`` seconds (None: the lock's default;
        None there too: wait forever). Retries back off exponentially with jitter."""
        if self.token is not None:
            raise LockError(f"lock {show(self.key)} is already held by this Lock object")
        ttl_ms = self.ttl_ms if ttl is None else ms(ttl, "ttl", self.key)
        args = [None, ttl_ms, ttl_ms + INFO_TTL_MS]
        if not blocking:  # the common case, without the loop's bookkeeping
            args[0] = token = new_token()
            got, value = yield from self._attempt(args)
            if got:
                self.token, self.fence = token, value
            return self.fence
        timeout = self.timeout if timeout is None else timeout
        start = self.clock()
        deadline = None if timeout is None else start + max(0.0, timeout)
        attempt = 0
        while True:
            args[0] = token = new_token()
            got, value = yield from self._attempt(args)
            if got:
                self.token, self.fence = token, value
                break
            now = self.clock()
            if deadline is not None and now >= deadline:
                break
            yield Sleep(self._backoff(attempt, value, None if deadline is None else deadline - now))
            attempt += 1
        if attempt:
            yield from self._record_wait(start)
        return self.fence

    def _attempt(self, args: list[Any]) -> Steps:
        try:
            got, value = yield Script(_ACQUIRE, self._keys, args, retry=True)  # idempotent
        except ResponseError as exc:
            raise LockError(f"cannot acquire lock {show(self.key)}: {exc}") from exc
        return got == 1, int(value)

    def _backoff(self, attempt: int, holder_pttl: int, left: float | None) -> float:
        """Equal jitter (half fixed, half random) on an exponential step, never sleeping
        past the deadline or much past the holder's lease."""
        step = min(self.backoff_max, self.backoff_base * 2 ** min(attempt, 30))
        delay = step / 2 + self.rng() * step / 2
        if holder_pttl > 0:
            delay = min(delay, holder_pttl / 1000 + 0.001)
        if left is not None:
            delay = min(delay, max(0.0, left))
        return delay

    def _record_wait(self, start: float) -> Steps:
        wait_ms = max(0, round((self.clock() - start) * 1000))
        args = [wait_ms, self.ttl_ms + INFO_TTL_MS]
        try:  # a statistic: not resent, so a lost reply can lose it but never count it twice
            yield Script(_WAIT, [self.info_key], args, retry=False)
        except RedisError:
            if self.token is None:  # timed out, nothing held: the error may surface
                raise  # (while held, a stats error must not make the caller drop the lock)

    def _require_token(self, action: str) -> str:
        if self.token is None:
            raise LockError(f"cannot {action} lock {show(self.key)}: not acquired by this Lock")
        return self.token

    def _not_owned(self, action: str, result: int) -> LockNotOwnedError:
        reason = "expired" if result == 0 else "taken"
        detail = {
            "expired": "it expired (TTL ran out) or was deleted",
            "taken": "it expired and was taken by another holder",
        }[reason]
        token = self.token
        self.token, self.fence = None, None
        return LockNotOwnedError(
            f"cannot {action} lock {show(self.key)}: no longer held by this holder "
            f"(token {short_token(token)}); {detail}",
            self.resource,
            reason,
        )

    def _release(self) -> Steps:
        """Delete the lock if it is still ours; raises :class:`LockNotOwnedError` if not."""
        token = self._require_token("release")
        try:
            result = yield Script(_RELEASE, self._pair, [token], retry=True)
        except ResponseError as exc:
            raise LockError(f"cannot release lock {show(self.key)}: {exc}") from exc
        if result != 1:
            raise self._not_owned("release", result)
        self.token, self.fence = None, None

    def _extend(self, additional_time: float, replace_ttl: bool = False) -> Steps:
        """Add ``additional_time`` seconds to the lease (or set it, ``replace_ttl=True``)
        while it is still ours; returns the new TTL in ms."""
        token = self._require_token("extend")
        add_ms = ms(additional_time, "additional_time", self.key)
        mode = "replace" if replace_ttl else "add"
        request_id = f"{getrandbits(64):016x}"  # unique per call, not secret: no system call
        args = [token, add_ms, mode, add_ms + INFO_TTL_MS, request_id]
        try:
            result = yield Script(_EXTEND, self._pair, args, retry=True)  # idempotent by id
        except ResponseError as exc:
            raise LockError(f"cannot extend lock {show(self.key)}: {exc}") from exc
        if result <= 0:
            raise self._not_owned("extend", result)
        return int(result)

    def _locked(self) -> Steps:
        """True if anyone holds the lock now."""
        return bool((yield cmd("exists", self.key)))

    def _owned(self) -> Steps:
        """True if this object holds the lock now (its lease has not run out)."""
        if self.token is None:
            return False
        current = yield cmd("get", self.key)
        return current is not None and text(current) == self.token

    def _timed_out(self) -> LockTimeout:
        return LockTimeout(f"timed out after {self.timeout}s acquiring lock {show(self.key)}")
