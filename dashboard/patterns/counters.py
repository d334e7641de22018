"""Unique counts with HyperLogLog: ~12 KB per key whatever the count, 0.81% standard error.

Key layout (``prefix`` defaults to ``hll``):

==========================  ======  ==================================================
key                         type    content
==========================  ======  ==================================================
``hll:{<name>}``            string  HyperLogLog of an unbounded (all-time) count
``hll:{<name>}:<period>``   string  one period (e.g. ``2024-06-01``); optional TTL
==========================  ======  ==================================================

Every key of one counter carries the hash tag ``{<name>}``, so all its periods live in
one cluster slot and PFCOUNT/PFMERGE over several of them work in Redis Cluster
(unions across *different* counters are refused for the same reason).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dashboard.patterns.keys import KeyPart, key, tag
from dashboard.patterns.runtime import Batch, Steps, blocking, cmd

PREFIX = "hll"
STANDARD_ERROR = 0.0081  # 1.04 / sqrt(16384 registers)
HEADER_BYTES = 16  # "HYLL", encoding byte, 3 unused, 8-byte cached cardinality
_ENCODINGS = {0: "dense", 1: "sparse"}


def daily_periods(last_day: dt.date, days: int) -> list[str]:
    """ISO dates of ``days`` days ending with ``last_day``: the periods of a weekly count."""
    if days < 1:
        raise ValueError(f"need at least one day, got {days}")
    return [(last_day - dt.timedelta(days=i)).isoformat() for i in reversed(range(days))]


class UniqueCounterCore:
    """Approximate distinct counts per period, mergeable into longer periods."""

    default_sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(
        self, client: Any, name: KeyPart, ttl: float | None = None, prefix: KeyPart = PREFIX
    ) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError(f"counter TTL must be positive, got {ttl!r}")
        self.client = client
        self.name = name
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000) if ttl else None
        self._tagged = tag(name)  # refuses names with braces: they would break the slot
        self.sleep = self.default_sleep

    def key(self, period: KeyPart | None = None) -> str | bytes:
        if period is None:
            return key(self.prefix, self._tagged)
        return key(self.prefix, self._tagged, period)

    def _add(self, *items: Any, period: KeyPart | None = None) -> Steps:
        """Count ``items``; True if the estimate may have changed (a register moved).

        With a TTL, the first write of a key sets it (PEXPIRE NX in the same
        transaction), so the key is never left without one and later adds do not
        extend it.
        """
        if not items:
            raise ValueError(f"add() needs at least one item for {self.key(period)!r}")
        name = self.key(period)
        if self.ttl_ms is None:
            return bool((yield cmd("pfadd", name, *items)))
        ttl = cmd("pexpire", name, self.ttl_ms, nx=True)
        replies = yield Batch([cmd("pfadd", name, *items), ttl], transaction=True)
        return bool(replies[0])

    def _count(self, period: KeyPart | None = None) -> Steps:
        """Estimated distinct items in one key (0 for a key that does not exist)."""
        return (yield cmd("pfcount", self.key(period)))

    def _count_union(self, periods: Iterable[KeyPart | None]) -> Steps:
        """Estimated distinct items across periods, without writing anything."""
        return (yield cmd("pfcount", *self._keys(periods)))

    def _merge(
        self, into: KeyPart, periods: Iterable[KeyPart | None], replace: bool = True
    ) -> Steps:
        """Store the union of ``periods`` in period ``into``; returns its estimate.

        PFMERGE also folds in what the destination already holds, so by default the
        destination is deleted first (same transaction): re-running a weekly merge
        after a day was corrected gives the new union, not old plus new.
        """
        sources = self._keys(periods)
        dest = self.key(into)
        ops = [cmd("delete", dest)] if replace else []
        ops.append(cmd("pfmerge", dest, *sources))
        if self.ttl_ms is not None:
            ops.append(cmd("pexpire", dest, self.ttl_ms, nx=not replace))
        ops.append(cmd("pfcount", dest))
        return (yield Batch(ops, transaction=True))[-1]

    def _keys(self, periods: Iterable[KeyPart | None]) -> list[str | bytes]:
        names = [self.key(p) for p in periods]
        if not names:
            raise ValueError(f"no periods given for counter {self.key()!r}")
        return names


class UniqueCounter(UniqueCounterCore):
    """Unique counts, blocking calls (the asyncio twin: ``aio.AsyncUniqueCounter``)."""

    add = blocking(UniqueCounterCore._add)
    count = blocking(UniqueCounterCore._count)
    count_union = blocking(UniqueCounterCore._count_union)
    merge = blocking(UniqueCounterCore._merge)


# --- read side (TYPE, STRLEN, GETRANGE, PFCOUNT: all read-only) ----------------------------


@dataclass(frozen=True)
class HllState:
    key: str
    count: int
    bytes: int | None
    encoding: str | None
    ttl_ms: int
    standard_error: float = STANDARD_ERROR


def hll_state(client: Any, key: str | bytes) -> HllState | None:
    """Live state of a HyperLogLog; None if the key does not exist.

    The encoding comes from the HLL header (byte 4: 0 dense, 1 sparse). fakeredis
    emulates HLLs with sets: then bytes and encoding are None.
    """
    kind = client.type(key)
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if kind == "none":
        return None
    text_key = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else key
    if kind == "set":  # fakeredis's stand-in for an HLL; a real set makes PFCOUNT fail
        return HllState(text_key, client.pfcount(key), None, None, client.pttl(key))
    if kind != "string":
        raise ValueError(f"{text_key!r} is a {kind}, not a HyperLogLog")
    pipe = client.pipeline(transaction=False)
    pipe.strlen(key)
    pipe.getrange(key, 0, HEADER_BYTES - 1)
    pipe.pttl(key)
    size, header, ttl_ms = pipe.execute()
    if len(header) < HEADER_BYTES or header[:4] != b"HYLL":
        raise ValueError(f"{text_key!r} is a string but not a HyperLogLog (no HYLL header)")
    return HllState(
        key=text_key,
        count=client.pfcount(key),
        bytes=size,
        encoding=_ENCODINGS.get(header[4]),
        ttl_ms=ttl_ms,
    )
