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

import threading
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from dashboard.patterns.codecs import JSON
from dashboard.patterns.pubsub_core import Message, SubscriberCore, decode_payload, display_text
from dashboard.patterns.runtime import run

__all__ = [
    "ChannelState",
    "ChannelsState",
    "Message",
    "Subscriber",
    "channels_state",
    "decode_payload",
    "publish",
    "publish_payload",
]


def publish(client: Any, channel: str | bytes, payload: Any) -> int:
    """Publish ``payload`` as JSON (bytes as they are); returns how many received it.

    The count is only the subscribers connected right now: 0 means the message is
    gone, which is the at-most-once contract of pub/sub.
    """
    return int(client.publish(channel, publish_payload(payload)))


def publish_payload(payload: Any) -> bytes:
    """What :func:`publish` sends: bytes as they are, anything else as compact JSON."""
    return bytes(payload) if isinstance(payload, bytes | bytearray) else JSON.dumps(payload)


class Subscriber(SubscriberCore):
    """Runs a handler for every message on ``channels``/``patterns`` in a thread.

    It owns its connection's lifecycle: when the connection is lost it waits
    (capped exponential backoff, reset once subscribed again), calls the factory,
    connects, and subscribes to every channel and pattern again (see
    :mod:`dashboard.patterns.pubsub_core` for why redis-py's own retry is turned off).

    ``source`` is a client or a zero-argument factory returning one (called on each
    reconnect, e.g. to ask Sentinel for the current primary). A handler exception
    is counted and recorded, never fatal. ``ping_interval`` (s) detects a silent
    connection: no reply at all (not even the subscribe confirmations) within two
    intervals counts as a lost connection. ``decode`` turns a payload into
    ``Message.data`` (JSON by default; ``None`` leaves it raw, for readers that only
    show a bounded prefix): a payload it cannot decode is counted as a handler error,
    never fatal. The asyncio twin is :class:`dashboard.patterns.aio.AsyncSubscriber`.
    """

    def __init__(self, source: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(source, *args, **kwargs)
        self._ready = threading.Event()
        self.ready = self._ready  # set while every channel and pattern is confirmed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Subscriber:
        """Start the thread (once); returns self so ``Subscriber(...).start()`` reads well."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the thread to stop and wait for it; True when it has stopped."""
        self._stopping = True
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
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            run(self._loop(), None, self._pause)
        finally:
            if self._current is not None:
                self._restore()
                with suppress(Exception):
                    self._current.close()
                self._current = None
            self._ready.clear()

    def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._stop.wait(seconds)  # stop() interrupts the backoff


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
            counts.append(ChannelState(display_text(name), int(subscribers)))
    counts.sort(key=lambda c: (-c.subscribers, c.name))
    return ChannelsState(
        pattern=display_text(pattern),
        channels=counts,
        channel_count=len(names),
        truncated=len(names) > limit,
        pattern_subscriptions=int(client.pubsub_numpat()),
    )
