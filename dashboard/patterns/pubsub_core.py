"""Pub/sub, the subscriber's core: one loop shared by the thread and the asyncio task.

The loop is written as core steps (:mod:`dashboard.patterns.runtime`): every call
on the pub/sub connection, the factory and the handler is a ``Call`` that the
blocking shell makes directly and the asyncio shell awaits.

The subscriber owns its connection's retries. redis-py (8.x) retries a pub/sub read
or write on its own and resubscribes on the *same* address, so after a Sentinel
failover where the old primary still answers, a subscriber would stay there. Once
subscribed, the connection's retry is turned off (and restored before the
connection goes back to the pool): a lost connection reaches this loop, which
closes it, waits, and calls the factory again for every reconnect.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from dashboard.keyid import display_key
from dashboard.patterns.runtime import Call, Sleep, Steps

LOST_CONNECTION = (RedisConnectionError, RedisTimeoutError, OSError)
_CONFIRMATIONS = {"subscribe": "channel", "psubscribe": "pattern"}


def display_text(value: bytes | str) -> str:
    """A channel name as shown (escaped when not UTF-8)."""
    return display_key(value, limit=None) if isinstance(value, bytes) else value


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def decode_payload(data: bytes | str) -> Any:
    """JSON when it parses; otherwise the text, or the bytes when not UTF-8."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # also UnicodeDecodeError; RecursionError: [[[[...
        if isinstance(data, str):
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return bytes(data)


@dataclass(frozen=True)
class Message:
    """One received message: ``data`` is the decoded payload, ``raw`` what Redis sent."""

    channel: str
    data: Any
    raw: bytes | str
    pattern: str | None = None


def own_retries(pubsub: Any) -> Callable[[], None]:
    """Turn off redis-py's retry on ``pubsub``'s connection; returns the undo."""
    conn = pubsub.connection
    if conn is None or not hasattr(conn, "retry"):
        return lambda: None
    original = conn.retry
    no_retry = AsyncRetry if isinstance(original, AsyncRetry) else Retry
    conn.retry = no_retry(NoBackoff(), 0)

    def restore() -> None:
        conn.retry = original

    return restore


class SubscriberCore:
    """Runs a handler for every message on ``channels``/``patterns``.

    ``source`` is a client or a zero-argument factory returning one (called on each
    connect and EVERY reconnect, e.g. to ask Sentinel for the current primary). A
    handler exception is counted and recorded, never fatal. ``ping_interval`` (s)
    detects a silent connection: no reply at all within two intervals counts as a
    lost connection. Reconnects wait a capped exponential backoff, reset once
    subscribed again.
    """

    def __init__(
        self,
        source: Any,
        channels: Iterable[str | bytes] = (),
        patterns: Iterable[str | bytes] = (),
        handler: Callable[[Any], Any] | None = None,
        *,
        poll_interval: float = 0.1,
        backoff_base: float = 0.05,
        backoff_max: float = 5.0,
        ping_interval: float | None = 30.0,
        sleep: Callable[[float], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "pubsub-subscriber",
        decode: Callable[[bytes | str], Any] | None = decode_payload,
    ) -> None:
        if handler is None:
            raise TypeError("Subscriber needs a handler")
        self.channels = list(channels)
        self.patterns = list(patterns)
        self._wanted = {("channel", _b(c)) for c in self.channels}
        self._wanted |= {("pattern", _b(p)) for p in self.patterns}
        if not self._wanted:
            raise ValueError("Subscriber needs at least one channel or pattern")
        self._factory: Callable[[], Any] = (lambda: source) if hasattr(source, "pubsub") else source
        self.handler = handler
        self.decode = decode  # None: Message.data is the raw payload (no JSON parse)
        self.poll_interval = poll_interval
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.ping_interval = ping_interval
        self._sleep = sleep
        self._clock = clock
        self.name = name
        self.received = 0
        self.handler_errors = 0
        self.reconnects = 0
        self.disconnects = 0
        self.connects = 0  # factory calls that gave a connection
        self.last_error: str | None = None
        self.error: BaseException | None = None  # what ended the loop, if not stop()
        self._confirmed: set[tuple[str, bytes]] = set()
        self._lost = False
        self._delay = backoff_base
        self._stopping = False
        self._current: Any = None  # the pub/sub object in use (closed by the shell at exit)
        self._restore: Callable[[], None] = lambda: None

    @property
    def subscribed(self) -> bool:
        return self._ready.is_set()

    def stats(self) -> dict[str, Any]:
        """Counters as plain data (for a dashboard panel or a log line)."""
        return {
            "channels": [display_text(c) for c in self.channels],
            "patterns": [display_text(p) for p in self.patterns],
            "subscribed": self.subscribed,
            "alive": self.alive,
            "received": self.received,
            "handler_errors": self.handler_errors,
            "reconnects": self.reconnects,
            "disconnects": self.disconnects,
            "connects": self.connects,
            "last_error": self.last_error,
            "error": None if self.error is None else str(self.error),
        }

    # --- the loop (core steps) -------------------------------------------------------

    def _loop(self) -> Steps:
        self._delay = self.backoff_base
        while not self._stopping:
            try:
                client = yield Call(self._factory)
                self._current = pubsub = client.pubsub()
                self._confirmed.clear()
                if self.channels:
                    yield Call(pubsub.subscribe, tuple(self.channels))
                if self.patterns:
                    yield Call(pubsub.psubscribe, tuple(self.patterns))
                self.connects += 1
                self._restore = own_retries(pubsub)
                yield from self._listen(pubsub)
            except LOST_CONNECTION as exc:
                self._connection_lost(exc)
                yield from self._drop()
                yield Sleep(self._delay)
                self._delay = min(self._delay * 2, self.backoff_max)
                continue
            except Exception as exc:  # refused by ACL or the gate: retrying cannot help
                self.error = exc
                self.last_error = f"{type(exc).__name__}: {exc}"
                yield from self._drop()
                return
            yield from self._drop()

    def _drop(self) -> Steps:
        """Close the current pub/sub connection (errors ignored: it may be dead)."""
        self._ready.clear()
        pubsub, self._current = self._current, None
        if pubsub is None:
            return
        self._restore()
        self._restore = lambda: None
        try:
            yield Call(self._close_pubsub, (pubsub,))
        except Exception as exc:  # a dead connection may fail to close; it is gone anyway
            self.last_error = self.last_error or f"{type(exc).__name__}: {exc}"

    def _close_pubsub(self, pubsub: Any) -> Any:
        return pubsub.close()

    def _listen(self, pubsub: Any) -> Steps:
        last_heard = last_ping = self._clock()
        while not self._stopping:
            message = yield Call(pubsub.get_message, (False, self.poll_interval))
            now = self._clock()
            if message is not None:
                last_heard = now
                yield from self._dispatch(message)
            if self.ping_interval is None:
                continue
            if now - last_heard > 2 * self.ping_interval:
                raise RedisTimeoutError(f"no reply from Redis for {now - last_heard:.1f}s")
            if now - last_ping >= self.ping_interval:
                yield Call(pubsub.ping)
                last_ping = now

    def _connection_lost(self, exc: BaseException) -> None:
        self.disconnects += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._lost = True
        self._ready.clear()

    def _dispatch(self, message: dict[str, Any]) -> Steps:
        kind = message["type"]
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind in _CONFIRMATIONS:
            self._confirm((_CONFIRMATIONS[kind], _b(message["channel"])))
        elif kind in ("message", "pmessage"):
            yield from self._deliver(message)

    def _confirm(self, key: tuple[str, bytes]) -> None:
        if key in self._confirmed:  # confirmed twice: the connection was re-made under us
            self._confirmed.clear()
            self._ready.clear()
            self.disconnects += 1
            self.last_error = "connection lost; redis-py reconnected and resubscribed"
            self._lost = True
        self._confirmed.add(key)
        if self._confirmed >= self._wanted and not self._ready.is_set():
            self._delay = self.backoff_base  # healthy again: the next outage starts small
            if self._lost:
                self.reconnects += 1
                self._lost = False
            self._ready.set()

    def _deliver(self, message: dict[str, Any]) -> Steps:
        raw = message["data"]
        pattern = message.get("pattern")
        channel = display_text(message["channel"])
        self.received += 1
        try:  # decoding is the handler's side: one odd payload is never fatal
            decoded = Message(
                channel=channel,
                data=raw if self.decode is None else self.decode(raw),
                raw=raw,
                pattern=None if pattern is None else display_text(pattern),
            )
            yield Call(self.handler, (decoded,))
        except Exception as exc:
            self.handler_errors += 1
            self.last_error = f"handler failed on {channel}: {type(exc).__name__}: {exc}"
