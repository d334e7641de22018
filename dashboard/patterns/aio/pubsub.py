"""Pub/sub on ``redis.asyncio``: a subscriber task running the same core loop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from dashboard.patterns.aio.task import BackgroundTask
from dashboard.patterns.pubsub import decode_payload, publish_payload
from dashboard.patterns.pubsub_core import SubscriberCore
from dashboard.patterns.runtime import arun

__all__ = ["AsyncSubscriber", "apublish", "decode_payload"]


async def apublish(client: Any, channel: str | bytes, payload: Any) -> int:
    """:func:`dashboard.patterns.pubsub.publish` on a ``redis.asyncio`` client."""
    return int(await client.publish(channel, publish_payload(payload)))


class AsyncSubscriber(BackgroundTask, SubscriberCore):
    """:class:`dashboard.patterns.pubsub.Subscriber` as an asyncio task: the same loop,
    reconnects (the factory is called on every one; it may be ``async``), counters
    and at-most-once contract. The handler may be a coroutine function."""

    def __init__(self, source: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(source, *args, **kwargs)
        self._ready = asyncio.Event()
        self.ready = self._ready
        self._init_task()

    async def wait_subscribed(self, timeout: float | None = None) -> bool:
        """Wait until every channel and pattern is confirmed by the server."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _close_pubsub(self, pubsub: Any) -> None:
        await pubsub.aclose()

    async def _main(self) -> None:
        try:
            await arun(self._loop(), None, self._pause)
        finally:
            current, self._current = self._current, None
            if current is not None:
                self._restore()
                with contextlib.suppress(Exception):
                    await current.aclose()
            self._ready.clear()
