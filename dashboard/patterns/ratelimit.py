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
See ``docs/patterns/ratelimit.md`` for the algorithms' trade-offs.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from redis.exceptions import ResponseError

from dashboard.keyid import display_key
from dashboard.patterns import keys
from dashboard.patterns.keys import KeyPart
from dashboard.patterns.scripts import load

PREFIX = "ratelimit"
ALGORITHMS = ("fixed", "sliding", "gcra")
_SCRIPTS = {algo: load(f"ratelimit_{algo}") for algo in ALGORITHMS}
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_NUMBER = re.compile(rb"[1-9][0-9]{0,17}")
_ESCAPED = re.compile(rb"(?:[^%{}]|%(?:25|7B|7D))+", re.DOTALL)
NO_TTL = "the counter has no TTL; the next hit re-anchors its window"
_UNESCAPE = {b"%25": b"%", b"%7B": b"{", b"%7D": b"}"}


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


def _check_name(name: object) -> str:
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
    return keys.key(PREFIX, _check_name(name), algorithm, limit, window_ms, tagged)


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
    return f"{PREFIX}:{'*' if name is None else _check_name(name) + ':*'}"


def gcra_interval_us(limit: int, window_ms: int) -> int:
    """GCRA emission interval: ``window / limit`` rounded UP to a whole microsecond.

    Integer arithmetic keeps burst = limit exact; the sustained rate is at most
    one unit per microsecond slower than configured.
    """
    return -(-window_ms * 1000 // limit)


class RateLimiter:
    """``limit`` units per ``window`` seconds per identity, by one algorithm."""

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
        self.name = _check_name(name)
        self.limit = limit
        self.window_ms = max(1, round(window * 1000))
        self.algorithm = algorithm
        limiter_key(name, algorithm, limit, self.window_ms, "x")  # validates the configuration

    def key_for(self, identity: KeyPart) -> str | bytes:
        """The Redis key of ``identity`` under this limiter."""
        return limiter_key(self.name, self.algorithm, self.limit, self.window_ms, identity)

    def hit(self, identity: KeyPart, cost: int = 1) -> Decision:
        """Spend ``cost`` units if they fit; one atomic script call either way."""
        key = self.key_for(identity)
        if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= self.limit:
            raise ValueError(f"{key!r}: cost must be an int in 1..{self.limit}, got {cost!r}")
        algo, limit = self.algorithm, self.limit
        if algo == "fixed":
            args: list[Any] = [limit, self.window_ms, cost]
        elif algo == "sliding":
            args = [limit, self.window_ms, cost, secrets.token_hex(8)]
        else:
            args = [limit, gcra_interval_us(limit, self.window_ms), cost]
        try:
            reply = _SCRIPTS[algo](self.client, keys=[key], args=args)
        except ResponseError as exc:
            raise RateLimitError(f"rate limit key {_shown(key)}: {exc}") from exc
        if algo == "fixed":
            allowed, count, pttl_ms = reply
            left_s = max(pttl_ms, 0) / 1000
            return Decision(
                bool(allowed), limit, limit - count, left_s, 0.0 if allowed else left_s, algo, key
            )
        allowed, figure, reset_us, retry_us = reply
        remaining = limit - figure if algo == "sliding" else figure
        return Decision(bool(allowed), limit, remaining, reset_us / 1e6, retry_us / 1e6, algo, key)

    def peek(self, identity: KeyPart) -> Decision:
        """Would a hit of cost 1 pass now? Read-only: spends nothing."""
        key = self.key_for(identity)
        state = limiter_state(self.client, key)
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

    def reset(self, identity: KeyPart) -> bool:
        """Forget the identity's usage (full budget again); True if there was any."""
        return bool(self.client.delete(self.key_for(identity)))


# -- read side (dashboard): GET, PTTL, ZCOUNT, ZRANGE, TIME, TYPE only ----------------------
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


def _shown(key: str | bytes) -> str:
    return display_key(key.encode("utf-8") if isinstance(key, str) else key)


def _ceil_ms(us: int) -> int:
    return max(0, -(-us // 1000))


def _server_now_us(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def limiter_state(client: Any, key: bytes | str) -> dict[str, Any]:
    """What the dashboard shows for a limiter key it found: used, remaining, resets in.

    Raises ``ValueError`` (naming the key) when the key is not a limiter key.
    On a cluster, TIME comes from the node redis-py picks; clocks are assumed in sync.
    """
    parsed = parse_limiter_key(key)
    if parsed is None:
        raise ValueError(f"not a rate limit key ({scan_match_pattern()}): {_shown(key)}")
    ident = parsed.identity
    state = LimiterState(
        key=_shown(key),
        name=parsed.name,
        identity=_shown(ident),
        algorithm=parsed.algorithm,
        limit=parsed.limit,
        window_ms=parsed.window_ms,
        remaining=parsed.limit,
    )
    reader = {"fixed": _read_fixed, "sliding": _read_sliding, "gcra": _read_gcra}
    reader[parsed.algorithm](client, key, parsed, state)
    state.remaining = max(0, min(parsed.limit, parsed.limit - state.used))
    return asdict(state)


def _type_problem(kind: bytes | str, expected: str, state: LimiterState) -> bool:
    kind = kind.decode() if isinstance(kind, bytes) else kind
    state.exists = kind != "none"
    if state.exists and kind != expected:
        state.problem = f"holds a {kind}, a {state.algorithm} limiter keeps a {expected}"
    return not state.exists or state.problem is not None


def _read_fixed(client: Any, key: Any, parsed: LimiterKey, state: LimiterState) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.type(key).get(key).pttl(key)
    kind, value, pttl = pipe.execute(raise_on_error=False)
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


def _read_sliding(client: Any, key: Any, parsed: LimiterKey, state: LimiterState) -> None:
    now = _server_now_us(client)
    window_us = parsed.window_ms * 1000
    live = f"({now - window_us}"  # entries scored after now - window count (as in the script)
    pipe = client.pipeline(transaction=False)
    pipe.type(key).zcount(key, live, "+inf")
    pipe.zrange(key, "+inf", live, desc=True, byscore=True, offset=0, num=1, withscores=True)
    kind, count, newest = pipe.execute(raise_on_error=False)
    if _type_problem(kind, "zset", state):
        return
    state.used = int(count)
    if newest:
        state.resets_in_ms = _ceil_ms(int(newest[0][1]) + window_us - now)
    state.blocked = state.used >= parsed.limit
    if state.blocked:  # the (used - limit + 1)-th oldest live entry must leave first
        nth = state.used - parsed.limit
        row = client.zrange(key, live, "+inf", byscore=True, offset=nth, num=1, withscores=True)
        state.retry_in_ms = _ceil_ms(int(row[0][1]) + window_us - now) if row else 0


def _read_gcra(client: Any, key: Any, parsed: LimiterKey, state: LimiterState) -> None:
    now = _server_now_us(client)
    pipe = client.pipeline(transaction=False)
    pipe.type(key).get(key)
    kind, value = pipe.execute(raise_on_error=False)
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
