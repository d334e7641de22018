"""Cache-aside, write-through, tag invalidation and stampede protection on Redis.

Key layout (``prefix`` defaults to ``cache``; details in docs/patterns/cache.md):

* ``<prefix>:entry:<key>`` string: one envelope (``codecs``), PX = jittered TTL + grace;
  ``delete`` leaves a short tombstone there.
* ``<prefix>:lock:<key>`` string: recompute lock token, PX ``lock_timeout``.
* ``<prefix>:tag:<tag>`` string: the tag's current version token, PX ``tag_ttl``.
* ``<prefix>:stats`` hash: counters flushed by every process, PX 1 day.

No command or script touches two keys, so nothing needs a hash tag in Redis
Cluster. Tags use version stamps instead of member sets: an entry records each
tag's version as it was *before* its loader ran; a tag invalidation writes a new
token, so every entry stamped earlier (including one a slow loader is writing
right now) no longer matches and is a miss. Entries are stored with
``lua/cache_store.lua``, which refuses to overwrite a different write (a newer
value or a tombstone) than the one the writer saw before reading its source: the
classic "stale set after delete" race of cache-aside cannot land.

The logic is one core (:class:`CacheCore`, in :mod:`dashboard.patterns.cache_core`)
run by two shells: :class:`Cache` (blocking) and
:class:`dashboard.patterns.aio.AsyncCache` (asyncio; loaders may be coroutines).
Every write here is idempotent under redis-py's resend (SET of the same bytes, a
compare-and-set that finds its own write id, a compare-and-delete).
"""

from __future__ import annotations

from dashboard.patterns.cache_core import MISS, CacheCore, CacheError
from dashboard.patterns.codecs import BYTES, JSON, EntryInfo, entry_info, read_stats
from dashboard.patterns.runtime import blocking

__all__ = [
    "BYTES",
    "JSON",
    "MISS",
    "Cache",
    "CacheCore",
    "CacheError",
    "EntryInfo",
    "entry_info",
    "read_stats",
]


class Cache(CacheCore):
    """Cache-aside with negative caching, tags, write-through and stampede control
    (blocking calls; see :class:`CacheCore` for the settings)."""

    get = blocking(CacheCore._get)
    set = blocking(CacheCore._set)
    delete = blocking(CacheCore._delete)
    invalidate_tags = blocking(CacheCore._invalidate_tags)
    get_or_set = blocking(CacheCore._get_or_set)
    write_through = blocking(CacheCore._write_through)
    flush_stats = blocking(CacheCore._flush_stats)
