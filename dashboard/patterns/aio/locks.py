"""Locks on ``redis.asyncio``: the async shell over :mod:`dashboard.patterns.lockcore`."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from dashboard.patterns.lockcore import LockCore, Resource
from dashboard.patterns.locks import LockManager, lock_state_steps
from dashboard.patterns.runtime import arun, awaiting


class AsyncLock(LockCore):
    """:class:`dashboard.patterns.locks.Lock` for asyncio: the same keys, fences,
    scripts and errors; every method that talks to Redis is awaited, and waiting for
    a held lock sleeps with ``asyncio.sleep`` (other tasks keep running)."""

    default_sleep = staticmethod(asyncio.sleep)

    try_acquire = awaiting(LockCore._try_acquire)
    acquire = awaiting(LockCore._acquire)
    release = awaiting(LockCore._release)
    extend = awaiting(LockCore._extend)
    locked = awaiting(LockCore._locked)
    owned = awaiting(LockCore._owned)

    async def __aenter__(self) -> AsyncLock:
        if await self.acquire() is None:
            raise self._timed_out()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()  # LockNotOwnedError here: the protected work ran unprotected


class AsyncLockManager(LockManager):
    """Makes :class:`AsyncLock` objects sharing one client and default settings."""

    lock_class = AsyncLock

    async def state(self, resource: Resource) -> dict[str, Any]:  # type: ignore[override]
        """The read side for ``resource`` (see :func:`dashboard.patterns.locks.lock_state`)."""
        return await arun(lock_state_steps(resource), self.client)
