"""Leaderboards over one sorted set: highest score first, 1-based ranks, bounded reads.

Key layout:

================================  ==========  ==========================================
key                               type        content
================================  ==========  ==========================================
``leaderboard:<name>``            sorted set  member -> score (an all-time board)
``leaderboard:<name>:<period>``   sorted set  the same for one period (e.g. ``2024-06-01``),
                                              with a TTL set when the board is created
================================  ==========  ==========================================

Every operation touches one key, so boards need no hash tag in a cluster. Ties are
ordered the way Redis orders equal scores in ZREVRANGE/ZREVRANK (member bytes,
descending), so ``rank()`` always agrees with the position in ``top()``/``page()``;
``rank(member, shared=True)`` gives competition ranking (1, 2, 2, 4) instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError, ResponseError

from dashboard.patterns.keys import KeyPart, key
from dashboard.patterns.runtime import Batch, Script, Steps, blocking, cmd
from dashboard.patterns.scripts import load

PREFIX = "leaderboard"
MAX_READ = 1000  # the most entries one read returns: keeps every ZREVRANGE bounded
_AROUND = load("leaderboard_around")

Member = str | bytes


def _member(value: bytes | str) -> Member:
    """Members come back as bytes; give text where it is text, bytes where it is not."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


@dataclass(frozen=True)
class Entry:
    rank: int
    member: Member
    score: float


def _entries(rows: list[tuple[Any, float]], first_rank: int) -> list[Entry]:
    return [Entry(first_rank + i, _member(m), float(s)) for i, (m, s) in enumerate(rows)]


def _bounded(n: int, what: str) -> int:
    if not isinstance(n, int) or n < 1 or n > MAX_READ:
        raise ValueError(f"{what} must be an int between 1 and {MAX_READ}, got {n!r}")
    return n


class LeaderboardCore:
    """One board; ``period`` and ``ttl`` (seconds) make a self-expiring periodic board."""

    default_sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(
        self,
        client: Any,
        name: KeyPart,
        period: KeyPart | None = None,
        ttl: float | None = None,
        prefix: KeyPart = PREFIX,
    ) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError(f"leaderboard TTL must be positive, got {ttl!r}")
        self.client = client
        self.key = key(prefix, name) if period is None else key(prefix, name, period)
        self.ttl_ms = int(ttl * 1000) if ttl else None
        self.sleep = self.default_sleep

    @classmethod
    def daily(
        cls,
        client: Any,
        name: KeyPart,
        keep_days: float = 7,
        clock: Callable[[], float] = time.time,
    ) -> Any:
        """Today's board (UTC date as period), kept ``keep_days`` after its first write."""
        period = time.strftime("%Y-%m-%d", time.gmtime(clock()))
        return cls(client, name, period=period, ttl=(1 + keep_days) * 86400)

    def _write(self, command: str, *args: Any, **kwargs: Any) -> Steps:
        """Run one write; a periodic board gets its TTL in the same transaction.

        PEXPIRE NX sets the TTL only when the key has none, so the first write of the
        period fixes when the board goes away and later writes do not push it back.
        """
        if self.ttl_ms is None:
            return (yield cmd(command, self.key, *args, **kwargs))
        ttl = cmd("pexpire", self.key, self.ttl_ms, nx=True)
        replies = yield Batch([cmd(command, self.key, *args, **kwargs), ttl], transaction=True)
        return replies[0]

    def _add(self, member: Member, score: float, keep_best: bool = False) -> Steps:
        """Set ``member``'s score (or only raise it with ``keep_best``); True if new."""
        return bool((yield from self._write("zadd", {member: score}, gt=keep_best)))

    def _increment(self, member: Member, by: float = 1) -> Steps:
        """Add ``by`` to the score (a new member starts at 0); returns the new score."""
        return float((yield from self._write("zincrby", by, member)))

    def _remove(self, *members: Member) -> Steps:
        """Remove members; returns how many were on the board."""
        if not members:
            return 0
        return (yield cmd("zrem", self.key, *members))

    def _size(self) -> Steps:
        """How many members the board has."""
        return (yield cmd("zcard", self.key))

    def _score(self, member: Member) -> Steps:
        """The member's score, None if absent."""
        value = yield cmd("zscore", self.key, member)
        return None if value is None else float(value)

    def _rank(self, member: Member, shared: bool = False) -> Steps:
        """1-based rank, highest score first; None if absent.

        ``shared=True`` ranks equal scores alike (1 + members with a higher score).
        """
        if not shared:
            position = yield cmd("zrevrank", self.key, member)
            return None if position is None else position + 1
        value = yield cmd("zscore", self.key, member)
        if value is None:
            return None
        return (yield cmd("zcount", self.key, f"({value!r}", "+inf")) + 1

    def _top(self, n: int = 10) -> Steps:
        """The ``n`` best entries."""
        rows = yield cmd("zrevrange", self.key, 0, _bounded(n, "n") - 1, withscores=True)
        return _entries(rows, 1)

    def _page(self, page: int, size: int = 20) -> Steps:
        """Page ``page`` (1-based) of ``size`` entries; past the end gives []."""
        if not isinstance(page, int) or page < 1:
            raise ValueError(f"page numbers start at 1, got {page!r} for {self.key!r}")
        start = (page - 1) * _bounded(size, "size")
        rows = yield cmd("zrevrange", self.key, start, start + size - 1, withscores=True)
        return _entries(rows, start + 1)

    def _around(self, member: Member, n: int = 5) -> Steps:
        """Up to ``n`` entries above and below ``member`` (and itself); [] if absent.

        One read-only script reads the rank and the window at the same instant, so the
        member is always in the window at its rank (clamped at the top). Redis < 7 has
        no EVALSHA_RO: the same script then runs with EVALSHA (it writes nothing).
        """
        _bounded(2 * n + 1, "2 * n + 1")
        call = Script(_AROUND, [self.key], [member, n], readonly=True)
        try:
            reply = yield call
        except ResponseError as exc:
            if "unknown command" not in str(exc).lower():
                raise
            reply = yield call._replace(readonly=False)
        if not reply:
            return []
        start, flat = int(reply[0]), reply[1:]
        rows = [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]
        return _entries(rows, start + 1)


class Leaderboard(LeaderboardCore):
    """One board, blocking calls (the asyncio twin: ``aio.AsyncLeaderboard``)."""

    add = blocking(LeaderboardCore._add)
    increment = blocking(LeaderboardCore._increment)
    remove = blocking(LeaderboardCore._remove)
    size = blocking(LeaderboardCore._size)
    score = blocking(LeaderboardCore._score)
    rank = blocking(LeaderboardCore._rank)
    top = blocking(LeaderboardCore._top)
    page = blocking(LeaderboardCore._page)
    around = blocking(LeaderboardCore._around)


# --- read side (ZCARD, PTTL, ZREVRANGE, ZRANGE, OBJECT ENCODING: all read-only) -----------


@dataclass(frozen=True)
class LeaderboardState:
    key: str
    size: int
    ttl_ms: int
    top: list[Entry]
    lowest_score: float | None
    encoding: str | None


def leaderboard_state(client: Any, key: str | bytes, top: int = 10) -> LeaderboardState | None:
    """Live state of a board the dashboard found; None if the key does not exist."""
    kind = client.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "none":
        return None
    if kind != "zset":
        raise ValueError(f"{key!r} is a {kind}, not a leaderboard sorted set")
    pipe = client.pipeline(transaction=False)
    pipe.zcard(key)
    pipe.pttl(key)
    pipe.zrevrange(key, 0, _bounded(top, "top") - 1, withscores=True)
    pipe.zrange(key, 0, 0, withscores=True)
    size, ttl_ms, rows, lowest = pipe.execute()
    try:
        encoding = client.object("encoding", key)
    except RedisError:  # fakeredis and ACL-restricted users have no OBJECT: degrade
        encoding = None
    text_key = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else key
    return LeaderboardState(
        key=text_key,
        size=size,
        ttl_ms=ttl_ms,
        top=_entries(rows, 1),
        lowest_score=float(lowest[0][1]) if lowest else None,
        encoding=encoding.decode() if isinstance(encoding, bytes) else encoding,
    )
