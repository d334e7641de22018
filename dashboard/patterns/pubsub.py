"""Pub/Sub: JSON messages and a subscriber that survives connection loss.

Delivery is **at-most-once**. Redis keeps no copy of a published message: a
subscriber that is disconnected (killed by ``CLIENT KILL TYPE pubsub``, dropped for
exceeding ``client-output-buffer-limit pubsub``, a restart or a failover) misses
everything published until it has subscribed again. :class:`Subscriber` reconnects
and resubscribes on its own, but it cannot get those messages back; use
:mod:`dashboard.patterns.streams` when a message must not be lost.

Key layout: none. Channels live outside the keyspace (and outside the db number);
name them like keys (``keys.key("orders", "created")`` -> ``orders:created``) so a
pattern subscription such as ``orders:*`` selects a family of channels.

Payloads are compact UTF-8 JSON; bytes are published as they are. A subscriber
decodes JSON and hands anything else over as ``str`` (valid UTF-8) or ``bytes``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dashboard.keyid import display_key
from dashboard.patterns.codecs import JSON

_LOST_CONNECTION = (RedisConnectionError, RedisTimeoutError, OSError)
_CONFIRMATIONS = {"subscribe": "channel", "psubscribe": "pattern"}


def publish(client: Any, channel: str | bytes, payload: Any) -> int:
    """Publish ``payload`` as JSON (bytes as they are); returns how many received it.

    The count is only the subscribers connected right now: 0 means the message is
    gone, which is the at-most-once contract of pub/sub.
    """
    data = bytes(payload) if isinstance(payload, bytes | bytearray) else JSON.dumps(payload)
    return int(client.publish(channel, data))


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


def _text(value: bytes | str) -> str:
    return display_key(value, limit=None) if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Message:
    """One received message: ``data`` is the decoded payload, ``raw`` what Redis sent."""

    channel: str
    data: Any
    raw: bytes | str
    pattern: str | None = None


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


class Subscriber:
    """Runs a handler for every message on ``channels``/``patterns`` in a thread.

    It owns its connection's lifecycle: when the connection is lost it waits
    (capped exponential backoff, reset once subscribed again), connects, and
    subscribes to every channel and pattern again. redis-py may also reconnect a
    pub/sub connection by itself; the subscriber notices that from the server's
    repeated subscribe confirmations and counts it as a reconnect too.

    ``source`` is a client or a zero-argument factory returning one (called on each
    reconnect, e.g. to ask Sentinel for the current primary). A handler exception
    is counted and recorded, never fatal. ``ping_interval`` (s) detects a silent
    connection: no reply at all (not even the subscribe confirmations) within two
    intervals counts as a lost connection. ``decode`` turns a payload into
    ``Message.data`` (JSON by default; ``None`` leaves it raw, for readers that only
    show a bounded prefix): a payload it cannot decode is passed on as text.
    """

    def __init__(
        self,
        source: Any,
        channels: Iterable[str | bytes] = (),
        patterns: Iterable[str | bytes] = (),
        handler: Callable[[Message], Any] | None = None,
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
        self.last_error: str | None = None
        self.error: BaseException | None = None  # what ended the thread, if not stop()
        self._confirmed: set[tuple[str, bytes]] = set()
        self._lost = False
        self._delay = backoff_base
        self._ready = threading.Event()
        self.ready = self._ready  # set while every channel and pattern is confirmed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> Subscriber:
        """Start the thread (once); returns self so ``Subscriber(...).start()`` reads well."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the thread to stop and wait for it; True when it has stopped."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def wait_subscribed(self, timeout: float | None = None) -> bool:
        """Block until every channel and pattern is confirmed by the server."""
        return self._ready.wait(timeout)

    @property
    def subscribed(self) -> bool:
        return self._ready.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """Counters as plain data (for a dashboard panel or a log line)."""
        return {
            "channels": [_text(c) for c in self.channels],
            "patterns": [_text(p) for p in self.patterns],
            "subscribed": self.subscribed,
            "alive": self.alive,
            "received": self.received,
            "handler_errors": self.handler_errors,
            "reconnects": self.reconnects,
            "disconnects": self.disconnects,
            "last_error": self.last_error,
            "error": None if self.error is None else str(self.error),
        }

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the loop ------------------------------------------------------------------

    def _run(self) -> None:
        self._delay = self.backoff_base
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._factory().pubsub()
                self._confirmed.clear()
                if self.channels:
                    pubsub.subscribe(*self.channels)
                if self.patterns:
                    pubsub.psubscribe(*self.patterns)
                self._listen(pubsub)
            except _LOST_CONNECTION as exc:
                self._connection_lost(exc)
                self._pause(self._delay)
                self._delay = min(self._delay * 2, self.backoff_max)
                continue
            except Exception as exc:  # refused by ACL or the gate: retrying cannot help
                self.error = exc
                self.last_error = f"{type(exc).__name__}: {exc}"
                return
            finally:
                if pubsub is not None:
                    with suppress(Exception):
                        pubsub.close()
                self._ready.clear()

    def _listen(self, pubsub: Any) -> None:
        last_heard = last_ping = self._clock()
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=self.poll_interval)
            now = self._clock()
            if message is not None:
                last_heard = now
                self._dispatch(message)
            if self.ping_interval is None:
                continue
            if now - last_heard > 2 * self.ping_interval:
                raise RedisTimeoutError(f"no reply from Redis for {now - last_heard:.1f}s")
            if now - last_ping >= self.ping_interval:
                pubsub.ping()
                last_ping = now

    def _connection_lost(self, exc: BaseException) -> None:
        self.disconnects += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._lost = True
        self._ready.clear()

    def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._stop.wait(seconds)  # stop() interrupts the backoff

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind in _CONFIRMATIONS:
            name = message["channel"]
            self._confirm((_CONFIRMATIONS[kind], _b(name)))
        elif kind in ("message", "pmessage"):
            self._deliver(message)

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

    def _deliver(self, message: dict[str, Any]) -> None:
        raw = message["data"]
        pattern = message.get("pattern")
        channel = _text(message["channel"])
        self.received += 1
        try:  # decoding is the handler's side: one odd payload is never fatal
            self.handler(
                Message(
                    channel=channel,
                    data=raw if self.decode is None else self.decode(raw),
                    raw=raw,
                    pattern=None if pattern is None else _text(pattern),
                )
            )
        except Exception as exc:
            self.handler_errors += 1
            self.last_error = f"handler failed on {channel}: {type(exc).__name__}: {exc}"


# --- read side -------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelState:
    name: str
    subscribers: int


@dataclass(frozen=True)
class ChannelsState:
    """Active channels (with at least one subscriber) and pattern subscriptions."""

    pattern: str
    channels: list[ChannelState]
    channel_count: int
    truncated: bool
    pattern_subscriptions: int


def channels_state(
    client: Any, pattern: str | bytes = "*", limit: int = 1000, batch: int = 100
) -> ChannelsState:
    """PUBSUB CHANNELS/NUMSUB/NUMPAT (read-only), busiest channels first.

    PUBSUB CHANNELS has no COUNT: the server lists every match in one reply, so a
    narrow ``pattern`` is kinder to a big server. At most ``limit`` channels are
    counted (NUMSUB in batches of ``batch``); ``truncated`` says when more matched.
    ``pattern_subscriptions`` is server-wide (PUBSUB NUMPAT takes no pattern).
    """
    names = sorted(client.pubsub_channels(pattern))
    shown = names[:limit]
    counts: list[ChannelState] = []
    for start in range(0, len(shown), batch):
        for name, subscribers in client.pubsub_numsub(*shown[start : start + batch]):
            counts.append(ChannelState(_text(name), int(subscribers)))
    counts.sort(key=lambda c: (-c.subscribers, c.name))
    return ChannelsState(
        pattern=_text(pattern),
        channels=counts,
        channel_count=len(names),
        truncated=len(names) > limit,
        pattern_subscriptions=int(client.pubsub_numpat()),
    )
