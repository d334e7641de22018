"""Distributed locks with fencing tokens, safe release/extend and per-lock stats.

The blocking shell over :mod:`dashboard.patterns.lockcore` (key layout, scripts and
every decision live there, shared with the asyncio twin
:class:`dashboard.patterns.aio.AsyncLock`), plus the read side the dashboard shows.
Key layout and guarantees: docs/patterns/locks.md.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any

from dashboard.patterns.lockcore import (
    INFO_TTL_MS,
    PREFIX,
    LockCore,
    LockError,
    LockNotOwnedError,
    LockTimeout,
    Resource,
    check_resource,
    fence_key,
    info_key,
    lock_key,
    parse_lock_key,
    scan_match_patterns,
    short_token,
    show,
    text,
)
from dashboard.patterns.runtime import Batch, Steps, blocking, cmd, run

__all__ = [
    "INFO_TTL_MS",
    "PREFIX",
    "Lock",
    "LockError",
    "LockManager",
    "LockNotOwnedError",
    "LockState",
    "LockTimeout",
    "check_resource",
    "fence_key",
    "info_key",
    "lock_key",
    "lock_state",
    "parse_lock_key",
    "scan_match_patterns",
    "short_token",
]

LONG_HOLD_FACTOR = 3  # "held far longer than usual": age > 3x the average hold...
LONG_HOLD_MIN_RELEASES = 3  # ...once there are enough releases to know what usual is
INFO_COUNTERS = (
    "attempts failures expired extends releases hold_ms_total waits wait_ms_total".split()
)
INFO_FIELDS = ("holder", "fence", "acquired_at_ms", "ttl_ms", *INFO_COUNTERS)


class Lock(LockCore):
    """One named lock for one holder at a time (blocking calls); see :class:`LockCore`."""

    default_sleep = staticmethod(time.sleep)

    try_acquire = blocking(LockCore._try_acquire)
    acquire = blocking(LockCore._acquire)
    release = blocking(LockCore._release)
    extend = blocking(LockCore._extend)
    locked = blocking(LockCore._locked)
    owned = blocking(LockCore._owned)

    def __enter__(self) -> Lock:
        if self.acquire() is None:
            raise self._timed_out()
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

    lock_class: type = Lock

    def __init__(self, client: Any, ttl: float = 30.0, **defaults: Any) -> None:
        self.client, self.ttl, self.defaults = client, ttl, defaults

    def lock(self, resource: Resource, ttl: float | None = None, **options: Any) -> Any:
        """A new lock for ``resource``; ``options`` override the manager's defaults."""
        ttl = self.ttl if ttl is None else ttl
        return self.lock_class(self.client, resource, ttl, **{**self.defaults, **options})

    def state(self, resource: Resource) -> dict[str, Any]:
        """The read side for ``resource`` (see :func:`lock_state`)."""
        return lock_state(self.client, resource)


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


def _int(value: bytes | str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def lock_state(client: Any, resource: Resource) -> dict[str, Any]:
    """What the dashboard shows for a lock: holder, lease left, fence, age and stats.

    Read-only. ``resource`` may be the str/bytes that :func:`parse_lock_key` returned.
    """
    return run(lock_state_steps(resource), client)


def lock_state_steps(resource: Resource) -> Steps:
    """:func:`lock_state` as core steps (the async shell runs the same ones)."""
    lkey, fkey, ikey = lock_key(resource), fence_key(resource), info_key(resource)
    state = LockState(resource=show(resource), key=show(lkey))
    batch = [cmd("type", lkey), cmd("get", lkey), cmd("pttl", lkey), cmd("get", fkey)]
    replies = yield Batch([*batch, cmd("hmget", ikey, INFO_FIELDS)], raise_on_error=False)
    kind, token, pttl, counter, info = replies
    kind = text(kind) if isinstance(kind, bytes | str) else "none"
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
    if holder is not None and text(holder) == text(token):  # info describes this holder
        state.fence = _int(values.get("fence"))
        state.acquired_at_ms = _int(values.get("acquired_at_ms"))
    if state.acquired_at_ms is not None:
        seconds, micros = yield cmd("time")
        state.age_ms = max(0, int(seconds) * 1000 + int(micros) // 1000 - state.acquired_at_ms)
        usual = state.avg_hold_ms
        state.unusually_long = (
            usual is not None
            and state.releases >= LONG_HOLD_MIN_RELEASES
            and state.age_ms > LONG_HOLD_FACTOR * max(usual, 1.0)
        )
    return asdict(state)
