"""The pattern layer on ``redis.asyncio``: the async twin of every pattern.

Each class here runs the same core as its blocking counterpart in
``dashboard.patterns`` (same keys, Lua scripts, decisions, errors); only the I/O
is awaited. See docs/patterns/*.md, where each pattern documents both side by side.
"""

from dashboard.patterns.aio.cache import AsyncCache
from dashboard.patterns.aio.counters import AsyncUniqueCounter
from dashboard.patterns.aio.leaderboard import AsyncLeaderboard
from dashboard.patterns.aio.locks import AsyncLock, AsyncLockManager
from dashboard.patterns.aio.pubsub import AsyncSubscriber, apublish
from dashboard.patterns.aio.ratelimit import AsyncRateLimiter
from dashboard.patterns.aio.sessions import AsyncSessionStore
from dashboard.patterns.aio.streams import AsyncWorker, aadd, aensure_group

__all__ = [
    "AsyncCache",
    "AsyncLeaderboard",
    "AsyncLock",
    "AsyncLockManager",
    "AsyncRateLimiter",
    "AsyncSessionStore",
    "AsyncSubscriber",
    "AsyncUniqueCounter",
    "AsyncWorker",
    "aadd",
    "aensure_group",
    "apublish",
]
