"""Streams on ``redis.asyncio``: producer helpers and a worker task over the same core."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any

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


class AsyncWorker(WorkerCore):
    """:class:`dashboard.patterns.streams.Worker` as an asyncio task: the same reads,
    reclaims, dead letters and at-least-once guarantee. The handler may be a coroutine
    function. Cancelling the task mid-batch loses nothing: an entry is acked only
    after its handler returned, so the rest stay pending (re-read by a consumer of
    the same name on start, or reclaimed by another after ``claim_idle_ms``)."""

    default_sleep = staticmethod(asyncio.sleep)

    run_once = awaiting(WorkerCore._run_once)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Process until :meth:`stop`; a lost connection is retried with backoff."""
        await arun(self._run(), self.client, self._pause)

    async def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def start(self) -> AsyncWorker:
        """Run as a task on the running loop; returns self."""
        if self._task is not None and not self._task.done():
            return self
        self._stop.clear()
        self._stopping = False
        name = f"stream-worker-{as_text(self.consumer)}"
        self._task = asyncio.get_running_loop().create_task(self._task_main(), name=name)
        return self

    async def _task_main(self) -> None:
        try:
            await self.run()
        except Exception as exc:
            self.error = exc
            self.last_error = f"{type(exc).__name__}: {exc}"

    async def stop(self, timeout: float | None = None) -> bool:
        """Finish the current batch, read nothing more; True once the task ended."""
        self._stopping = True
        self._stop.set()
        task = self._task
        if task is None or task is asyncio.current_task():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout)
        return task.done()

    def cancel(self) -> None:
        """Cancel the task now, even mid-batch (unacked entries stay pending)."""
        if self._task is not None:
            self._task.cancel()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> AsyncWorker:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
