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
from dashboard.patterns.runtime import Batch, Script, Steps, blocking, cmd
from dashboard.patterns.scripts import load
from dashboard.patterns.sessions_state import (
    DATA_PREFIX,
    META_FIELDS,
    Clock,
    SessionState,
    UserIndexState,
    int_or_none,
    session_state,
    text_or_none,
    user_index_state,
)

__all__ = [
    "Session",
    "SessionCore",
    "SessionState",
    "SessionStore",
    "UserIndexState",
    "UserSession",
    "session_state",
    "user_index_state",
    "valid_sid",
]

_CREATE = load("session_create")
_TOUCH = load("session_touch")
_INDEX_ADD = load("session_index_add")

_SID = re.compile(r"[A-Za-z0-9_-]{16,128}")


def _pairs(flat: list[Any]) -> dict[str, Any]:
    return {text_or_none(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


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


class SessionCore:
    """Sessions with a sliding idle TTL, an optional absolute max age and a user index."""

    default_sleep: Callable[[float], Any] = staticmethod(time.sleep)

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
        self.sleep = self.default_sleep

    def session_key(self, sid: str) -> str | bytes:
        return key(self.prefix, sid)

    def index_key(self, user_id: KeyPart) -> str | bytes:
        return key(self.prefix, "user", user_id)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _create(self, user_id: str | int, data: Mapping[str, Any] | None = None) -> Steps:
        """Start a session; the index entry is written first so it can never be missing.

        Every script here is idempotent, so redis-py's resend after a lost reply is safe
        (a resent create recognises the session it made).
        """
        uid = str(user_id)
        if not uid:
            raise ValueError("a session needs a non-empty user id")
        sid = secrets.token_urlsafe(32)
        now = self._now_ms()
        fields: list[Any] = ["uid", uid, "created_ms", now, "last_access_ms", now]
        fields += _encode_data(data or {})
        ops: list[Any] = [self._index_op(uid, sid, now, self.ttl_ms)] if self.index_users else []
        ops.append(Script(_CREATE, [self.session_key(sid)], [self.ttl_ms, *fields]))
        if (yield Batch(ops))[-1] != 1:  # 256 random bits collided: refuse, never overwrite
            if self.index_users:
                yield cmd("zrem", self.index_key(uid), sid)
            raise RuntimeError(f"session id collision on {self.session_key(sid)!r}")
        return sid

    def _get(self, sid: str) -> Steps:
        """Read a session and renew its TTL in the same round trip (sliding expiry)."""
        reply = yield from self._touch(sid, full=True)
        if reply is None:
            return None
        ttl_ms, raw = reply
        skey = self.session_key(sid)
        data = {
            name[len(DATA_PREFIX) :]: _decode_value(skey, name, value)
            for name, value in raw.items()
            if name.startswith(DATA_PREFIX)
        }
        created, accessed = (
            int_or_none(raw.get("created_ms")),
            int_or_none(raw.get("last_access_ms")),
        )
        return Session(sid, text_or_none(raw.get("uid")), created, accessed, ttl_ms, data)

    def _update(
        self, sid: str, data: Mapping[str, Any] | None = None, remove: Iterable[str] = ()
    ) -> Steps:
        """Set and delete data fields of a live session; False (and nothing written) if gone."""
        reply = yield from self._touch(sid, full=False, data=data or {}, remove=list(remove))
        return reply is not None

    def _set(self, sid: str, name: str, value: Any) -> Steps:
        """Set one data field of a live session; False if the session is gone."""
        return (yield from self._update(sid, {name: value}))

    def _touch(
        self,
        sid: str,
        full: bool,
        data: Mapping[str, Any] | None = None,
        remove: list[str] | None = None,
    ) -> Steps:
        if not valid_sid(sid):
            return None
        removed = [DATA_PREFIX + _check_name(n) for n in remove or ()]
        now = self._now_ms()
        args = [self.ttl_ms, now, self.max_age_ms, int(full), len(removed), *removed]
        args += _encode_data(data or {})
        # idempotent: the same fields, access time and TTL set again
        reply = yield Script(_TOUCH, [self.session_key(sid)], args)
        if not reply:
            return None
        ttl_ms = int(reply[0])
        raw = _pairs(reply[1:]) if full else {"uid": reply[1]}
        if self.index_users and raw.get("uid") is not None:
            yield self._index_op(text_or_none(raw["uid"]), sid, now, ttl_ms)
        return ttl_ms, raw

    def _index_op(self, uid: str, sid: str, now: int, ttl_ms: int) -> Script:
        args = [sid, now + ttl_ms, ttl_ms + self.index_grace_ms]
        return Script(_INDEX_ADD, [self.index_key(uid)], args)  # idempotent (ZADD GT)

    def _delete(self, sid: str) -> Steps:
        """End a session (logout); True if it existed."""
        if not valid_sid(sid):
            return False
        skey = self.session_key(sid)
        uid, deleted = yield Batch([cmd("hget", skey, "uid"), cmd("delete", skey)])
        if self.index_users and uid is not None:
            yield cmd("zrem", self.index_key(text_or_none(uid)), sid)
        return deleted == 1

    def _delete_all_for_user(self, user_id: str | int, batch: int = 100) -> Steps:
        """Log a user out everywhere; returns how many live sessions were deleted.

        Works batch by batch and removes only the ids it dealt with, so a session
        created meanwhile is either deleted too or keeps its index entry.
        """
        uid = str(user_id)
        index = self.index_key(uid)
        deleted = 0
        while sids := [text_or_none(s) for s in (yield cmd("zrange", index, 0, batch - 1))]:
            owners = yield Batch([cmd("hget", self.session_key(s), "uid") for s in sids])
            mine = [s for s, owner in zip(sids, owners, strict=True) if text_or_none(owner) == uid]
            if mine:
                deleted += sum((yield Batch([cmd("delete", self.session_key(s)) for s in mine])))
            yield cmd("zrem", index, *sids)
        return deleted

    def _list_user_sessions(
        self, user_id: str | int, limit: int = 100, prune_batch: int = 100
    ) -> Steps:
        """Live sessions of a user, most recently used first; prunes dead index entries.

        Entries whose expiry score has passed are checked first (bounded batch), then
        up to ``limit`` others; every id is verified with PTTL and the ones whose
        session is gone (expired, deleted, evicted) are removed from the index.
        """
        uid = str(user_id)
        index = self.index_key(uid)
        now = self._now_ms()
        due, live = yield Batch(
            [
                cmd("zrangebyscore", index, "-inf", now, start=0, num=prune_batch, withscores=True),
                cmd(
                    "zrevrangebyscore",
                    index,
                    "+inf",
                    f"({now}",
                    start=0,
                    num=limit,
                    withscores=True,
                ),
            ]
        )
        scores = {text_or_none(m): s for m, s in [*due, *live]}
        sids = list(scores)
        probes: list[Any] = []
        for s in sids:
            probes += [
                cmd("pttl", self.session_key(s)),
                cmd("hmget", self.session_key(s), *META_FIELDS),
            ]
        replies = yield Batch(probes)
        found, stale, heal = [], [], {}
        for i, sid in enumerate(sids):
            pttl, (owner, created, accessed) = replies[2 * i], replies[2 * i + 1]
            if pttl == -2 or text_or_none(owner) != uid:
                stale.append(sid)
                continue
            if pttl > 0 and scores[sid] < now + pttl - 1000:
                heal[sid] = now + pttl  # renewed without its index refresh landing
            found.append(UserSession(sid, pttl, int_or_none(created), int_or_none(accessed)))
        fixes = [cmd("zrem", index, *stale)] if stale else []
        if heal:
            fixes.append(cmd("zadd", index, heal, gt=True))
        if fixes:
            yield Batch(fixes)
        found.sort(key=lambda s: s.last_access_ms or 0, reverse=True)
        return found[:limit]


class SessionStore(SessionCore):
    """Sessions, blocking calls (the asyncio twin: ``aio.AsyncSessionStore``)."""

    create = blocking(SessionCore._create)
    get = blocking(SessionCore._get)
    update = blocking(SessionCore._update)
    set = blocking(SessionCore._set)
    delete = blocking(SessionCore._delete)
    delete_all_for_user = blocking(SessionCore._delete_all_for_user)
    list_user_sessions = blocking(SessionCore._list_user_sessions)


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
