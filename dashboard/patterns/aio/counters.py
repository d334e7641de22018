"""HyperLogLog unique counts on ``redis.asyncio``: the async shell over the same core."""

from __future__ import annotations

import asyncio

from dashboard.patterns.counters import UniqueCounterCore
from dashboard.patterns.runtime import awaiting


class AsyncUniqueCounter(UniqueCounterCore):
    """:class:`dashboard.patterns.counters.UniqueCounter` for asyncio (same keys)."""

    default_sleep = staticmethod(asyncio.sleep)

    add = awaiting(UniqueCounterCore._add)
    count = awaiting(UniqueCounterCore._count)
    count_union = awaiting(UniqueCounterCore._count_union)
    merge = awaiting(UniqueCounterCore._merge)
