"""One core, two I/O shells: how every pattern runs both blocking and on asyncio.

A pattern's logic is written once, as a generator that *yields* what it needs done
(a script call, a command, a pipeline, a pause, a call into user code) and receives
the reply (or has the error thrown in at the ``yield``). It never touches a socket.
:func:`run` drives such a generator on a ``redis.Redis`` with blocking calls;
:func:`arun` drives the very same generator on a ``redis.asyncio.Redis``, awaiting.
Key layouts, Lua scripts, argument packing, decisions and error mapping therefore
exist once; the sync and async classes only choose the driver
(:func:`blocking` / :func:`awaiting` build their methods from the core's steps).

::

    def _hit(self, identity):             # core (shared)
        reply = yield Script(_FIXED, [key], [limit, window], retry=False)
        return decode(reply)

    hit = blocking(_hit)                   # RateLimiter.hit(identity) -> Decision
    hit = awaiting(_hit)                   # await AsyncRateLimiter.hit(identity)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any, NamedTuple

from dashboard.patterns.scripts import LuaScript


class Script(NamedTuple):
    """Run a Lua script; ``retry`` says whether a lost reply may be answered by a resend;
    ``readonly`` runs it with EVALSHA_RO (the server refuses writes; replicas may run it)."""

    script: LuaScript
    keys: Sequence[Any]
    args: Sequence[Any]
    retry: bool = True
    readonly: bool = False


class Command(NamedTuple):
    """Call ``client.<name>(*args, **kwargs)`` (a redis-py command method)."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}


class Batch(NamedTuple):
    """Several commands/scripts in one pipeline (MULTI/EXEC when ``transaction``)."""

    ops: Sequence[Command | Script]
    transaction: bool = False
    raise_on_error: bool = True


class Sleep(NamedTuple):
    """Pause (``time.sleep`` or ``asyncio.sleep``, or the pattern's injected sleep)."""

    seconds: float


class Call(NamedTuple):
    """Call user code (a handler, a loader); the async shell awaits what it returns."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


Op = Script | Command | Batch | Sleep | Call
Steps = Generator[Op, Any, Any]


def cmd(name: str, *args: Any, **kwargs: Any) -> Command:
    """``Command`` with call syntax: ``yield cmd("zscore", key, member)``."""
    return Command(name, args, kwargs)


def _queue(pipe: Any, op: Command | Script) -> None:
    if type(op) is Script:
        op.script(pipe, op.keys, op.args)
    else:
        getattr(pipe, op.name)(*op.args, **op.kwargs)


def _do(op: Op, client: Any, sleep: Callable[[float], Any]) -> Any:
    kind = type(op)
    if kind is Script:
        if op.readonly:
            return op.script.call_ro(client, op.keys, op.args)
        return op.script.run(client, op.keys, op.args, op.retry)
    if kind is Command:
        return getattr(client, op.name)(*op.args, **op.kwargs)
    if kind is Batch:
        with client.pipeline(transaction=op.transaction) as pipe:
            for queued in op.ops:
                _queue(pipe, queued)
            return pipe.execute(raise_on_error=op.raise_on_error)
    if kind is Sleep:
        return sleep(op.seconds)
    value = op.fn(*op.args)
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if close is not None:
            close()  # no "never awaited" warning on top of the error
        raise TypeError(
            f"{op.fn!r} returned an awaitable: use the async twin (dashboard.patterns.aio)"
        )
    return value


def run(steps: Steps, client: Any, sleep: Callable[[float], Any] = time.sleep) -> Any:
    """Drive a core generator with blocking calls on ``client``; returns its result."""
    try:
        op = next(steps)
        while True:
            try:
                if type(op) is Script and not op.readonly:  # the hot path, without a hop
                    reply = op.script.run(client, op.keys, op.args, op.retry)
                else:
                    reply = _do(op, client, sleep)
            except Exception as exc:
                op = steps.throw(exc)
            else:
                op = steps.send(reply)
    except StopIteration as done:
        return done.value


async def _ado(op: Op, client: Any, sleep: Callable[[float], Any]) -> Any:
    kind = type(op)
    if kind is Script:
        if op.readonly:
            return await op.script.acall_ro(client, op.keys, op.args)
        return await op.script.arun(client, op.keys, op.args, op.retry)
    if kind is Command:
        return await getattr(client, op.name)(*op.args, **op.kwargs)
    if kind is Batch:
        async with client.pipeline(transaction=op.transaction) as pipe:
            for queued in op.ops:
                _queue(pipe, queued)
            return await pipe.execute(raise_on_error=op.raise_on_error)
    if kind is Sleep:
        return await sleep(op.seconds)
    value = op.fn(*op.args)
    return await value if inspect.isawaitable(value) else value


async def arun(steps: Steps, client: Any, sleep: Callable[[float], Any] = asyncio.sleep) -> Any:
    """Drive a core generator on a ``redis.asyncio`` client; returns its result.

    Cancellation (``CancelledError``) is not thrown into the core: it closes the
    generator (its ``finally`` blocks run) and propagates.
    """
    try:
        op = next(steps)
        while True:
            try:
                if type(op) is Script and not op.readonly:  # the hot path, without a hop
                    reply = await op.script.arun(client, op.keys, op.args, op.retry)
                else:
                    reply = await _ado(op, client, sleep)
            except Exception as exc:
                op = steps.throw(exc)
            else:
                op = steps.send(reply)
    except StopIteration as done:
        return done.value
    finally:
        steps.close()


def blocking(core: Callable[..., Steps]) -> Callable[..., Any]:
    """A blocking method from a core step method: ``self.client``, ``self.sleep``."""

    @functools.wraps(core)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return run(core(self, *args, **kwargs), self.client, self.sleep)

    method.__name__ = method.__qualname__ = core.__name__.lstrip("_")
    return method


def awaiting(core: Callable[..., Steps]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """An ``async def`` method from a core step method: ``self.client``, ``self.sleep``."""

    @functools.wraps(core)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await arun(core(self, *args, **kwargs), self.client, self.sleep)

    method.__name__ = method.__qualname__ = core.__name__.lstrip("_")
    return method
