"""Rate limits: fixed window, sliding-window log and GCRA, one Lua round trip per hit.

Every limiter keeps ONE key per identity, and the key name carries the whole
configuration, so the dashboard can explain a key it merely FINDS with SCAN
("37 of 100 used, resets in 12 s") without any registry::

    ratelimit:<name>:<algorithm>:<limit>:<window_ms>:{<identity>}

=============  ==========  ======================================================
algorithm      type        content of ``ratelimit:<name>:<algorithm>:<limit>:<ms>:{<id>}``
=============  ==========  ======================================================
``fixed``      string      units allowed in the current window; PTTL = window left
``sliding``    sorted set  one member per unit (``<us>:<nonce>:<i>``), score =
                           server time in microseconds; TTL = window after the newest
``gcra``       string      theoretical arrival time (server time, us); TTL until it
=============  ==========  ======================================================

* ``name``: ``[A-Za-z0-9_.-]``, 1..100 characters (no ``:``, no braces, no glob chars).
* ``limit``/``window_ms``: positive decimal integers without leading zeros. A limiter
  whose configuration changes gets new keys: old counters are not carried over.
* ``identity``: any non-empty str/bytes/int. It is the hash tag, so every key of one
  identity (all its limiters) lives on one cluster slot. ``%``, ``{`` and ``}`` are
  escaped as ``%25``, ``%7B``, ``%7D`` (a brace would cut the hash tag short); every
  other byte, ``:`` included, is kept as is. :func:`parse_limiter_key` reverses it.

Time always comes from the server (``TIME`` inside Lua, the key's TTL for fixed
windows), never from the client clock. ``reset_after_s`` means the same for all three
algorithms: the time until the identity has its full budget again. Denied requests
are never counted (check, then spend), so retrying while blocked changes nothing.

A lost reply is never answered by a resend that counts twice: the sliding log is
idempotent (each request's members carry its nonce, and a resend finds them), the
fixed window and GCRA hits are not resent (the caller gets the ConnectionError; the
hit counted at most once). See ``docs/patterns/ratelimit.md`` for the trade-offs.

The logic is one core (:class:`LimiterCore`) run by two shells: :class:`RateLimiter`
(blocking) and :class:`dashboard.patterns.aio.AsyncRateLimiter` (asyncio).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from random import getrandbits
from typing import Any

from redis.exceptions import ResponseError

from dashboard.patterns.keys import KeyPart
from dashboard.patterns.ratelimit_keys import (
    ALGORITHMS,
    PREFIX,
    KeyMaker,
    LimiterKey,
    check_name,
    escape_identity,
    gcra_interval_us,
    limiter_key,
    parse_limiter_key,
    scan_match_pattern,
    shown,
)
from dashboard.patterns.ratelimit_state import (
    NO_TTL,
    LimiterState,
    limiter_state,
    limiter_state_steps,
)
from dashboard.patterns.runtime import Script, Steps, blocking, cmd
from dashboard.patterns.scripts import load

__all__ = [
    "ALGORITHMS",
    "NO_TTL",
    "PREFIX",
    "Decision",
    "LimiterCore",
    "LimiterKey",
    "LimiterState",
    "RateLimitError",
    "RateLimiter",
    "escape_identity",
    "gcra_interval_us",
    "limiter_key",
    "limiter_state",
    "parse_limiter_key",
    "scan_match_pattern",
]

_SCRIPTS = {algo: load(f"ratelimit_{algo}") for algo in ALGORITHMS}
# A resend after a lost reply: the sliding log recognises its own request (idempotent);
# the fixed-window counter and the GCRA TAT cannot, so their hits are never resent.
RESEND = {"fixed": False, "sliding": True, "gcra": False}


class RateLimitError(ResponseError):
    """Redis refused a limiter operation (e.g. the key holds a foreign value)."""


@dataclass(frozen=True)
class Decision:
    """The outcome of one hit (or of a peek: would a hit of cost 1 pass now?)."""

    allowed: bool
    limit: int
    remaining: int
    reset_after_s: float  # until the identity has its full budget again
    retry_after_s: float  # until a denied request of the same cost could pass; 0 if allowed
    algorithm: str
    key: str | bytes


class LimiterCore:
    """``limit`` units per ``window`` seconds per identity, by one algorithm."""

    default_sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(
        self,
        client: Any,
        name: str,
        limit: int,
        window: float,
        algorithm: str = "sliding",
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
            raise ValueError(f"limiter {name!r}: window must be positive seconds, got {window!r}")
        self.client = client
        self.name = check_name(name)
        self.limit = limit
        self.window_ms = max(1, round(window * 1000))
        self.algorithm = algorithm
        self.key_for: Callable[[KeyPart], str | bytes] = KeyMaker(
            name, algorithm, limit, self.window_ms
        )
        self.sleep = self.default_sleep
        self._script = _SCRIPTS[algorithm]
        self._resend = RESEND[algorithm]
        third = gcra_interval_us(limit, self.window_ms) if algorithm == "gcra" else self.window_ms
        self._args = (limit, third)  # the arguments every hit shares

    def _hit(self, identity: KeyPart, cost: int = 1) -> Steps:
        """Spend ``cost`` units if they fit; one atomic script call either way."""
        key = self.key_for(identity)
        if type(cost) is not int or not 1 <= cost <= self.limit:
            raise ValueError(f"{key!r}: cost must be an int in 1..{self.limit}, got {cost!r}")
        algo = self.algorithm
        args: tuple[Any, ...] = (*self._args, cost)
        if algo == "sliding":  # unique per request, not secret: no system call for it
            args = (*args, f"{getrandbits(64):016x}")
        try:
            reply = yield Script(self._script, (key,), args, self._resend)
        except ResponseError as exc:
            raise RateLimitError(f"rate limit key {shown(key)}: {exc}") from exc
        limit = self.limit
        if algo == "fixed":
            allowed, count, pttl_ms = reply
            left_s = max(pttl_ms, 0) / 1000
            return Decision(
                bool(allowed), limit, limit - count, left_s, 0.0 if allowed else left_s, algo, key
            )
        allowed, figure, reset_us, retry_us = reply
        remaining = limit - figure if algo == "sliding" else figure
        return Decision(bool(allowed), limit, remaining, reset_us / 1e6, retry_us / 1e6, algo, key)

    def _peek(self, identity: KeyPart) -> Steps:
        """Would a hit of cost 1 pass now? Read-only: spends nothing."""
        key = self.key_for(identity)
        state = yield from limiter_state_steps(key)
        if state["problem"] and state["problem"] != NO_TTL:  # a lost TTL is still readable
            raise RateLimitError(f"rate limit key {state['key']}: {state['problem']}")
        return Decision(
            allowed=not state["blocked"],
            limit=self.limit,
            remaining=state["remaining"],
            reset_after_s=(state["resets_in_ms"] or 0) / 1000,
            retry_after_s=state["retry_in_ms"] / 1000,
            algorithm=self.algorithm,
            key=key,
        )

    def _reset(self, identity: KeyPart) -> Steps:
        """Forget the identity's usage (full budget again); True if there was any."""
        return bool((yield cmd("delete", self.key_for(identity))))


class RateLimiter(LimiterCore):
    """``limit`` units per ``window`` seconds per identity, by one algorithm (blocking)."""

    hit = blocking(LimiterCore._hit)
    peek = blocking(LimiterCore._peek)
    reset = blocking(LimiterCore._reset)
