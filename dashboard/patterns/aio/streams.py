"""Streams on ``redis.asyncio``: producer helpers and a worker task over the same core."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from dashboard.patterns.aio.task import BackgroundTask
from dashboard.patterns.runtime import arun, awaiting
from dashboard.patterns.streams import add_steps, ensure_group_steps
from dashboard.patterns.streams_worker import WorkerCore, as_text


async def aadd(
    client: Any,
    stream: str | bytes,
    fields: Mapping[str | bytes, Any],
    maxlen: int | None = None,
    approximate: bool = True,
    entry_id: str = "*",
) -> str:
    """:func:`dashboard.patterns.streams.add` on a ``redis.asyncio`` client."""
    return await arun(add_steps(stream, fields, maxlen, approximate, entry_id), client)


async def aensure_group(
    client: Any, stream: str | bytes, group: str | bytes, start_id: str = "$", mkstream: bool = True
) -> bool:
    """:func:`dashboard.patterns.streams.ensure_group` on a ``redis.asyncio`` client."""
    return await arun(ensure_group_steps(stream, group, start_id, mkstream), client)


class AsyncWorker(BackgroundTask, WorkerCore):
    """:class:`dashboard.patterns.streams.Worker` as an asyncio task: the same reads,
    reclaims, dead letters and at-least-once guarantee. The handler may be a coroutine
    function. Cancelling the task mid-batch loses nothing: an entry is acked only
    after its handler returned, so the rest stay pending (re-read by a consumer of
    the same name on start, or reclaimed by another after ``claim_idle_ms``)."""

    default_sleep = staticmethod(asyncio.sleep)

    run_once = awaiting(WorkerCore._run_once)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = f"stream-worker-{as_text(self.consumer)}"
        self._init_task()

    async def run(self) -> None:
        """Process until :meth:`stop`; a lost connection is retried with backoff."""
        await arun(self._run(), self.client, self._pause)

    async def _main(self) -> None:
        try:
            await self.run()
        except Exception as exc:
            self.error = exc
            self.last_error = f"{type(exc).__name__}: {exc}"
