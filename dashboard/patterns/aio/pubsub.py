"""Pub/sub on ``redis.asyncio``: a subscriber task running the same core loop."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from dashboard.patterns.pubsub import decode_payload, publish_payload
from dashboard.patterns.pubsub_core import SubscriberCore
from dashboard.patterns.runtime import arun

__all__ = ["AsyncSubscriber", "apublish", "decode_payload"]


async def apublish(client: Any, channel: str | bytes, payload: Any) -> int:
    """:func:`dashboard.patterns.pubsub.publish` on a ``redis.asyncio`` client."""
    return int(await client.publish(channel, publish_payload(payload)))


class AsyncSubscriber(SubscriberCore):
    """:class:`dashboard.patterns.pubsub.Subscriber` as an asyncio task: the same loop,
    reconnects (the factory is called on every one; it may be ``async``), counters
    and at-most-once contract. The handler may be a coroutine function."""

    def __init__(self, source: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(source, *args, **kwargs)
        self._ready = asyncio.Event()
        self.ready = self._ready
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> AsyncSubscriber:
        """Start the task on the running loop (once); returns self."""
        if self._task is not None and not self._task.done():
            return self
        self._stop.clear()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        return self

    async def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the task to stop and wait for it (cancelled after ``timeout``)."""
        self._stopping = True
        self._stop.set()
        task = self._task
        if task is None or task is asyncio.current_task():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return task.done()

    async def wait_subscribed(self, timeout: float | None = None) -> bool:
        """Wait until every channel and pattern is confirmed by the server."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> AsyncSubscriber:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _close_pubsub(self, pubsub: Any) -> None:
        await pubsub.aclose()

    async def _run(self) -> None:
        try:
            await arun(self._loop(), None, self._pause)
        finally:
            current, self._current = self._current, None
            if current is not None:
                self._restore()
                with contextlib.suppress(Exception):
                    await current.aclose()
            self._ready.clear()

    async def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)  # stop() ends the backoff
