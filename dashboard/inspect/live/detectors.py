"""Detectors: which keys are rate limiters or locks, read from the key NAME alone.

The live views must be useful on a Redis that never used our pattern layer, so each
known layout has a detector that turns a key name into a :class:`Claim` (what it is,
which limiter/resource, limit and window when the name encodes them). No Redis
call happens here; reading the live state is ``dashboard.inspect.live.foreign`` (foreign
layouts) and the pattern modules' read sides (our own layout).

Built in, in claim order (the first detector that claims a key wins):

* ``dashboard`` ratelimits ``ratelimit:<name>:<algo>:<limit>:<window_ms>:{<id>}`` and
  locks ``lock:{<resource>}`` (+ its ``:fence`` and ``:info``): ``dashboard.patterns``.
  A lock name alone proves nothing (redis-py and python-redis-lock can write
  ``lock:{x}`` too), so such a claim is a candidate that carries a ``fallback``: how
  the key reads if Redis holds no companion of ours (``live/ownership.py`` decides).
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
from dataclasses import replace
from typing import Any

from dashboard.inspect.live.claims import (
    GRANULARITY_S,
    KINDS,
    LOCK,
    RATELIMIT,
    SIGNAL_PREFIX,
    Claim,
    DetectorConfigError,
    glob_escape,
    glob_regex,
    lock_claim,
    star_part,
)
from dashboard.inspect.live.userpatterns import UserPattern, cached_user_patterns
from dashboard.keyid import display_key
from dashboard.patterns.locks import parse_lock_key
from dashboard.patterns.locks import scan_match_patterns as lock_match_patterns
from dashboard.patterns.ratelimit import parse_limiter_key
from dashboard.patterns.ratelimit import scan_match_pattern as limiter_match_pattern

__all__ = [
    "GRANULARITY_S",
    "KINDS",
    "LOCK",
    "RATELIMIT",
    "Claim",
    "DetectorConfigError",
    "Detectors",
    "glob_escape",
    "glob_regex",
    "lock_claim",
    "star_part",
]

_DIGITS = re.compile(r"[1-9][0-9]{0,17}")


def _text(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


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


_COMPANIONS = (b"}:info", b"}:fence")


def _claim_ours_lock(key: bytes) -> Claim | None:
    """``lock:{r}``, ``lock:{r}:fence`` and ``lock:{r}:info`` are candidates for our
    layout's resource ``r`` (the lock key is what the claim reads)."""
    base = key
    for suffix in _COMPANIONS:
        if key.endswith(suffix):
            base = key[: -len(suffix) + 1]
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


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (comma-separated settings)."""
    return [part.strip() for part in text.split(",") if part.strip()]


class Detectors:
    """The detectors one dashboard uses; built from its settings."""

    def __init__(
        self,
        lock_patterns: Iterable[str] = ("lock:*", "*:lock", "locks:*"),
        limits_prefixes: Iterable[str] = ("LIMITS",),
        user: Iterable[UserPattern] = (),
        problems: Iterable[str] = (),
    ) -> None:
        self.lock_globs = [(p, glob_regex(p)) for p in lock_patterns]
        self.limits_prefixes = list(limits_prefixes)
        self.user = list(user)
        self.problems = list(problems)  # e.g. a broken detectors file: shown, not fatal

    @classmethod
    def from_settings(cls, settings: Any) -> Detectors:
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
        if kind == RATELIMIT:
            return _claim_ours_limiter(key) or self._claim_other(kind, key)
        candidate = _claim_ours_lock(key)
        other = self._claim_other(kind, key)
        if candidate is None:
            return other
        # Found under our name; if Redis shows it is not ours, it is the string lock it
        # is (the search found it, so it is shown even when no lock glob covers it).
        fallback = other or lock_claim(key, "string lock", key[len(b"lock:") :])
        return replace(candidate, fallback=(fallback,))

    def _claim_other(self, kind: str, key: bytes) -> Claim | None:
        """User patterns, then ``limits`` or the generic string-lock globs."""
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

    @staticmethod
    def why_not(kind: str, key: bytes) -> str:
        """Why a key the search found is not shown (it matched a glob, no layout)."""
        if kind == LOCK and key.startswith(SIGNAL_PREFIX):
            return "python-redis-lock's wake-up list, not a lock"
        what = "rate-limit" if kind == RATELIMIT else "lock"
        return f"matches a search glob but no {what} layout reads this name"
