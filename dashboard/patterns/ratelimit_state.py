"""Rate limits, the read side: what a limiter key found with SCAN says right now.

Read-only (GET, PTTL, ZCOUNT, ZRANGE, TIME, TYPE), computed exactly as the hit
scripts decide. Written as core steps, so the blocking :func:`limiter_state` and the
asyncio limiter's ``peek`` run the same code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dashboard.patterns.ratelimit_keys import (
    LimiterKey,
    gcra_interval_us,
    parse_limiter_key,
    scan_match_pattern,
    shown,
)
from dashboard.patterns.runtime import Batch, Steps, cmd, run

NO_TTL = "the counter has no TTL; the next hit re-anchors its window"


@dataclass
class LimiterState:
    """Live state of one limiter key, computed exactly as the hit script decides."""

    key: str
    name: str
    identity: str
    algorithm: str
    limit: int
    window_ms: int
    exists: bool = False
    used: int = 0
    remaining: int = 0
    resets_in_ms: int | None = 0  # until the full budget is back; None: never (no TTL)
    retry_in_ms: int = 0  # until a hit of cost 1 passes; 0 when not blocked
    blocked: bool = False
    problem: str | None = None


def _ceil_ms(us: int) -> int:
    return max(0, -(-us // 1000))


def _now_us(reply: tuple[Any, Any]) -> int:
    seconds, micros = reply
    return int(seconds) * 1_000_000 + int(micros)


def limiter_state(client: Any, key: bytes | str) -> dict[str, Any]:
    """What the dashboard shows for a limiter key it found: used, remaining, resets in.

    Raises ``ValueError`` (naming the key) when the key is not a limiter key.
    On a cluster, TIME comes from the node redis-py picks; clocks are assumed in sync.
    """
    return run(limiter_state_steps(key), client)


def limiter_state_steps(key: bytes | str) -> Steps:
    """:func:`limiter_state` as core steps."""
    parsed = parse_limiter_key(key)
    if parsed is None:
        raise ValueError(f"not a rate limit key ({scan_match_pattern()}): {shown(key)}")
    state = LimiterState(
        key=shown(key),
        name=parsed.name,
        identity=shown(parsed.identity),
        algorithm=parsed.algorithm,
        limit=parsed.limit,
        window_ms=parsed.window_ms,
        remaining=parsed.limit,
    )
    reader = {"fixed": _read_fixed, "sliding": _read_sliding, "gcra": _read_gcra}
    yield from reader[parsed.algorithm](key, parsed, state)
    state.remaining = max(0, min(parsed.limit, parsed.limit - state.used))
    return asdict(state)


def _type_problem(kind: bytes | str, expected: str, state: LimiterState) -> bool:
    kind = kind.decode() if isinstance(kind, bytes) else kind
    state.exists = kind != "none"
    if state.exists and kind != expected:
        state.problem = f"holds a {kind}, a {state.algorithm} limiter keeps a {expected}"
    return not state.exists or state.problem is not None


def _read_fixed(key: Any, parsed: LimiterKey, state: LimiterState) -> Steps:
    batch = [cmd("type", key), cmd("get", key), cmd("pttl", key)]
    kind, value, pttl = yield Batch(batch, raise_on_error=False)
    if _type_problem(kind, "string", state):
        return
    try:
        state.used = int(value)
    except (TypeError, ValueError):
        state.problem = "the counter does not hold an integer"
        return
    state.resets_in_ms = pttl if pttl >= 0 else None
    if pttl == -1:
        state.problem = NO_TTL
    state.blocked = state.used >= parsed.limit
    if state.blocked:
        state.retry_in_ms = max(pttl, 0)


def _read_sliding(key: Any, parsed: LimiterKey, state: LimiterState) -> Steps:
    now = _now_us((yield cmd("time")))
    window_us = parsed.window_ms * 1000
    live = f"({now - window_us}"  # entries scored after now - window count (as in the script)
    newest = cmd(
        "zrange", key, "+inf", live, desc=True, byscore=True, offset=0, num=1, withscores=True
    )
    batch = [cmd("type", key), cmd("zcount", key, live, "+inf"), newest]
    kind, count, newest = yield Batch(batch, raise_on_error=False)
    if _type_problem(kind, "zset", state):
        return
    state.used = int(count)
    if newest:
        state.resets_in_ms = _ceil_ms(int(newest[0][1]) + window_us - now)
    state.blocked = state.used >= parsed.limit
    if state.blocked:  # the (used - limit + 1)-th oldest live entry must leave first
        nth = state.used - parsed.limit
        row = yield cmd(
            "zrange", key, live, "+inf", byscore=True, offset=nth, num=1, withscores=True
        )
        state.retry_in_ms = _ceil_ms(int(row[0][1]) + window_us - now) if row else 0


def _read_gcra(key: Any, parsed: LimiterKey, state: LimiterState) -> Steps:
    now = _now_us((yield cmd("time")))
    kind, value = yield Batch([cmd("type", key), cmd("get", key)], raise_on_error=False)
    if _type_problem(kind, "string", state):
        return
    try:
        tat = max(int(value), now)
    except (TypeError, ValueError):
        state.problem = "the TAT does not hold an integer"
        return
    interval = gcra_interval_us(parsed.limit, parsed.window_ms)
    span = parsed.limit * interval
    remaining = max(0, (span - (tat - now)) // interval)
    state.used = parsed.limit - remaining
    state.resets_in_ms = _ceil_ms(tat - now)
    state.blocked = remaining < 1
    if state.blocked:
        state.retry_in_ms = _ceil_ms(tat + interval - span - now)
