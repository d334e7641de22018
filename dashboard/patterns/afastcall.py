"""The asyncio half of :mod:`dashboard.patterns.fastcall`: one script call on a
borrowed ``redis.asyncio`` connection, written and read without the per-command
wrapping that costs more than the call itself.

Why: redis.asyncio (8.x) packs every command in Python, sends it inside
``asyncio.wait_for`` (a new Task per command, because a socket timeout is set by
default), and arms a fresh timer for every read. On a small script that is more
client time than the whole round trip needs. Here:

* the command is packed by hiredis in C (the bytes the blocking client sends) and
  handed to the transport, which writes it at once; only a write the kernel did not
  take in full waits for the buffer to drain, within the socket timeout;
* the reply is read from the connection's own stream into its own hiredis reader
  (push messages go to the parser's handler, as redis-py does);
* the read timeout (``socket_timeout``) is kept by :class:`_Watch`: reads whose
  deadlines fall in the same slot (an eighth of the timeout) share one timer, so a
  read times out at most an eighth of its timeout late, and a call arms no timer
  of its own.

Errors are redis-py's: ``ConnectionError`` for a lost connection, ``TimeoutError``
for a timeout, the parsed ``ResponseError`` for an error reply. A connection whose
configuration this path does not reproduce (another parser or packer, health
checks, a subclass that packs differently) uses its own
``send_command`` / ``read_response``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import HIREDIS_AVAILABLE

try:  # private to redis-py: without them (another version), connections use their own path
    from hiredis import pack_command as hiredis_pack
    from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
except ImportError:  # pragma: no cover - hiredis is a dependency
    hiredis_pack = NOT_ENOUGH_DATA = _AsyncHiredisParser = None

_CLOSED = "Connection closed by server."
_UTF8 = ("utf-8", "utf8")
_BASE_PACK = Connection.pack_command


class _Watch:
    """Read timeouts of one event loop, one timer per slot instead of one per read.

    A read joins the slot its deadline falls in (slots are an eighth of the timeout
    wide); when the slot's timer fires, every read still in it is cancelled and
    told it timed out. Joining and leaving a slot is a dict insert and delete.
    """

    __slots__ = ("slots",)

    def __init__(self) -> None:
        self.slots: dict[tuple[float, int], dict[asyncio.Task[Any], bool]] = {}

    def join(
        self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], timeout: float
    ) -> dict[asyncio.Task[Any], bool]:
        width = max(timeout / 8, 0.001)
        index = int((loop.time() + timeout) / width) + 1
        waiting = self.slots.get((width, index))
        if waiting is None:
            waiting = self.slots[width, index] = {}
            loop.call_at(index * width, self._fire, (width, index))
        waiting[task] = False
        return waiting

    def _fire(self, slot: tuple[float, int]) -> None:
        waiting = self.slots.pop(slot)
        for task in waiting:
            waiting[task] = True
            task.cancel()


_watches: weakref.WeakKeyDictionary[Any, _Watch] = weakref.WeakKeyDictionary()
_last: tuple[Callable[[], Any], _Watch] = (lambda: None, _Watch())


def _watch(loop: asyncio.AbstractEventLoop) -> _Watch:
    """The loop's watch (the last one asked for is kept at hand: one loop is usual)."""
    global _last
    seen, watch = _last
    if seen() is not loop:
        watch = _watches.get(loop) or _watches.setdefault(loop, _Watch())
        _last = (weakref.ref(loop), watch)
    return watch


def direct(conn: Any) -> bool:
    """True when :func:`exchange` reproduces what ``conn`` itself would send and read."""
    encoder = conn.encoder
    return (
        hiredis_pack is not None
        and HIREDIS_AVAILABLE
        and type(conn._parser) is _AsyncHiredisParser
        and type(conn).pack_command is _BASE_PACK
        and not conn.health_check_interval
        and encoder.encoding.lower() in _UTF8
        and encoder.encoding_errors == "strict"
    )


async def exchange(conn: Any, command: Sequence[Any]) -> Any:
    """Send one command on a connected ``conn`` (see :func:`direct`) and read its reply."""
    writer = conn._writer
    writer.write(hiredis_pack(command))
    if writer.transport.get_write_buffer_size():  # the kernel did not take it all
        await _drain(conn, writer)
    parser = conn._parser
    reader = parser._reader
    push = getattr(parser, "_hiredis_PushNotificationType", None)
    reply = reader.gets()
    while True:
        if reply is NOT_ENOUGH_DATA:
            reader.feed(await _read(conn, parser))
        elif push is not None and isinstance(reply, push):
            await parser.handle_push_response(reply)
        else:
            break
        reply = reader.gets()
    if isinstance(reply, ResponseError | RedisConnectionError):
        raise reply
    if type(reply) is list and reply and isinstance(reply[0], RedisConnectionError):
        raise reply[0]
    return reply


async def _drain(conn: Any, writer: Any) -> None:
    try:
        if conn.socket_timeout:
            await asyncio.wait_for(writer.drain(), conn.socket_timeout)
        else:
            await writer.drain()
    except TimeoutError:
        raise RedisTimeoutError("Timeout writing to socket") from None
    except OSError as exc:
        raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc


async def _read(conn: Any, parser: Any) -> bytes:
    if not parser._connected:
        raise RedisConnectionError(_CLOSED)
    timeout = conn.socket_timeout
    task = asyncio.current_task() if timeout else None
    try:
        if task is None:
            data = await parser._stream.read(parser._read_size)
        else:
            cancelling = task.cancelling()
            loop = task.get_loop()
            waiting = _watch(loop).join(loop, task, timeout)
            try:
                data = await parser._stream.read(parser._read_size)
            except asyncio.CancelledError:
                if waiting.get(task) and task.uncancel() <= cancelling:
                    raise TimeoutError from None
                raise
            finally:
                waiting.pop(task, None)
    except TimeoutError:
        raise RedisTimeoutError(f"Timeout reading from {conn._host_error()}") from None
    except OSError as exc:
        raise RedisConnectionError(f"Error while reading from {conn._host_error()}: {exc}") from exc
    if not data:
        raise RedisConnectionError(_CLOSED)
    return data


async def script_once(conn: Any, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """EVALSHA on ``conn`` (EVAL after NOSCRIPT, same connection); one reply read."""
    writer = conn._writer
    if writer is None or writer.transport.is_closing() or conn._reader.at_eof():
        await conn.disconnect(nowait=True)  # closed while idle in the pool: nothing sent yet
        await conn.connect()
    if not direct(conn):
        await conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return await conn.read_response()
        except NoScriptError:
            await conn.send_command("EVAL", script.script, len(keys), *keys, *args)
            return await conn.read_response()
    try:
        return await exchange(conn, ("EVALSHA", script.sha, len(keys), *keys, *args))
    except NoScriptError:
        return await exchange(conn, ("EVAL", script.script, len(keys), *keys, *args))
