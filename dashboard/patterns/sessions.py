"""Server-side sessions: one hash per session with a sliding TTL, plus a per-user index.

Key layout (``prefix`` defaults to ``session``; details in docs/patterns/sessions.md):

- ``session:<sid>`` hash: ``uid``, ``created_ms``, ``last_access_ms`` and one ``d:<name>``
  field per data item (JSON); TTL = idle timeout, renewed on every access.
- ``session:user:<uid>`` sorted set: sid -> expiry time (ms); TTL >= its longest session.

Ids come from :func:`secrets.token_urlsafe` (``[A-Za-z0-9_-]``, never ``:``), so
``session:user:*`` is never a session key, and a cookie value that does not look like
an id is "no session" instead of an address for another key.

Session and index are in different cluster slots on purpose (a user's sessions spread
over the cluster) and no command touches both. The index stays consistent anyway:
it is written *before* a session is created and refreshed after every renewal with
its TTL only ever raised to the session TTL plus a grace, so it outlives every
session it lists; and a stale entry is harmless, because readers verify each id
against its session key (PTTL) and remove the gone ones. Ids are random and never
reused, so removing a gone id is always right, and a late refresh that re-adds a
deleted id only leaves such a stale entry.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dashboard.patterns.keys import KeyPart, key
from dashboard.patterns.scripts import load

_CREATE = load("session_create")
_TOUCH = load("session_touch")
_INDEX_ADD = load("session_index_add")

DATA_PREFIX = "d:"
META_FIELDS = ("uid", "created_ms", "last_access_ms")
_SID = re.compile(r"[A-Za-z0-9_-]{16,128}")
Clock = Callable[[], float]


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "backslashreplace")


def _int(value: bytes | str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _pairs(flat: list[Any]) -> dict[str, Any]:
    return {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def valid_sid(sid: object) -> bool:
    """True for ids this store could have issued (guards against crafted cookie values)."""
    return isinstance(sid, str) and _SID.fullmatch(sid) is not None


@dataclass(frozen=True)
class Session:
    """A session as the application sees it after an access (TTL already renewed)."""

    sid: str
    user_id: str | None
    created_ms: int | None
    last_access_ms: int | None
    ttl_ms: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UserSession:
    """One live session of a user, as listed from the user index (verified to exist)."""

    sid: str
    ttl_ms: int
    created_ms: int | None
    last_access_ms: int | None


class SessionStore:
    """Sessions with a sliding idle TTL, an optional absolute max age and a user index."""

    def __init__(
        self,
        client: Any,
        ttl: float,
        index_users: bool = True,
        clock: Clock = time.time,
        *,
        max_age: float | None = None,
        prefix: KeyPart = "session",
        index_grace: float = 60.0,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"session TTL must be positive, got {ttl!r}")
        if max_age is not None and max_age < ttl:
            raise ValueError(f"max_age ({max_age}) must be at least the idle TTL ({ttl})")
        self.client = client
        self.ttl_ms = int(ttl * 1000)
        self.max_age_ms = int(max_age * 1000) if max_age else 0
        self.index_users = index_users
        self.clock = clock
        self.prefix = prefix
        self.index_grace_ms = int(index_grace * 1000)

    def session_key(self, sid: str) -> str | bytes:
        return key(self.prefix, sid)

    def index_key(self, user_id: KeyPart) -> str | bytes:
        return key(self.prefix, "user", user_id)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def create(self, user_id: str | int, data: Mapping[str, Any] | None = None) -> str:
        """Start a session; the index entry is written first so it can never be missing."""
        uid = str(user_id)
        if not uid:
            raise ValueError("a session needs a non-empty user id")
        sid = secrets.token_urlsafe(32)
        now = self._now_ms()
        fields: list[Any] = ["uid", uid, "created_ms", now, "last_access_ms", now]
        fields += _encode_data(data or {})
        pipe = self.client.pipeline(transaction=False)
        if self.index_users:
            self._refresh_index(pipe, uid, sid, now, self.ttl_ms)
        _CREATE(pipe, keys=[self.session_key(sid)], args=[self.ttl_ms, *fields])
        if pipe.execute()[-1] != 1:  # 256 random bits collided: refuse, never overwrite
            if self.index_users:
                self.client.zrem(self.index_key(uid), sid)
            raise RuntimeError(f"session id collision on {self.session_key(sid)!r}")
        return sid

    def get(self, sid: str) -> Session | None:
        """Read a session and renew its TTL in the same round trip (sliding expiry)."""
        reply = self._touch(sid, full=True)
        if reply is None:
            return None
        ttl_ms, raw = reply
        skey = self.session_key(sid)
        data = {
            name[len(DATA_PREFIX) :]: _decode_value(skey, name, value)
            for name, value in raw.items()
            if name.startswith(DATA_PREFIX)
        }
        created, accessed = _int(raw.get("created_ms")), _int(raw.get("last_access_ms"))
        return Session(sid, _text(raw.get("uid")), created, accessed, ttl_ms, data)

    def update(
        self, sid: str, data: Mapping[str, Any] | None = None, remove: Iterable[str] = ()
    ) -> bool:
        """Set and delete data fields of a live session; False (and nothing written) if gone."""
        return self._touch(sid, full=False, data=data or {}, remove=list(remove)) is not None

    def set(self, sid: str, name: str, value: Any) -> bool:
        """Set one data field of a live session; False if the session is gone."""
        return self.update(sid, {name: value})

    def _touch(
        self,
        sid: str,
        full: bool,
        data: Mapping[str, Any] | None = None,
        remove: list[str] | None = None,
    ) -> tuple[int, dict[str, Any]] | None:
        if not valid_sid(sid):
            return None
        removed = [DATA_PREFIX + _check_name(n) for n in remove or ()]
        now = self._now_ms()
        args = [self.ttl_ms, now, self.max_age_ms, int(full), len(removed), *removed]
        args += _encode_data(data or {})
        reply = _TOUCH(self.client, keys=[self.session_key(sid)], args=args)
        if not reply:
            return None
        ttl_ms = int(reply[0])
        raw = _pairs(reply[1:]) if full else {"uid": reply[1]}
        if self.index_users and raw.get("uid") is not None:
            self._refresh_index(self.client, _text(raw["uid"]), sid, now, ttl_ms)
        return ttl_ms, raw

    def _refresh_index(self, target: Any, uid: str, sid: str, now: int, ttl_ms: int) -> None:
        _INDEX_ADD(
            target,
            keys=[self.index_key(uid)],
            args=[sid, now + ttl_ms, ttl_ms + self.index_grace_ms],
        )

    def delete(self, sid: str) -> bool:
        """End a session (logout); True if it existed."""
        if not valid_sid(sid):
            return False
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.session_key(sid), "uid")
        pipe.delete(self.session_key(sid))
        uid, deleted = pipe.execute()
        if self.index_users and uid is not None:
            self.client.zrem(self.index_key(_text(uid)), sid)
        return deleted == 1

    def delete_all_for_user(self, user_id: str | int, batch: int = 100) -> int:
        """Log a user out everywhere; returns how many live sessions were deleted.

        Works batch by batch and removes only the ids it dealt with, so a session
        created meanwhile is either deleted too or keeps its index entry.
        """
        uid = str(user_id)
        index = self.index_key(uid)
        deleted = 0
        while sids := [_text(s) for s in self.client.zrange(index, 0, batch - 1)]:
            owners = self._pipeline(lambda p, s: p.hget(self.session_key(s), "uid"), sids)
            mine = [s for s, owner in zip(sids, owners, strict=True) if _text(owner) == uid]
            if mine:
                deleted += sum(self._pipeline(lambda p, s: p.delete(self.session_key(s)), mine))
            self.client.zrem(index, *sids)
        return deleted

    def list_user_sessions(
        self, user_id: str | int, limit: int = 100, prune_batch: int = 100
    ) -> list[UserSession]:
        """Live sessions of a user, most recently used first; prunes dead index entries.

        Entries whose expiry score has passed are checked first (bounded batch), then
        up to ``limit`` others; every id is verified with PTTL and the ones whose
        session is gone (expired, deleted, evicted) are removed from the index.
        """
        uid = str(user_id)
        index = self.index_key(uid)
        now = self._now_ms()
        pipe = self.client.pipeline(transaction=False)
        pipe.zrangebyscore(index, "-inf", now, start=0, num=prune_batch, withscores=True)
        pipe.zrevrangebyscore(index, "+inf", f"({now}", start=0, num=limit, withscores=True)
        due, live = pipe.execute()
        scores = {_text(m): s for m, s in [*due, *live]}
        sids = list(scores)

        def probe(p: Any, s: str) -> None:
            p.pttl(self.session_key(s))
            p.hmget(self.session_key(s), *META_FIELDS)

        replies = self._pipeline(probe, sids)
        found, stale, heal = [], [], {}
        for i, sid in enumerate(sids):
            pttl, (owner, created, accessed) = replies[2 * i], replies[2 * i + 1]
            if pttl == -2 or _text(owner) != uid:
                stale.append(sid)
                continue
            if pttl > 0 and scores[sid] < now + pttl - 1000:
                heal[sid] = now + pttl  # renewed without its index refresh landing
            found.append(UserSession(sid, pttl, _int(created), _int(accessed)))
        pipe = self.client.pipeline(transaction=False)
        if stale:
            pipe.zrem(index, *stale)
        if heal:
            pipe.zadd(index, heal, gt=True)
        pipe.execute()
        found.sort(key=lambda s: s.last_access_ms or 0, reverse=True)
        return found[:limit]

    def _pipeline(self, add: Callable[[Any, str], Any], sids: list[str]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for sid in sids:
            add(pipe, sid)
        return pipe.execute()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"session data names must be non-empty strings, got {name!r}")
    return name


def _encode_data(data: Mapping[str, Any]) -> list[Any]:
    flat: list[Any] = []
    for name, value in data.items():
        try:
            encoded = json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"session data {name!r} is not JSON-serializable: {exc}") from exc
        flat += [DATA_PREFIX + _check_name(name), encoded]
    return flat


def _decode_value(session_key: str | bytes, name: str, value: bytes | str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(f"{session_key!r} field {name!r} does not hold JSON: {exc}") from exc


# --- read side (read-only commands: TYPE, PTTL, HMGET, HLEN, HSCAN, ZCARD, ZRANGE ...) -----


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
    return _text(client.type(name))


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
        names += [n[2:] for n in map(_text, chunk) if n.startswith(DATA_PREFIX)]
        calls += 1
        if cursor == 0:
            break
    last = _int(accessed)
    text_key = _text(key)
    return SessionState(
        key=text_key,
        sid=text_key.rpartition(":")[2],
        user_id=_text(uid),
        ttl_ms=ttl_ms,
        created_ms=_int(created),
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
        {"sid": _text(m), "expires_in_ms": int(s) - now, "exists": bool(e)}
        for (m, s), e in zip(latest[:sample], alive, strict=False)
    ]
    last_expiry = int(latest[0][1]) if latest else None
    return UserIndexState(
        key=_text(raw),
        user_id=_text(uid),
        entries=entries,
        ttl_ms=ttl_ms,
        due=due,
        next_expiry_ms=int(first[0][1]) if first else None,
        last_expiry_ms=last_expiry,
        ttl_covers_entries=ttl_ms == -1 or last_expiry is None or now + ttl_ms >= last_expiry,
        sample=rows,
        dangling_in_sample=sum(1 for row in rows if not row["exists"]),
    )
