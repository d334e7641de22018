"""Read sides for layouts the dashboard did not write: ``limits`` windows, user counters
and logs, string locks (redis-py ``Lock``, python-redis-lock, ``SET NX PX``).

Read-only and bounded: TYPE, PTTL, STRLEN, GETRANGE (first bytes only), LRANGE of at
most :data:`MAX_LIST` entries (longer moving windows are bisected with LINDEX), ZCOUNT
and one-element ZRANGE. Every claim of one node is read in ONE pipeline; ``now_ms``
is that node's ``TIME``. ``limits`` stamps entries with its client's clock, so a moving
window is read against the server clock and assumes the two agree.

Each function returns the same plain dicts as the pattern layer's read sides (plus
``layout``) so the views render both alike; a key that vanished yields ``None``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from dashboard.inspect.live.detectors import Claim
from dashboard.patterns.locks import short_token

MAX_LIST = 512  # moving-window timestamps fetched in one LRANGE
COUNTER_BYTES = 32  # a counter is at most 20 digits: GETRANGE 0 31 reads all of it
TOKEN_BYTES = 128  # enough of a lock token to recognise and shorten it
_REDIS_PY_TOKEN = re.compile(rb"[0-9a-f]{12}1[0-9a-f]{3}[89ab][0-9a-f]{15}")  # uuid1().hex
_PYTHON_REDIS_LOCK_TOKEN = re.compile(rb"[A-Za-z0-9+/]{24}")  # b64encode(urandom(18))


def _str(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ceil(ms: float) -> int:
    return max(0, math.ceil(ms))


def limiter_entry(claim: Claim, **fields: Any) -> dict[str, Any]:
    """One limiter identity, shaped like ``ratelimit.limiter_state`` plus ``layout``."""
    entry = {
        "layout": claim.layout,
        "limiter": claim.group,
        "identity": claim.subject,
        "algorithm": claim.algorithm,
        "limit": claim.limit,
        "window_ms": claim.window_ms,
        "exists": True,
        "used": 0,
        "remaining": claim.limit,
        "resets_in_ms": 0,
        "retry_in_ms": 0,
        "blocked": False,
        "problem": None,
    }
    entry.update(fields)
    # ``remaining`` follows a usage that was read (a counter without TTL still counts);
    # without one it stays the whole limit (nothing used yet, or the usage is unknown).
    if entry["limit"] is not None and "used" in fields:
        entry["remaining"] = max(0, entry["limit"] - entry["used"])
    return entry


# -- rate limits ------------------------------------------------------------------------
def _queue_ratelimit(pipe: Any, claim: Claim, now_ms: int) -> int:
    key = claim.key
    if claim.reader in ("fixed", "limits"):
        pipe.type(key).getrange(key, 0, COUNTER_BYTES - 1).pttl(key)
        if claim.reader == "fixed":
            return 3
        pipe.lrange(key, 0, min(claim.limit or 1, MAX_LIST) - 1)
        return 4
    if claim.reader == "limits-sliding":
        prev = claim.companions[0]
        pipe.type(key).getrange(key, 0, COUNTER_BYTES - 1).pttl(key)
        pipe.getrange(prev, 0, COUNTER_BYTES - 1).pttl(prev)
        return 5
    since = f"({(now_ms - (claim.window_ms or 0)) / claim.score_ms!r}"  # log
    pipe.type(key).zcount(key, since, "+inf")
    pipe.zrange(key, "+inf", since, desc=True, byscore=True, offset=0, num=1, withscores=True)
    return 3


def _wrong_type(claim: Claim, kind: str, expected: str) -> dict[str, Any]:
    return limiter_entry(claim, problem=f"holds a {kind}; this layout keeps a {expected}")


def _counter(claim: Claim, value: Any, pttl: Any) -> dict[str, Any]:
    """A string counter whose TTL is the rest of the window (limits fixed window, user)."""
    used = _int(value)
    algorithm = claim.algorithm or "fixed-window"
    if used is None:
        return limiter_entry(claim, algorithm=algorithm, problem="the counter is not an integer")
    pttl = pttl if isinstance(pttl, int) else -2
    blocked = claim.limit is not None and used >= claim.limit  # the next hit of 1 fails
    return limiter_entry(
        claim,
        algorithm=algorithm,
        used=used,
        resets_in_ms=pttl if pttl >= 0 else None,
        retry_in_ms=max(pttl, 0) if blocked else 0,
        blocked=blocked,
        problem="no TTL: this counter never resets" if pttl == -1 else None,
    )


def _moving_window(client: Any, claim: Claim, stamps: list[Any], now_ms: int) -> dict[str, Any]:
    """``limits`` moving window: a list of hit times (seconds), newest first, trimmed to
    ``limit``; a hit is refused while entry ``limit-1`` is still inside the window."""
    limit, window = claim.limit or 1, claim.window_ms or 0
    cutoff_s = (now_ms - window) / 1000
    times = [float(t) for t in stamps]
    used = next((i for i, t in enumerate(times) if t < cutoff_s), len(times))
    if used == len(times) == MAX_LIST < limit:  # more in the window than we fetched
        used = _bisect_live(client, claim.key, MAX_LIST, limit - 1, cutoff_s)
    newest = times[0] if times else None
    blocked = used >= limit
    retry = 0
    if blocked:
        oldest_live = client.lindex(claim.key, limit - 1) if limit > MAX_LIST else times[-1]
        retry = _ceil(float(oldest_live) * 1000 + window - now_ms)
    return limiter_entry(
        claim,
        algorithm="moving-window",
        used=used,
        resets_in_ms=_ceil(newest * 1000 + window - now_ms) if used and newest else 0,
        retry_in_ms=retry,
        blocked=blocked,
    )


def _bisect_live(client: Any, key: bytes, low: int, high: int, cutoff_s: float) -> int:
    """How many leading entries are at or after ``cutoff_s`` (LINDEX, log2 round trips)."""
    count = low
    while low <= high:
        mid = (low + high) // 2
        value = client.lindex(key, mid)
        if value is not None and float(value) >= cutoff_s:
            count, low = mid + 1, mid + 1
        else:
            high = mid - 1
    return count


def sliding_counter_retry_ms(
    limit: int, window: int, prev: int, prev_ttl: int, cur: int, cur_ttl: int
) -> int:
    """When a hit of 1 passes again under ``limits``' sliding window counter.

    The weighted count is ``floor(prev * prev_ttl / window) + cur``; the previous window
    decays with its TTL, and the current one becomes the previous once its TTL (set to
    twice the window) drops below one window. TTLs are whole ms, so "after x" is the
    first whole ms past x.
    """

    def after(moment: float) -> int:
        return max(0, math.floor(moment) + 1)

    shift = after(cur_ttl - window) if cur else math.inf
    if cur >= limit:  # the current window alone is full: it must shift and decay first
        return after(cur_ttl - window + window * (1 - limit / cur))
    decayed = after(prev_ttl - (limit - cur) * window / prev) if prev else 0
    return int(min(decayed, shift))  # after the shift the old current (< limit) decays


def _sliding_counter(claim: Claim, cur: Any, cur_ttl: Any, prev: Any, prev_ttl: Any) -> dict:
    """``limits`` sliding window counter, read without the shift its own read does."""
    limit, window = claim.limit or 1, claim.window_ms or 1
    cur_n, prev_n = _int(cur) or 0, _int(prev) or 0
    cur_ttl = max(cur_ttl if isinstance(cur_ttl, int) else 0, 0)
    prev_ttl = max(prev_ttl if isinstance(prev_ttl, int) else 0, 0)
    if 0 < cur_ttl < window:  # the current window is over: it counts as the previous one
        prev_n, prev_ttl, cur_n, cur_ttl = cur_n, cur_ttl, 0, 0
    if not prev_n:
        prev_ttl = 0
    used = prev_n * prev_ttl // window + cur_n
    blocked = used + 1 > limit
    return limiter_entry(
        claim,
        used=used,
        resets_in_ms=max(cur_ttl if cur_n else 0, prev_ttl),
        retry_in_ms=(
            sliding_counter_retry_ms(limit, window, prev_n, prev_ttl, cur_n, cur_ttl)
            if blocked
            else 0
        ),
        blocked=blocked,
    )


def _log(client: Any, claim: Claim, count: Any, newest: Any, now_ms: int) -> dict:
    """A sorted set with one member per hit, scored by time (user patterns)."""
    limit, window, unit = claim.limit or 1, claim.window_ms or 0, claim.score_ms
    used = int(count)
    blocked = used >= limit
    retry = 0
    if blocked:  # the (used - limit + 1)-th oldest live entry must leave the window first
        since = f"({(now_ms - window) / unit!r}"
        row = client.zrange(
            claim.key, since, "+inf", byscore=True, offset=used - limit, num=1, withscores=True
        )
        retry = _ceil(row[0][1] * unit + window - now_ms) if row else 0
    reset = _ceil(newest[0][1] * unit + window - now_ms) if newest else 0
    return limiter_entry(claim, used=used, resets_in_ms=reset, retry_in_ms=retry, blocked=blocked)


def _parse_ratelimit(client: Any, claim: Claim, r: list[Any], now_ms: int) -> dict | None:
    kind = _str(r[0])
    if kind == "none":
        return None
    if claim.reader == "log":
        if kind != "zset":
            return _wrong_type(claim, kind, "sorted set of hit times")
        return _log(client, claim, r[1], r[2], now_ms)
    if claim.reader == "limits" and kind == "list":
        return _moving_window(client, claim, r[3], now_ms)
    if kind != "string":
        expected = "string counter" + (" or a list" if claim.reader == "limits" else "")
        return _wrong_type(claim, kind, expected)
    if claim.reader == "limits-sliding":
        return _sliding_counter(claim, r[1], r[2], r[3], r[4])
    return _counter(claim, r[1], r[2])


def read_ratelimits(client: Any, claims: list[Claim], now_ms: int) -> list[tuple[Claim, dict]]:
    """Live state of foreign limiter keys on one node (one pipeline, a few follow-ups)."""
    pipe = client.pipeline(transaction=False)
    spans = [_queue_ratelimit(pipe, claim, now_ms) for claim in claims]
    replies = pipe.execute(raise_on_error=False)
    out, at = [], 0
    for claim, span in zip(claims, spans, strict=True):
        chunk, at = replies[at : at + span], at + span
        if isinstance(chunk[0], Exception):
            out.append((claim, limiter_entry(claim, problem=f"cannot read: {chunk[0]}")))
        elif (entry := _parse_ratelimit(client, claim, chunk, now_ms)) is not None:
            out.append((claim, entry))
    return out


# -- locks ----------------------------------------------------------------------------------
def lock_layout(claim: Claim, key: bytes, token: bytes) -> str:
    """Name the library behind a generic string lock from its token's shape."""
    if claim.layout != "string lock":
        return claim.layout
    if _REDIS_PY_TOKEN.fullmatch(token):
        return "redis-py"
    if key.startswith(b"lock:") and _PYTHON_REDIS_LOCK_TOKEN.fullmatch(token):
        return "python-redis-lock"
    return claim.layout


def lock_entry(claim: Claim, **fields: Any) -> dict[str, Any]:
    """Shaped like ``locks.lock_state``; stats a foreign layout does not keep are None."""
    entry: dict[str, Any] = {
        "layout": claim.layout,
        "resource": claim.subject,
        "held": True,
        "holder": None,
        "ttl_remaining_ms": None,
        "held_forever": False,
        "fence": None,
        "last_fence": None,
        "acquired_at_ms": None,
        "age_ms": None,
        **dict.fromkeys(
            "attempts failures expired extends releases hold_ms_total waits wait_ms_total"
            " avg_hold_ms".split()
        ),
        "unusually_long": False,
        "problem": None,
    }
    entry.update(fields)
    return entry


def _refused(kind: Any, token: Any, pttl: Any) -> Exception | None:
    """The error that kept a lock from being read (an ACL), if any. GETRANGE of a key
    that is not a string fails by nature: that is no refusal."""
    if isinstance(kind, Exception):
        return kind
    if _str(kind) == "none":
        return None  # gone: nothing to refuse
    if isinstance(pttl, Exception):
        return pttl
    if isinstance(token, Exception) and _str(kind) == "string":
        return token
    return None


def read_locks(
    client: Any, claims: list[Claim], skipped: list[tuple[bytes, str]] | None = None
) -> list[tuple[Claim, dict[str, Any]]]:
    """Holder, lease left and the no-TTL flag of string locks on one node; a key that
    is not a string (a hash or list under a lock glob) goes to ``skipped`` with why."""
    pipe = client.pipeline(transaction=False)
    for claim in claims:
        key = claim.key
        pipe.type(key).strlen(key).getrange(key, 0, TOKEN_BYTES - 1).pttl(key)
    replies = pipe.execute(raise_on_error=False)
    out = []
    for i, claim in enumerate(claims):
        kind, length, token, pttl = replies[4 * i : 4 * i + 4]
        if (refused := _refused(kind, token, pttl)) is not None:
            out.append((claim, lock_entry(claim, problem=f"cannot read: {refused}")))
            continue
        if _str(kind) == "none" or pttl == -2:
            continue  # gone since the search found it
        if isinstance(token, str):  # a client with decode_responses=True
            token = token.encode("utf-8", "surrogateescape")
        if _str(kind) != "string" or not isinstance(token, bytes) or not token:
            if skipped is not None:
                what = f"a {_str(kind)}" if _str(kind) != "string" else "an empty string"
                skipped.append((claim.key, f"holds {what}, not a lock token"))
            continue
        out.append(
            (
                claim,
                lock_entry(
                    claim,
                    layout=lock_layout(claim, claim.key, token),
                    holder=short_token(token),
                    ttl_remaining_ms=pttl,
                    held_forever=pttl == -1,
                    problem=(
                        f"the value is {length} bytes: a token is short, is this a lock?"
                        if isinstance(length, int) and length > TOKEN_BYTES
                        else None
                    ),
                ),
            )
        )
    return out
