"""An overall deadline for all the Redis commands of one unit of work (a request, a
CLI check, an observer round): ``with deadline(10): ...``.

Per-command socket timeouts add up: a page that sends twenty commands to a stalled
server (``CLIENT PAUSE``, a long Lua script, a failing disk) waits twenty timeouts,
plus redis-py's retries. A deadline bounds the sum instead. It is per thread and
nests (an inner deadline never extends an outer one). Three places honour it, all
below the code that sends commands, so no page can forget to:

* the command gate's serializer (:mod:`dashboard.gate`): a command packed after the
  deadline is refused with :class:`DeadlineExceeded` before anything is sent, and
  the socket's read timeout is capped to the time that is left;
* new connections: the connect timeout is capped the same way;
* the connection pool (:class:`dashboard.connection.DashboardPool`): the wait for a
  free connection is capped too.

:class:`DeadlineExceeded` is a :class:`redis.RedisError` but *not* a connection or
timeout error, so redis-py does not retry it and does not drop the connection (the
command was never sent), and pages that collect what they can per panel show the
panels read in time and "Redis is not answering" for the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import RedisError

_local = threading.local()


class DeadlineExceeded(RedisError):
    """The unit of work ran out of time; nothing more is sent to Redis for it."""


def _current() -> tuple[float, float] | None:
    """``(monotonic end, seconds given)`` of the innermost deadline of this thread."""
    return getattr(_local, "deadline", None)


@contextmanager
def deadline(seconds: float | None, clock: Any = time.monotonic) -> Iterator[None]:
    """Bound every Redis command sent in this block (and this thread) to ``seconds``
    in all. ``None`` or a non-positive value means no deadline of its own."""
    outer = _current()
    if seconds is not None and seconds > 0:
        end = clock() + seconds
        if outer is None or end < outer[0]:
            _local.deadline = (end, seconds)
    try:
        yield
    finally:
        _local.deadline = outer


def remaining(clock: Any = time.monotonic) -> float | None:
    """Seconds left (may be negative), or None without a deadline."""
    current = _current()
    return None if current is None else current[0] - clock()


def check(what: str = "the command") -> float | None:
    """Raise :class:`DeadlineExceeded` when the deadline has passed; else the seconds left."""
    current = _current()
    if current is None:
        return None
    left = current[0] - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded(
            f"{NOT_ANSWERING} within the {current[1]:g} s (request_timeout); {what} was given up"
        )
    return left


NOT_ANSWERING = "Redis is not answering"


def expired() -> float | None:
    """The seconds given, when this thread's deadline has passed; else None. A socket
    timeout then means the deadline cut the wait short, not that Redis is gone."""
    current = _current()
    if current is None or current[0] > time.monotonic():
        return None
    return current[1]


def capped(timeout: float | None, left: float | None) -> float | None:
    """``timeout`` no longer than ``left`` (None means no limit on either side)."""
    if left is None:
        return timeout
    if timeout is None:
        return max(left, 0.001)
    return max(min(timeout, left), 0.001)
