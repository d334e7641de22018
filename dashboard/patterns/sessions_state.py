"""Sessions, the read side: what the dashboard shows for a session or a user index.

Read-only commands only: TYPE, PTTL, HMGET, HLEN, HSCAN, ZCARD, ZCOUNT, ZRANGE, EXISTS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DATA_PREFIX = "d:"
META_FIELDS = ("uid", "created_ms", "last_access_ms")
Clock = Callable[[], float]


def text_or_none(value: bytes | str | None) -> str | None:
    """Text of a reply (bytes decoded, undecodable bytes escaped); None stays None."""
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "backslashreplace")


def int_or_none(value: bytes | str | None) -> int | None:
    """An integer reply, None when missing or not a number."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class SessionState:
    key: str
    sid: str
    user_id: str | None
    ttl_ms: int
    created_ms: int | None
    last_access_ms: int | None
    idle_ms: int | None
    field_count: int
    data_fields: list[str]
    data_fields_truncated: bool


def _type(client: Any, name: str | bytes) -> str:
    return text_or_none(client.type(name))


def session_state(
    client: Any, key: str | bytes, max_fields: int = 50, clock: Clock = time.time
) -> SessionState | None:
    """Live state of one session hash; None if the key does not exist."""
    kind = _type(client, key)
    if kind == "none":
        return None
    if kind != "hash":
        raise ValueError(f"{key!r} is a {kind}, not a session hash")
    pipe = client.pipeline(transaction=False)
    pipe.pttl(key)
    pipe.hmget(key, *META_FIELDS)
    pipe.hlen(key)
    ttl_ms, (uid, created, accessed), count = pipe.execute()
    names: list[str] = []
    cursor, calls = 0, 0
    while len(names) <= max_fields and calls < 10:  # bounded: a few HSCAN calls at most
        cursor, chunk = client.hscan(key, cursor, count=max(max_fields, 10))
        names += [n[2:] for n in map(text_or_none, chunk) if n.startswith(DATA_PREFIX)]
        calls += 1
        if cursor == 0:
            break
    last = int_or_none(accessed)
    text_key = text_or_none(key)
    return SessionState(
        key=text_key,
        sid=text_key.rpartition(":")[2],
        user_id=text_or_none(uid),
        ttl_ms=ttl_ms,
        created_ms=int_or_none(created),
        last_access_ms=last,
        idle_ms=int(clock() * 1000) - last if last is not None else None,
        field_count=count,
        data_fields=sorted(names)[:max_fields],
        data_fields_truncated=len(names) > max_fields or cursor != 0,
    )


@dataclass(frozen=True)
class UserIndexState:
    key: str
    user_id: str
    entries: int
    ttl_ms: int
    due: int
    next_expiry_ms: int | None
    last_expiry_ms: int | None
    ttl_covers_entries: bool
    sample: list[dict[str, Any]]
    dangling_in_sample: int


def user_index_state(
    client: Any, key: str | bytes, sample: int = 20, clock: Clock = time.time
) -> UserIndexState | None:
    """Live state of a user index: size, TTL vs latest expiry, and a verified sample."""
    kind = _type(client, key)
    if kind == "none":
        return None
    if kind != "zset":
        raise ValueError(f"{key!r} is a {kind}, not a session user index")
    raw = key if isinstance(key, bytes) else key.encode()
    prefix, marker, uid = raw.partition(b":user:")
    if not marker:
        raise ValueError(f"{key!r} does not look like <prefix>:user:<uid>")
    now = int(clock() * 1000)
    pipe = client.pipeline(transaction=False)
    pipe.zcard(key)
    pipe.pttl(key)
    pipe.zcount(key, "-inf", now)
    pipe.zrange(key, 0, 0, withscores=True)
    pipe.zrevrange(key, 0, max(sample, 1) - 1, withscores=True)
    entries, ttl_ms, due, first, latest = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for member, _ in latest:
        pipe.exists(prefix + b":" + member)
    alive = pipe.execute()
    rows = [
        {"sid": text_or_none(m), "expires_in_ms": int(s) - now, "exists": bool(e)}
        for (m, s), e in zip(latest[:sample], alive, strict=False)
    ]
    last_expiry = int(latest[0][1]) if latest else None
    return UserIndexState(
        key=text_or_none(raw),
        user_id=text_or_none(uid),
        entries=entries,
        ttl_ms=ttl_ms,
        due=due,
        next_expiry_ms=int(first[0][1]) if first else None,
        last_expiry_ms=last_expiry,
        ttl_covers_entries=ttl_ms == -1 or last_expiry is None or now + ttl_ms >= last_expiry,
        sample=rows,
        dangling_in_sample=sum(1 for row in rows if not row["exists"]),
    )
