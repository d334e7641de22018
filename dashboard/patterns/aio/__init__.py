"""The pattern layer on ``redis.asyncio``: the async twin of every pattern.

Each class here runs the same core as its blocking counterpart in
``dashboard.patterns`` (same keys, Lua scripts, decisions, errors); only the I/O
is awaited. See docs/patterns/*.md, where each pattern documents both side by side.
"""

from dashboard.patterns.aio.locks import AsyncLock, AsyncLockManager
from dashboard.patterns.aio.ratelimit import AsyncRateLimiter

__all__ = ["AsyncLock", "AsyncLockManager", "AsyncRateLimiter"]
