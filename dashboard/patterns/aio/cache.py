"""Cache-aside on ``redis.asyncio``: the async shell over the same core, envelope and scripts."""

from __future__ import annotations

import asyncio

from dashboard.patterns.cache_core import CacheCore
from dashboard.patterns.runtime import awaiting


class AsyncCache(CacheCore):
    """:class:`dashboard.patterns.cache.Cache` for asyncio: the same keys, envelopes,
    tags, XFetch and single-flight recompute lock (across tasks and processes).
    Loaders and ``write_through`` stores may be plain functions or coroutine
    functions; waiting for another task's value sleeps with ``asyncio.sleep``."""

    default_sleep = staticmethod(asyncio.sleep)

    get = awaiting(CacheCore._get)
    set = awaiting(CacheCore._set)
    delete = awaiting(CacheCore._delete)
    invalidate_tags = awaiting(CacheCore._invalidate_tags)
    get_or_set = awaiting(CacheCore._get_or_set)
    write_through = awaiting(CacheCore._write_through)
    flush_stats = awaiting(CacheCore._flush_stats)
