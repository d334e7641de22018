"""Detectors: which keys are rate limiters or locks, read from the key NAME alone.

The live views must be useful on a Redis that never used our pattern layer, so each
known layout has a detector that turns a key name into a :class:`Claim` (what it is,
which limiter/resource, limit and window when the name encodes them). No Redis
call happens here; reading the live state is ``dashboard.inspect.foreign`` (foreign
layouts) and the pattern modules' read sides (our own layout).

Built in, in claim order (the first detector that claims a key wins):

* ``dashboard`` ratelimits ``ratelimit:<name>:<algo>:<limit>:<window_ms>:{<id>}`` and
  locks ``lock:{<resource>}`` (+ its ``:info`` stats hash): ``dashboard.patterns``.
* user patterns from the TOML file (``detectors_file``), see :func:`load_user_patterns`.
* ``limits`` (the library behind Flask-Limiter), Redis storage, prefix ``LIMITS``:
  fixed and moving window ``LIMITS:<namespace>/<ids...>/<amount>/<multiples>/<granularity>``
  (a string counter or a list of timestamps), sliding window counter
  ``LIMITS:{<same>}`` + ``LIMITS:{<same>}/-1`` (current and previous window counts).
* string locks under the ``lock_patterns`` globs (redis-py ``Lock``, python-redis-lock's
  ``lock:<name>``, hand-written ``SET NX PX``): the value is the holder's token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dashboard.inspect.keyid import display_key
from dashboard.patterns.locks import parse_lock_key
from dashboard.patterns.locks import scan_match_patterns as lock_match_patterns
from dashboard.patterns.ratelimit import parse_limiter_key
from dashboard.patterns.ratelimit import scan_match_pattern as limiter_match_pattern

if TYPE_CHECKING:
    from dashboard.inspect.userpatterns import UserPattern

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
_DIGITS = re.compile(r"[1-9][0-9]{0,17}")


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


def _text(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


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


def minimal_patterns(patterns: Iterable[str]) -> list[str]:
    """Drop patterns another one already covers (``lock:*`` covers ``lock:{*``), so SCAN
    does not walk the keyspace twice for the same keys. Only trailing-star prefixes
    are treated as covering; anything else is kept."""
    unique = list(dict.fromkeys(patterns))
    prefixes = [p[:-1] for p in unique if p.endswith("*") and not re.search(r"[*?\[\\]", p[:-1])]
    return [p for p in unique if not any(p != q + "*" and p.startswith(q) for q in prefixes)]


# -- our layer ---------------------------------------------------------------------------
def _claim_ours_limiter(key: bytes) -> Claim | None:
    parsed = parse_limiter_key(key)
    if parsed is None:
        return None
    return Claim(
        RATELIMIT,
        "dashboard",
        "ours",
        key,
        parsed.name,
        display_key(bytes(parsed.identity)),
        parsed.algorithm,
        parsed.limit,
        parsed.window_ms,
    )


def _claim_ours_lock(key: bytes) -> Claim | None:
    """``lock:{r}`` and its ``lock:{r}:info`` stats both stand for resource ``r``."""
    base = key[: -len(b":info")] if key.endswith(b"}:info") else key
    resource = parse_lock_key(base)
    if resource is None:
        return None
    return Claim(LOCK, "dashboard", "ours-lock", base, "", display_key(bytes(resource)))


# -- limits (Flask-Limiter) ----------------------------------------------------------------
def parse_limits_key(key: bytes, prefixes: Iterable[str] = ("LIMITS",)) -> Claim | None:
    """A ``limits`` Redis-storage key; ``None`` when the name is not in its layout."""
    text = _text(key)
    for prefix in prefixes:
        if text.startswith(prefix + ":"):
            rest = text[len(prefix) + 1 :]
            break
    else:
        return None
    sliding = rest.startswith("{")
    if sliding:
        if rest.endswith("}/-1"):
            rest = rest[:-3]
        if not rest.endswith("}"):
            return None
        rest = rest[1:-1]
    parts = rest.rsplit("/", 3)
    if len(parts) != 4:
        return None
    ids, amount, multiples, granularity = parts
    if not (_DIGITS.fullmatch(amount) and _DIGITS.fullmatch(multiples)):
        return None
    if granularity not in GRANULARITY_S:
        return None
    namespace, _, identity = ids.partition("/")
    window_ms = int(multiples) * GRANULARITY_S[granularity] * 1000
    label = f"{namespace} · {amount} per {multiples} {granularity}"
    current = f"{prefix}:{{{rest}}}".encode("utf-8", "surrogateescape") if sliding else key
    return Claim(
        RATELIMIT,
        "limits",
        "limits-sliding" if sliding else "limits",
        current,
        display_key(label.encode("utf-8", "surrogateescape")),
        display_key(identity.encode("utf-8", "surrogateescape")) or "(none)",
        "sliding-window-counter" if sliding else None,  # fixed vs moving: by TYPE
        int(amount),
        window_ms,
        (current + b"/-1",) if sliding else (),
    )


# -- string locks (redis-py Lock, python-redis-lock, SET NX) -----------------------------
def star_part(match: re.Match[bytes]) -> bytes | None:
    """What the single ``*`` of a lock glob matched (``lock:*`` -> the resource)."""
    return match.group(1) if len(match.groups()) == 1 else None


def lock_claim(key: bytes, layout: str, part: bytes | None) -> Claim:
    return Claim(LOCK, layout, "string", key, "", display_key(part or key))


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (comma-separated settings)."""
    return [part.strip() for part in text.split(",") if part.strip()]


class Detectors:
    """The detectors one dashboard uses; built from its settings."""

    def __init__(
        self,
        lock_patterns: Iterable[str] = ("lock:*", "*:lock", "locks:*"),
        limits_prefixes: Iterable[str] = ("LIMITS",),
        user: Iterable[UserPattern] = (),  # dashboard.inspect.userpatterns
        problems: Iterable[str] = (),
    ) -> None:
        self.lock_globs = [(p, glob_regex(p)) for p in lock_patterns]
        self.limits_prefixes = list(limits_prefixes)
        self.user = list(user)
        self.problems = list(problems)  # e.g. a broken detectors file: shown, not fatal

    @classmethod
    def from_settings(cls, settings: Any) -> Detectors:
        from dashboard.inspect.userpatterns import cached_user_patterns

        problems, user = [], []
        if settings.detectors_file:
            try:
                user = cached_user_patterns(settings.detectors_file)
            except DetectorConfigError as exc:
                problems.append(str(exc))
        return cls(
            split_list(settings.lock_patterns),
            split_list(settings.limits_prefixes),
            user,
            problems,
        )

    def patterns(self, kind: str) -> list[str]:
        """The SCAN MATCH globs that find every key of ``kind`` (covered ones dropped)."""
        user = [p.match for p in self.user if p.kind == kind]
        if kind == RATELIMIT:
            limits = [glob_escape(p) + ":*" for p in self.limits_prefixes]
            found = [limiter_match_pattern(), *user, *limits]
        else:
            ours = [*lock_match_patterns(), *(p + ":info" for p in lock_match_patterns())]
            found = [*ours, *user, *(p for p, _ in self.lock_globs)]
        return minimal_patterns(found)

    def layouts(self, kind: str) -> list[str]:
        """Names of the layouts searched for ``kind`` (for the page's legend)."""
        user = [p.name for p in self.user if p.kind == kind]
        if kind == RATELIMIT:
            return ["dashboard", *user, "limits"]
        return ["dashboard", *user, "redis-py", "python-redis-lock", "string lock"]

    def claim(self, kind: str, key: bytes | str) -> Claim | None:
        """The first detector's reading of ``key`` for ``kind``, or None."""
        key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        first = _claim_ours_limiter(key) if kind == RATELIMIT else _claim_ours_lock(key)
        if first is not None:
            return first
        if kind == LOCK and key.startswith(b"lock:{"):
            return None  # our companions (":fence", stats of a malformed resource)
        for pattern in self.user:
            if pattern.kind == kind and (found := pattern.claim(key)) is not None:
                return found
        if kind == RATELIMIT:
            return parse_limits_key(key, self.limits_prefixes)
        if key.startswith(SIGNAL_PREFIX):
            return None
        for _, regex in self.lock_globs:
            if (match := regex.fullmatch(key)) is not None:
                return lock_claim(key, "string lock", star_part(match))
        return None
