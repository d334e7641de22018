"""Streams with consumer groups: bounded producers, safe group setup, live state.

Key layout (all single-key operations, so any names work on a cluster):

==========================  ======  ==================================================
key                         type    what
==========================  ======  ==================================================
``<stream>``                stream  the entries (``add`` trims it with MAXLEN ~)
``<stream>:dead``           stream  dead letters of every group reading ``<stream>``
==========================  ======  ==================================================

Name a stream ``{orders}`` rather than ``orders`` if you want its dead-letter
stream on the same cluster slot (``{orders}:dead``), e.g. to move entries back in
one MULTI. Consumer groups and consumers live inside the stream key.

The worker (:class:`Worker`, in :mod:`dashboard.patterns.streams_worker`) gives
at-least-once processing; :func:`stream_state` is the read side the dashboard shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from dashboard.keyid import display_key
from dashboard.patterns.runtime import Steps, cmd, run
from dashboard.patterns.streams_worker import (
    Entry,
    GroupMissing,
    Worker,
    WorkerCore,
    dead_letter_name,
    original_fields,
)

__all__ = [
    "ConsumerState",
    "Entry",
    "GroupMissing",
    "GroupState",
    "StreamState",
    "StreamStateError",
    "Worker",
    "WorkerCore",
    "add",
    "add_steps",
    "dead_letter_name",
    "ensure_group",
    "ensure_group_steps",
    "original_fields",
    "stream_state",
]

_FIELD_TYPES = (str, bytes, int, float)


def add(
    client: Any,
    stream: str | bytes,
    fields: Mapping[str | bytes, Any],
    maxlen: int | None = None,
    approximate: bool = True,
    entry_id: str = "*",
) -> str:
    """XADD with an optional MAXLEN cap; returns the new entry id.

    A stream without a cap grows until memory runs out. ``approximate`` (MAXLEN ~)
    lets Redis trim whole radix-tree nodes only, which is far cheaper; the stream
    then holds up to one node (``stream-node-max-entries``, 100) beyond ``maxlen``.
    A resend after a lost reply (redis-py's retry) can add the entry twice: consumers
    are at-least-once anyway, so make handlers idempotent.
    """
    return run(add_steps(stream, fields, maxlen, approximate, entry_id), client)


def add_steps(
    stream: str | bytes,
    fields: Mapping[str | bytes, Any],
    maxlen: int | None = None,
    approximate: bool = True,
    entry_id: str = "*",
) -> Steps:
    """:func:`add` as core steps (``aio.aadd`` runs the same ones)."""
    if not fields:
        raise ValueError(f"XADD {stream!r}: an entry needs at least one field")
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, _FIELD_TYPES):
            raise TypeError(
                f"XADD {stream!r}: field {name!r} is {type(value).__name__}; "
                "stream values are str, bytes, int or float (encode the rest yourself)"
            )
    if maxlen is not None and maxlen < 0:
        raise ValueError(f"XADD {stream!r}: maxlen must be >= 0")
    new_id = yield cmd(
        "xadd", stream, dict(fields), id=entry_id, maxlen=maxlen, approximate=approximate
    )
    return new_id.decode("ascii") if isinstance(new_id, bytes) else new_id


def ensure_group(
    client: Any,
    stream: str | bytes,
    group: str | bytes,
    start_id: str = "$",
    mkstream: bool = True,
) -> bool:
    """Create ``group`` on ``stream``; True if created, False if it already existed.

    Only BUSYGROUP (the group exists) is expected. Anything else, such as WRONGTYPE
    (the key is not a stream) or a missing stream with ``mkstream=False``, is a real
    problem and is raised with the stream and group named.
    """
    return run(ensure_group_steps(stream, group, start_id, mkstream), client)


def ensure_group_steps(
    stream: str | bytes, group: str | bytes, start_id: str = "$", mkstream: bool = True
) -> Steps:
    """:func:`ensure_group` as core steps."""
    try:
        yield cmd("xgroup_create", stream, group, id=start_id, mkstream=mkstream)
    except ResponseError as exc:
        if str(exc).startswith("BUSYGROUP"):
            return False
        raise type(exc)(f"XGROUP CREATE {stream!r} {group!r}: {exc}") from exc
    return True


# --- read side -------------------------------------------------------------------


class StreamStateError(ValueError):
    """The key cannot be read as a stream (e.g. it holds another type)."""


@dataclass(frozen=True)
class ConsumerState:
    name: str
    pending: int
    idle_ms: int
    inactive_ms: int | None  # Redis >= 7.2: since the last successful read


@dataclass(frozen=True)
class GroupState:
    """A consumer group. ``lag_source`` says where ``lag`` comes from:

    ``server`` (XINFO GROUPS, exact), ``computed`` (exact without a scan: the group
    is at or past the last entry, or before the first), ``xrange`` (entries after the
    last delivered id counted, exact), ``xrange-lower-bound`` (the bounded count hit
    its limit: the real lag is at least ``lag``), ``none`` (unknown). ``lag_upper_bound`` is
    entries_added - entries_read: it also counts entries deleted before being read.
    """

    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    entries_read: int | None
    lag: int | None
    lag_source: str
    lag_is_lower_bound: bool
    lag_upper_bound: int | None
    oldest_pending_id: str | None
    oldest_pending_age_ms: int | None
    oldest_pending_idle_ms: int | None  # most idle among the sampled pending entries
    max_delivery_count: int | None  # highest delivery count among the sampled ones
    pending_sampled: int
    consumer_list: list[ConsumerState] = field(default_factory=list)
    consumers_truncated: bool = False


@dataclass(frozen=True)
class StreamState:
    stream: str
    exists: bool
    length: int = 0
    first_id: str | None = None
    last_id: str | None = None
    first_age_ms: int | None = None  # server TIME minus the id's millisecond part
    last_age_ms: int | None = None
    last_generated_id: str | None = None
    entries_added: int | None = None  # Redis >= 7
    max_deleted_id: str | None = None  # Redis >= 7
    groups: list[GroupState] = field(default_factory=list)
    groups_truncated: bool = False


def _text(value: bytes | str) -> str:
    return display_key(value, limit=None) if isinstance(value, bytes) else value


def _sid(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("ascii") if isinstance(value, bytes) else value


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _age_ms(entry_id: str | None, now_ms: int) -> int | None:
    return None if entry_id is None else max(0, now_ms - _parse_id(entry_id)[0])


def _server_ms(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _entry_id(entry: Any) -> str | None:
    return None if not entry else _sid(entry[0])


def stream_state(
    client: Any,
    stream: str | bytes,
    *,
    pending_sample: int = 100,
    lag_scan_limit: int = 1000,
    max_groups: int = 50,
    max_consumers: int = 100,
) -> StreamState:
    """Live state of ``stream`` and its groups, read-only and bounded.

    Uses XINFO STREAM/GROUPS/CONSUMERS, XPENDING (summary, and the extended form
    with COUNT ``pending_sample``), TIME, and XRANGE with COUNT ``lag_scan_limit``
    only where the server does not report a group's lag.
    """
    name = _text(stream)
    try:
        info = client.xinfo_stream(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return StreamState(stream=name, exists=False)
        raise StreamStateError(f"{name}: cannot read as a stream: {exc}") from exc
    now_ms = _server_ms(client)
    first_id = _entry_id(info.get("first-entry"))
    last_id = _entry_id(info.get("last-entry"))
    base = {
        "stream": name,
        "exists": True,
        "length": int(info.get("length", 0)),
        "first_id": first_id,
        "last_id": last_id,
        "first_age_ms": _age_ms(first_id, now_ms),
        "last_age_ms": _age_ms(last_id, now_ms),
        "last_generated_id": _sid(info.get("last-generated-id")),
        "entries_added": info.get("entries-added"),
        "max_deleted_id": _sid(info.get("max-deleted-entry-id")),
    }
    raw_groups = client.xinfo_groups(stream) if info.get("groups") else []
    groups = [
        _group_state(client, stream, g, base, now_ms, pending_sample, lag_scan_limit, max_consumers)
        for g in raw_groups[:max_groups]
    ]
    return StreamState(**base, groups=groups, groups_truncated=len(raw_groups) > max_groups)


def _group_state(
    client: Any,
    stream: str | bytes,
    group: dict[str, Any],
    stream_info: dict[str, Any],
    now_ms: int,
    pending_sample: int,
    lag_scan_limit: int,
    max_consumers: int,
) -> GroupState:
    raw_name = group["name"]
    last_delivered = _sid(group["last-delivered-id"]) or "0-0"
    pending = int(group.get("pending", 0))
    entries_read = group.get("entries-read")
    lag, source, lower = _lag(group.get("lag"), last_delivered, stream_info)
    if source == "xrange":
        lag, source, lower = _counted_lag(client, stream, last_delivered, lag_scan_limit)
    added = stream_info["entries_added"]
    upper = added - entries_read if added is not None and entries_read is not None else None

    oldest_id = oldest_idle = max_count = None
    sampled = 0
    if pending:
        summary = client.xpending(stream, raw_name)
        oldest_id = _sid(summary.get("min"))
        rows = client.xpending_range(stream, raw_name, "-", "+", pending_sample)
        sampled = len(rows)
        if rows:
            oldest_idle = max(int(r["time_since_delivered"]) for r in rows)
            max_count = max(int(r["times_delivered"]) for r in rows)
    consumers = client.xinfo_consumers(stream, raw_name) if group.get("consumers") else []
    return GroupState(
        name=_text(raw_name),
        consumers=int(group.get("consumers", 0)),
        pending=pending,
        last_delivered_id=last_delivered,
        entries_read=entries_read,
        lag=lag,
        lag_source=source,
        lag_is_lower_bound=lower,
        lag_upper_bound=upper,
        oldest_pending_id=oldest_id,
        oldest_pending_age_ms=_age_ms(oldest_id, now_ms),
        oldest_pending_idle_ms=oldest_idle,
        max_delivery_count=max_count,
        pending_sampled=sampled,
        consumer_list=[
            ConsumerState(
                name=_text(c["name"]),
                pending=int(c.get("pending", 0)),
                idle_ms=int(c.get("idle", 0)),
                inactive_ms=None if c.get("inactive") is None else int(c["inactive"]),
            )
            for c in consumers[:max_consumers]
        ],
        consumers_truncated=len(consumers) > max_consumers,
    )


def _lag(
    server_lag: int | None, last_delivered: str, info: dict[str, Any]
) -> tuple[int | None, str, bool]:
    """The server's lag when it has one; else what needs no scan, or ``xrange``.

    Redis 7 reports lag None when an entry after the group's position was deleted
    (or entries-read is unknown): entries_added - entries_read would then count the
    deleted entries too, so it is only an upper bound and we count instead.
    """
    if server_lag is not None:
        return int(server_lag), "server", False
    position = _parse_id(last_delivered)
    if info["last_id"] is None or position >= _parse_id(info["last_id"]):
        return 0, "computed", False
    if info["first_id"] is not None and position < _parse_id(info["first_id"]):
        return info["length"], "computed", False
    return None, "xrange", False


def _counted_lag(
    client: Any, stream: str | bytes, last_delivered: str, limit: int
) -> tuple[int | None, str, bool]:
    """Count entries after ``last_delivered`` with one bounded XRANGE."""
    if limit <= 0:
        return None, "none", False
    entries = client.xrange(stream, min=f"({last_delivered}", max="+", count=limit)
    if len(entries) < limit:
        return len(entries), "xrange", False
    return len(entries), "xrange-lower-bound", True
