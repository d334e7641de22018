"""Rendered pages kept per version of the picture they show.

Many viewers of one page see the same reading, so its HTML is rendered once per
reading, not once per request: a view passes a *version* (which reading, which
generation, its state) and :func:`cached_render` keeps the HTML under (template,
fragment or page, path and query, version) in a bounded LRU.

Two parts of a page differ per request and are patched in after the cache:

* the session's CSRF token (rendered as a placeholder, then replaced);
* the data's age: ``data-age-ms`` and the ``.age`` text are recomputed from the
  reading's ``as_of`` at answer time, so a cached page never claims a younger age.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from flask import g

from dashboard.web.filters import human_ms

CSRF_PLACEHOLDER = "\x00csrf-token\x00"
MAX_ENTRIES = 256
MAX_BYTES = 32 * 1024 * 1024
_AGE_ATTR = re.compile(r'data-as-of="([0-9.]+)" data-age-ms="\d*"')
_AGE_TEXT = re.compile(r'<span class="age" data-of="([0-9.]+)">[^<]*</span>')


class RenderCache:
    """A thread-safe LRU of rendered HTML, bounded by entries and bytes."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[Hashable, str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> str | None:
        with self._lock:
            html = self._items.get(key)
            if html is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return html

    def put(self, key: Hashable, html: str) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            if len(html) > self.max_bytes // 4:
                return  # one huge page must not flush everything else
            self._items[key] = html
            self._bytes += len(html)
            while self._items and (
                len(self._items) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


def _ages(html: str, now: float) -> str:
    def attr(match: re.Match[str]) -> str:
        age = max(0, int((now - float(match.group(1))) * 1000))
        return f'data-as-of="{match.group(1)}" data-age-ms="{age}"'

    def text(match: re.Match[str]) -> str:
        age = max(0.0, (now - float(match.group(1))) * 1000)
        return f'<span class="age" data-of="{match.group(1)}">{human_ms(age)}</span>'

    return _AGE_TEXT.sub(text, _AGE_ATTR.sub(attr, html))


def cached_render(
    cache: RenderCache, key: Hashable, render: Callable[[], str], token: Callable[[], str]
) -> str:
    """The page for ``key`` (rendered once), with this request's token and ages."""
    html = cache.get(key)
    if html is None:
        g.render_for_cache = True
        try:
            html = render()
        finally:
            g.render_for_cache = False
        cache.put(key, html)
    return _ages(html.replace(CSRF_PLACEHOLDER, token()), time.time())
