"""Rate limits on ``redis.asyncio``: the async shell over the same core and scripts."""

from __future__ import annotations

import asyncio

from dashboard.patterns.ratelimit import LimiterCore
from dashboard.patterns.runtime import awaiting


class AsyncRateLimiter(LimiterCore):
    """:class:`dashboard.patterns.ratelimit.RateLimiter` for asyncio: the same keys,
    scripts, decisions and errors; ``hit``, ``peek`` and ``reset`` are awaited."""

    default_sleep = staticmethod(asyncio.sleep)

    hit = awaiting(LimiterCore._hit)
    peek = awaiting(LimiterCore._peek)
    reset = awaiting(LimiterCore._reset)
