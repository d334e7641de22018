"""What a key name says it is: the :class:`Claim` every detector returns, and the
Redis glob helpers detectors and user patterns share."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dashboard.keyid import display_key

RATELIMIT, LOCK = "ratelimit", "lock"
KINDS = (RATELIMIT, LOCK)
GRANULARITY_S = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 30 * 86400,
    "year": 360 * 86400,
}  # limits.limits.TIME_TYPES: a "month" is 30 days, a "year" 12 such months
SIGNAL_PREFIX = b"lock-signal:"  # python-redis-lock's wake-up lists: not locks


class DetectorConfigError(ValueError):
    """The user's detector file or lock patterns cannot be used; names file and entry."""


@dataclass(frozen=True)
class Claim:
    """What one key name says: the thing to show and how to read its state."""

    kind: str  # "ratelimit" | "lock"
    layout: str  # "dashboard", "limits", "redis-py", ... or a user pattern's name
    reader: str  # read routine: ours | ours-lock | fixed | limits | limits-sliding | log | string
    key: bytes  # the key holding the state (sliding counter: the current window)
    group: str  # limiter label (ratelimits); "" for locks
    subject: str  # identity (ratelimits) or resource (locks), display text
    algorithm: str | None = None
    limit: int | None = None
    window_ms: int | None = None
    companions: tuple[bytes, ...] = ()  # more keys of the same state (a reset deletes them)
    score_ms: float = 1.0  # sorted-set logs: one score unit in ms
    # A name in our lock layout is only a candidate (live/ownership.py): when Redis shows
    # no companion of ours, each key found for it is read as these claims instead.
    fallback: tuple[Claim, ...] = ()


def glob_regex(pattern: str) -> re.Pattern[bytes]:
    """Redis glob (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes) as a bytes regex;
    every ``*`` is a group so a single-star pattern yields the varying part."""
    raw, out, i = pattern.encode("utf-8", "surrogateescape"), [], 0
    while i < len(raw):
        ch = raw[i : i + 1]
        if ch == b"*":
            out.append(b"(.*)")
        elif ch == b"?":
            out.append(b".")
        elif ch == b"\\" and i + 1 < len(raw):
            i += 1
            out.append(re.escape(raw[i : i + 1]))
        elif ch == b"[" and b"]" in raw[i + 1 :]:
            end = raw.index(b"]", i + 2 if raw[i + 1 : i + 2] in (b"^", b"]") else i + 1)
            body = raw[i + 1 : end]
            negate = body.startswith(b"^")
            body = body[1:] if negate else body
            escaped = re.sub(rb"([\]\[^\\])", rb"\\\1", body)
            out.append(b"[" + (b"^" if negate else b"") + escaped + b"]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile(b"".join(out), re.DOTALL)


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


# -- string locks (redis-py Lock, python-redis-lock, SET NX) -----------------------------
def star_part(match: re.Match[bytes]) -> bytes | None:
    """What the single ``*`` of a lock glob matched (``lock:*`` -> the resource)."""
    return match.group(1) if len(match.groups()) == 1 else None


def lock_claim(key: bytes, layout: str, part: bytes | None) -> Claim:
    return Claim(LOCK, layout, "string", key, "", display_key(part or key))
