"""Live pub/sub tails: one subscription per open browser tail, bounded in every way.

A :class:`Tail` runs a :class:`~dashboard.patterns.pubsub.Subscriber` (its own
connection, reconnects, ``get_message(timeout=...)`` loop, never a blocking
``listen``) whose handler only appends to a bounded ring: when the browser (or the
network) is slower than the channel, the oldest messages are dropped and counted,
so memory stays at ``buffer`` messages of at most ``PAYLOAD_LIMIT`` bytes each.

The web layer drains a tail with :meth:`Tail.take` and writes Server-Sent Events;
when a write fails (the browser went away) it calls :meth:`TailRegistry.close`.
As a safety net the registry's janitor closes any tail nobody has drained for
``idle_s`` seconds (a request thread stuck writing to a dead peer, say).
:class:`TailRegistry` caps how many tails are open at once (:class:`TooManyTails`).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dashboard.keyid import escape_bytes
from dashboard.patterns.pubsub import Message, Subscriber

PAYLOAD_LIMIT = 4096  # bytes of a payload kept for display; the length is kept too
RATE_WINDOW_S = 5
# Control characters (except tab/newline/CR) and bidi overrides are shown escaped;
# the rest of a UTF-8 payload is shown as sent (the browser puts it in textContent).
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class TooManyTails(RuntimeError):
    """The cap on concurrent tails is reached; the message says what to do."""


@dataclass(frozen=True)
class TailMessage:
    seq: int
    at: float  # unix seconds, when the dashboard received it
    channel: str
    pattern: str | None
    text: str
    length: int  # bytes of the whole payload
    truncated: bool
    binary: bool  # not UTF-8: shown with \\xNN escapes


def payload_text(raw: bytes | str, limit: int = PAYLOAD_LIMIT) -> tuple[str, bool, bool]:
    """``(text, truncated, binary)`` for a payload, cut to ``limit`` bytes."""
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    truncated = len(data) > limit
    cut = data[:limit]
    for back in range(4):  # a cut inside a UTF-8 character is not "binary"
        try:
            text = cut[: len(cut) - back].decode("utf-8")
        except UnicodeDecodeError:
            if not truncated:
                break
            continue
        return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text), truncated, False
    return escape_bytes(cut), truncated, True


class _Rate:
    """Messages per second over the last few whole seconds (per-second buckets)."""

    def __init__(self, clock: Callable[[], float], window: int = RATE_WINDOW_S) -> None:
        self._clock = clock
        self._window = window
        self._buckets: deque[list[int]] = deque(maxlen=window + 1)
        self._since = clock()

    def hit(self) -> None:
        second = int(self._clock())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1])

    def per_second(self) -> float:
        now = self._clock()
        span = min(self._window, max(now - self._since, 1e-9))
        counted = sum(n for s, n in self._buckets if s > int(now) - self._window)
        return round(counted / max(span, 1.0), 1)


class Tail:
    """One subscription (a channel or a pattern) and its bounded buffer."""

    def __init__(
        self,
        tail_id: int,
        source: Any,
        *,
        channel: str | None = None,
        pattern: str | None = None,
        buffer: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if (channel is None) == (pattern is None):
            raise ValueError("a tail follows exactly one channel or one pattern")
        self.id = tail_id
        self.channel = channel
        self.pattern = pattern
        self.buffer = buffer
        self._clock = clock
        self._wall = wall
        self._ring: deque[TailMessage] = deque(maxlen=buffer)
        self._cond = threading.Condition()
        self.received = self.dropped = self.delivered = 0
        self.opened = clock()
        self.last_drain = self.opened
        self.closed_reason: str | None = None
        self._rate = _Rate(clock)
        self.subscriber = Subscriber(
            source,
            channels=[channel] if channel is not None else (),
            patterns=[pattern] if pattern is not None else (),
            handler=self._on_message,
            poll_interval=0.2,
            ping_interval=15.0,
            name=f"pubsub-tail-{tail_id}",
            decode=None,  # a tail shows PAYLOAD_LIMIT bytes of text: parsing JSON is waste
        )

    @property
    def target(self) -> str:
        return self.channel if self.channel is not None else f"{self.pattern} (pattern)"

    def start(self) -> Tail:
        self.subscriber.start()
        return self

    def _on_message(self, message: Message) -> None:
        text, truncated, binary = payload_text(message.raw)
        raw_len = len(message.raw) if isinstance(message.raw, bytes) else len(message.raw.encode())
        with self._cond:
            self.received += 1
            item = TailMessage(
                self.received,
                self._wall(),
                message.channel,
                message.pattern,
                text,
                raw_len,
                truncated,
                binary,
            )
            if len(self._ring) == self.buffer:
                self.dropped += 1  # deque(maxlen) drops the oldest on append
            self._ring.append(item)
            self._rate.hit()
            self._cond.notify_all()

    def take(self, timeout: float) -> list[TailMessage]:
        """Everything buffered, waiting up to ``timeout`` s for the first message."""
        with self._cond:
            if not self._ring and self.closed_reason is None:
                self._cond.wait(timeout)
            items = list(self._ring)
            self._ring.clear()
            self.delivered += len(items)
            self.last_drain = self._clock()
            return items

    def stats(self) -> dict[str, Any]:
        sub = self.subscriber
        with self._cond:  # one consistent snapshot: delivered + buffered + dropped == received
            counts = (self.received, self.delivered, self.dropped, len(self._ring))
        return {
            "id": self.id,
            "channel": self.channel,
            "pattern": self.pattern,
            "subscribed": sub.subscribed,
            "received": counts[0],
            "delivered": counts[1],
            "dropped": counts[2],
            "buffered": counts[3],
            "buffer": self.buffer,
            "rate": self._rate.per_second(),
            "reconnects": sub.reconnects,
            "disconnects": sub.disconnects,
            "error": None if sub.error is None else str(sub.error),
            "last_error": sub.last_error,
            "age_s": round(self._clock() - self.opened, 1),
            "closed": self.closed_reason,
        }

    def close(self, reason: str = "closed") -> None:
        """Stop the subscription (its connection is closed) and wake any reader."""
        with self._cond:
            if self.closed_reason is None:
                self.closed_reason = reason
            self._cond.notify_all()
        self.subscriber.stop(timeout=5.0)

    @property
    def failed(self) -> bool:
        """The subscriber ended on an error retrying cannot fix (e.g. refused by ACL)."""
        return self.subscriber.error is not None


def message_dict(m: TailMessage) -> dict[str, Any]:
    """Plain data for the event stream (by hand: ``asdict`` costs 50x more in a flood)."""
    return {
        "seq": m.seq,
        "at": round(m.at, 3),
        "channel": m.channel,
        "pattern": m.pattern,
        "text": m.text,
        "length": m.length,
        "truncated": m.truncated,
        "binary": m.binary,
    }


class TailRegistry:
    """Open tails of this process: the cap, the ids, and the idle janitor."""

    def __init__(
        self,
        source: Any,
        *,
        max_tails: int = 8,
        buffer: int = 1000,
        idle_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source  # a client, or a zero-argument factory of one
        self.max_tails = max_tails
        self.buffer = buffer
        self.idle_s = idle_s
        self._clock = clock
        self._tails: dict[int, Tail] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._janitor: threading.Thread | None = None
        self.refused = 0

    def open(self, *, channel: str | None = None, pattern: str | None = None) -> Tail:
        """Start a tail, or raise :class:`TooManyTails` at the cap."""
        with self._lock:
            if len(self._tails) >= self.max_tails:
                self.refused += 1
                raise TooManyTails(
                    f"{len(self._tails)} live tails are open, the most this dashboard allows "
                    f"(max_tails={self.max_tails}): close a tail in another tab, or raise "
                    "--max-tails (keep it below --threads)"
                )
            tail = Tail(
                next(self._ids),
                self._source,
                channel=channel,
                pattern=pattern,
                buffer=self.buffer,
                clock=self._clock,
            )
            self._tails[tail.id] = tail
            self._start_janitor()
        return tail.start()

    def close(self, tail: Tail, reason: str = "closed") -> None:
        with self._lock:
            self._tails.pop(tail.id, None)
        tail.close(reason)

    def close_all(self) -> None:
        for tail in self.tails():
            self.close(tail, "dashboard shutting down")

    def tails(self) -> list[Tail]:
        with self._lock:
            return list(self._tails.values())

    def status(self) -> dict[str, Any]:
        tails = self.tails()
        return {
            "active": len(tails),
            "max_tails": self.max_tails,
            "buffer": self.buffer,
            "refused": self.refused,
            "tails": [t.stats() for t in tails],
        }

    def reap(self) -> int:
        """Close tails nobody drained for ``idle_s``; how many were closed."""
        now = self._clock()
        stale = [t for t in self.tails() if now - t.last_drain > self.idle_s]
        for tail in stale:
            self.close(tail, f"nobody read this tail for {self.idle_s:.0f} s")
        return len(stale)

    def _start_janitor(self) -> None:
        if self._janitor is None or not self._janitor.is_alive():
            self._janitor = threading.Thread(
                target=self._sweep, name="pubsub-tail-janitor", daemon=True
            )
            self._janitor.start()

    def _sweep(self) -> None:
        """Runs while any tail is open; ends (and is restarted by open()) when none is."""
        while True:
            time.sleep(1.0)
            self.reap()
            with self._lock:
                if not self._tails:
                    self._janitor = None
                    return
