"""What the asyncio subscriber and worker share: running their core loop as a task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any


class BackgroundTask:
    """``start()`` / ``await stop()`` / ``async with`` around ``self._main()``.

    ``stop`` asks the loop to end (``_stopping``, and the ``_stop`` event that cuts
    a backoff pause short), waits up to ``timeout`` and then cancels the task.
    """

    _sleep: Callable[[float], Awaitable[Any]] | None
    _stopping: bool
    name: str

    def _init_task(self) -> None:
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _main(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def start(self) -> Any:
        """Start the task on the running loop (once); returns self."""
        if self._task is not None and not self._task.done():
            return self
        self._stop.clear()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._main(), name=self.name)
        return self

    async def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the task to stop and wait for it; cancelled after ``timeout`` seconds."""
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

    def cancel(self) -> None:
        """Cancel the task now, even mid-batch or mid-handler."""
        if self._task is not None:
            self._task.cancel()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)  # stop() ends the pause

    async def __aenter__(self) -> Any:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
