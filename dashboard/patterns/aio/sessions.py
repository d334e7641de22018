"""Sessions on ``redis.asyncio``: the async shell over the same core and scripts."""

from __future__ import annotations

import asyncio

from dashboard.patterns.runtime import awaiting
from dashboard.patterns.sessions import SessionCore


class AsyncSessionStore(SessionCore):
    """:class:`dashboard.patterns.sessions.SessionStore` for asyncio (same keys,
    scripts, sliding TTL and user index)."""

    default_sleep = staticmethod(asyncio.sleep)

    create = awaiting(SessionCore._create)
    get = awaiting(SessionCore._get)
    update = awaiting(SessionCore._update)
    set = awaiting(SessionCore._set)
    delete = awaiting(SessionCore._delete)
    delete_all_for_user = awaiting(SessionCore._delete_all_for_user)
    list_user_sessions = awaiting(SessionCore._list_user_sessions)
