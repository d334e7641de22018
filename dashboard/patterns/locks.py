"""Distributed locks with fencing tokens, safe release/extend and per-lock stats.

Key layout (details in docs/patterns/locks.md); all keys of one resource share the
hash tag ``{<resource>}``, so every script below runs on one cluster slot:

- ``lock:{<resource>}`` string: the holder's random token; PTTL = lease left. A plain
  string, so ``SET lock:{x} token NX PX ...`` locks from other code look the same.
- ``lock:{<resource>}:fence`` string: integer fencing counter, INCR'd by every
  acquisition. It intentionally has NO TTL: if it expired, the next holder would get
  fence 1 again and storage guarded by fences would accept a stale writer.
- ``lock:{<resource>}:info`` hash, TTL one day past the lock TTL, refreshed on every
  write: ``holder``, ``fence``, ``acquired_at_ms`` (server TIME), ``ttl_ms`` of the
  current holder, and counters ``attempts``, ``failures``, ``expired`` (leases that ran
  out unreleased), ``extends``, ``releases``, ``hold_ms_total``, ``waits``,
  ``wait_ms_total``.

Acquire is ONE script (check, INCR fence, SET NX PX, HSET info, HINCRBY counters):
one round trip, and a holder always has a fence. Resources cannot contain braces
(they would cut the hash tag short).
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

from redis.exceptions import RedisError, ResponseError

from dashboard.keyid import display_key, escape_bytes
from dashboard.patterns import keys
from dashboard.patterns.scripts import load

PREFIX = "lock"
INFO_TTL_MS = 86_400_000
LONG_HOLD_FACTOR = 3  # "held far longer than usual": age > 3x the average hold...
LONG_HOLD_MIN_RELEASES = 3  # ...once there are enough releases to know what usual is
_ACQUIRE = load("lock_acquire")
_RELEASE = load("lock_release")
_EXTEND = load("lock_extend")
_WAIT = load("lock_wait")
Resource = str | bytes
INFO_COUNTERS = (
    "attempts failures expired extends releases hold_ms_total waits wait_ms_total".split()
)
INFO_FIELDS = ("holder", "fence", "acquired_at_ms", "ttl_ms", *INFO_COUNTERS)


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


# -- key layout ---------------------------------------------------------------------------
def _show(name: str | bytes) -> str:
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
            f"lock resource {_show(resource)!r} contains a brace; it is the hash tag of "
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


# -- write side ---------------------------------------------------------------------------
class Lock:
    """One named lock for one holder at a time; each acquire uses a fresh random token.

    ``ttl`` and ``timeout`` are seconds. ``clock`` (monotonic seconds), ``sleep`` and
    ``rng`` (uniform in [0, 1)) are injectable so tests run without waiting.
    """

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
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.resource = check_resource(resource)
        self.key = lock_key(self.resource)
        self.fence_key, self.info_key = fence_key(self.resource), info_key(self.resource)
        self.ttl_ms = _ms(ttl, "ttl", self.key)
        self.timeout = timeout
        if not 0 < backoff_base <= backoff_max:
            raise ValueError(f"need 0 < backoff_base <= backoff_max for lock {_show(self.key)}")
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.clock, self.sleep, self.rng = clock, sleep, rng
        self.token: str | None = None  # of the current acquisition
        self.fence: int | None = None

    def __repr__(self) -> str:
        return f"<Lock {_show(self.key)} fence={self.fence}>"

    def try_acquire(self, ttl: float | None = None) -> int | None:
        """One attempt, no waiting: the fencing token, or None if someone holds the lock."""
        return self.acquire(blocking=False, ttl=ttl)

    def acquire(
        self, blocking: bool = True, timeout: float | None = None, ttl: float | None = None
    ) -> int | None:
        """Take the lock; returns its fencing token (>= 1, larger than every earlier one),
        or None when not blocking / after ``timeout`` seconds (None: the Lock's default;
        None there too: wait forever). Retries back off exponentially with jitter."""
        if self.token is not None:
            raise LockError(f"lock {_show(self.key)} is already held by this Lock object")
        ttl_ms = self.ttl_ms if ttl is None else _ms(ttl, "ttl", self.key)
        timeout = self.timeout if timeout is None else timeout
        start = self.clock()
        deadline = None if timeout is None else start + max(0.0, timeout)
        attempt, waited = 0, False
        while True:
            token = secrets.token_hex(16)
            got, value = self._attempt(token, ttl_ms)
            if got:
                self.token, self.fence = token, value
                break
            now = self.clock()
            if not blocking or (deadline is not None and now >= deadline):
                break
            delay = self._backoff(attempt, value, None if deadline is None else deadline - now)
            self.sleep(delay)
            attempt, waited = attempt + 1, True
        if waited:
            self._record_wait(start)
        return self.fence if self.token is not None else None

    def _attempt(self, token: str, ttl_ms: int) -> tuple[bool, int]:
        try:
            got, value = _ACQUIRE(
                self.client,
                keys=[self.key, self.fence_key, self.info_key],
                args=[token, ttl_ms, ttl_ms + INFO_TTL_MS],
            )
        except ResponseError as exc:
            raise LockError(f"cannot acquire lock {_show(self.key)}: {exc}") from exc
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

    def _record_wait(self, start: float) -> None:
        wait_ms = max(0, round((self.clock() - start) * 1000))
        args = [wait_ms, self.ttl_ms + INFO_TTL_MS]
        try:
            _WAIT(self.client, keys=[self.info_key], args=args)
        except RedisError:
            if self.token is None:  # timed out, nothing held: the error may surface
                raise  # (while held, a stats error must not make the caller drop the lock)

    def _require_token(self, action: str) -> str:
        if self.token is None:
            raise LockError(f"cannot {action} lock {_show(self.key)}: not acquired by this Lock")
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
            f"cannot {action} lock {_show(self.key)}: no longer held by this holder "
            f"(token {short_token(token)}); {detail}",
            self.resource,
            reason,
        )

    def release(self) -> None:
        """Delete the lock if it is still ours; raises :class:`LockNotOwnedError` if not."""
        token = self._require_token("release")
        result = _RELEASE(
            self.client,
            keys=[self.key, self.info_key],
            args=[token, self.ttl_ms + INFO_TTL_MS],
        )
        if result != 1:
            raise self._not_owned("release", result)
        self.token, self.fence = None, None

    def extend(self, additional_time: float, replace_ttl: bool = False) -> int:
        """Add ``additional_time`` seconds to the lease (or set it, ``replace_ttl=True``)
        while it is still ours; returns the new TTL in ms."""
        token = self._require_token("extend")
        ms = _ms(additional_time, "additional_time", self.key)
        result = _EXTEND(
            self.client,
            keys=[self.key, self.info_key],
            args=[token, ms, "replace" if replace_ttl else "add", ms + INFO_TTL_MS],
        )
        if result <= 0:
            raise self._not_owned("extend", result)
        return int(result)

    def locked(self) -> bool:
        """True if anyone holds the lock now."""
        return bool(self.client.exists(self.key))

    def owned(self) -> bool:
        """True if this Lock object holds the lock now (its lease has not run out)."""
        if self.token is None:
            return False
        current = self.client.get(self.key)
        return current is not None and _text(current) == self.token

    def __enter__(self) -> Lock:
        if self.acquire() is None:
            raise LockTimeout(f"timed out after {self.timeout}s acquiring lock {_show(self.key)}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()  # LockNotOwnedError here: the protected work ran unprotected


class LockManager:
    """Makes :class:`Lock` objects sharing one client and default settings."""

    def __init__(self, client: Any, ttl: float = 30.0, **defaults: Any) -> None:
        self.client, self.ttl, self.defaults = client, ttl, defaults

    def lock(self, resource: Resource, ttl: float | None = None, **options: Any) -> Lock:
        """A new Lock for ``resource``; ``options`` override the manager's defaults."""
        ttl = self.ttl if ttl is None else ttl
        return Lock(self.client, resource, ttl, **{**self.defaults, **options})

    def state(self, resource: Resource) -> dict[str, Any]:
        """The read side for ``resource`` (see :func:`lock_state`)."""
        return lock_state(self.client, resource)


def _ms(seconds: float, what: str, key: str | bytes) -> int:
    ms = round(seconds * 1000)
    if ms < 1:
        raise ValueError(f"lock {_show(key)}: {what} must be at least 1 ms, got {seconds!r}")
    return ms


# -- read side (dashboard): TYPE, GET, PTTL, HMGET, TIME only -----------------------------
@dataclass
class LockState:
    """Live state of one lock, plain data for the locks view."""

    resource: str
    key: str
    held: bool = False
    holder: str | None = None  # token shortened: first 8 characters + "…"
    ttl_remaining_ms: int | None = None  # PTTL while held; -1: no TTL
    held_forever: bool = False
    fence: int | None = None  # of the current holder (None: not held or not set by us)
    last_fence: int | None = None  # the counter: fence of the latest acquisition
    acquired_at_ms: int | None = None  # server time
    age_ms: int | None = None
    attempts: int = 0
    failures: int = 0
    expired: int = 0
    extends: int = 0
    releases: int = 0
    hold_ms_total: int = 0
    avg_hold_ms: float | None = None
    waits: int = 0
    wait_ms_total: int = 0
    unusually_long: bool = False
    problem: str | None = None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _int(value: bytes | str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def short_token(token: bytes | str | None) -> str | None:
    if token is None:
        return None
    text = escape_bytes(token if isinstance(token, bytes) else token.encode("utf-8"))
    return text if len(text) <= 8 else text[:8] + "…"


def lock_state(client: Any, resource: Resource) -> dict[str, Any]:
    """What the dashboard shows for a lock: holder, lease left, fence, age and stats.

    Read-only. ``resource`` may be the str/bytes that :func:`parse_lock_key` returned.
    """
    lkey, fkey, ikey = lock_key(resource), fence_key(resource), info_key(resource)
    state = LockState(resource=_show(resource), key=_show(lkey))
    pipe = client.pipeline(transaction=False)
    pipe.type(lkey).get(lkey).pttl(lkey).get(fkey).hmget(ikey, INFO_FIELDS)
    kind, token, pttl, counter, info = pipe.execute(raise_on_error=False)
    kind = _text(kind) if isinstance(kind, bytes | str) else "none"
    if kind not in ("none", "string"):
        state.problem = f"{state.key} holds a {kind}; a lock is a string holding a token"
    values = dict(zip(INFO_FIELDS, info, strict=True)) if isinstance(info, list) else {}
    state.last_fence = _int(counter) if isinstance(counter, bytes | str) else None
    for name in INFO_COUNTERS:
        setattr(state, name, _int(values.get(name)) or 0)
    if state.releases:
        state.avg_hold_ms = state.hold_ms_total / state.releases
    if not isinstance(token, bytes | str) or not isinstance(pttl, int) or pttl == -2:
        return asdict(state)  # not held (or not a string)
    state.held, state.holder, state.ttl_remaining_ms = True, short_token(token), pttl
    state.held_forever = pttl == -1
    holder = values.get("holder")
    if holder is not None and _text(holder) == _text(token):  # info describes this holder
        state.fence = _int(values.get("fence"))
        state.acquired_at_ms = _int(values.get("acquired_at_ms"))
    if state.acquired_at_ms is not None:
        seconds, micros = client.time()
        state.age_ms = max(0, int(seconds) * 1000 + int(micros) // 1000 - state.acquired_at_ms)
        usual = state.avg_hold_ms
        state.unusually_long = (
            usual is not None
            and state.releases >= LONG_HOLD_MIN_RELEASES
            and state.age_ms > LONG_HOLD_FACTOR * max(usual, 1.0)
        )
    return asdict(state)
