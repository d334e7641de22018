"""Rate-limit key layout: the configuration lives in the key name (see ``ratelimit``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dashboard.keyid import display_key
from dashboard.patterns import keys
from dashboard.patterns.keys import KeyPart

PREFIX = "ratelimit"
ALGORITHMS = ("fixed", "sliding", "gcra")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_NUMBER = re.compile(rb"[1-9][0-9]{0,17}")
_ESCAPED = re.compile(rb"(?:[^%{}]|%(?:25|7B|7D))+", re.DOTALL)
_UNESCAPE = {b"%25": b"%", b"%7B": b"{", b"%7D": b"}"}


@dataclass(frozen=True)
class LimiterKey:
    """What a limiter key says about itself; ``identity`` has the key's type (str/bytes)."""

    name: str
    algorithm: str
    limit: int
    window_ms: int
    identity: str | bytes

    @property
    def key(self) -> str | bytes:
        return limiter_key(self.name, self.algorithm, self.limit, self.window_ms, self.identity)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"limiter name must match [A-Za-z0-9_.-]{{1,100}}, got {name!r}")
    return name


def escape_identity(identity: KeyPart) -> str | bytes:
    """The identity as stored inside the hash tag (``%``, ``{``, ``}`` escaped)."""
    if isinstance(identity, bool) or not isinstance(identity, str | bytes | int):
        raise TypeError(f"identity must be str, bytes or int, not {type(identity).__name__}")
    if isinstance(identity, int):
        identity = str(identity)
    if not identity:
        raise ValueError("rate limit identity must not be empty (it is the hash tag)")
    if isinstance(identity, bytes):
        return identity.replace(b"%", b"%25").replace(b"{", b"%7B").replace(b"}", b"%7D")
    return identity.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def limiter_key(
    name: str, algorithm: str, limit: int, window_ms: int, identity: KeyPart
) -> str | bytes:
    """``ratelimit:<name>:<algorithm>:<limit>:<window_ms>:{<identity>}`` (bytes if identity is)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown rate limit algorithm {algorithm!r}; use one of {ALGORITHMS}")
    for what, n in (("limit", limit), ("window_ms", window_ms)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"limiter {name!r}: {what} must be a positive int, got {n!r}")
    tagged = keys.tag(escape_identity(identity))
    return keys.key(PREFIX, check_name(name), algorithm, limit, window_ms, tagged)


def parse_limiter_key(key: bytes | str) -> LimiterKey | None:
    """Read the configuration back from a key name; None for anything not ours."""
    try:
        raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    except (UnicodeEncodeError, TypeError):
        return None
    head = PREFIX.encode() + b":"
    if not raw.startswith(head):
        return None
    parts = raw[len(head) :].split(b":", 4)
    if len(parts) != 5:
        return None
    name, algo, limit, window, tagged = parts
    if not (_NAME.fullmatch(name.decode("latin-1")) and algo.decode("latin-1") in ALGORITHMS):
        return None
    if not (_NUMBER.fullmatch(limit) and _NUMBER.fullmatch(window)):
        return None
    if not (tagged.startswith(b"{") and tagged.endswith(b"}")):
        return None
    inner = tagged[1:-1]
    if not _ESCAPED.fullmatch(inner):
        return None
    identity: str | bytes = re.sub(rb"%(?:25|7B|7D)", lambda m: _UNESCAPE[m.group(0)], inner)
    if isinstance(key, str):
        identity = identity.decode("utf-8")
    return LimiterKey(name.decode(), algo.decode(), int(limit), int(window), identity)


def scan_match_pattern(name: str | None = None) -> str:
    """A SCAN MATCH pattern for every limiter key (of one limiter name if given)."""
    return f"{PREFIX}:{'*' if name is None else check_name(name) + ':*'}"


def gcra_interval_us(limit: int, window_ms: int) -> int:
    """GCRA emission interval: ``window / limit`` rounded UP to a whole microsecond.

    Integer arithmetic keeps burst = limit exact; the sustained rate is at most
    one unit per microsecond slower than configured.
    """
    return -(-window_ms * 1000 // limit)


def shown(key: str | bytes) -> str:
    """A key as shown in messages (escaped, bounded)."""
    return display_key(key.encode("utf-8") if isinstance(key, str) else key)


class KeyMaker:
    """Builds one limiter's keys fast: the fixed head is made once, per call only the
    identity is escaped (the same bytes :func:`limiter_key` gives)."""

    def __init__(self, name: str, algorithm: str, limit: int, window_ms: int) -> None:
        limiter_key(name, algorithm, limit, window_ms, "x")  # validates the configuration
        self.head = f"{PREFIX}:{name}:{algorithm}:{limit}:{window_ms}:{{"
        self.head_bytes = self.head.encode()

    def __call__(self, identity: KeyPart) -> str | bytes:
        if type(identity) is str and identity and not _SPECIAL.search(identity):
            return self.head + identity + "}"
        escaped = escape_identity(identity)
        if isinstance(escaped, bytes):
            return self.head_bytes + escaped + b"}"
        return self.head + escaped + "}"


_SPECIAL = re.compile(r"[%{}]")
