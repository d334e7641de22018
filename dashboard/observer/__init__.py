"""The observer: one shared, continuously refreshed picture of each inspected Redis.

* ``observer``: :class:`Observer`, the scheduler and the sections of one target.
* ``section``: :class:`Section`, one refreshed reading with its freshness.
* ``keyspace``: the keyspace cycle (one scan feeding keyspace, audit, metrics).
* ``readers``: what each live section reads.
* ``topology``: which errors mean the node map moved, and re-reading it.

Views read the picture (``Observer.read``, ``Observer.scan_picture``); only explicit
actions and key detail go to Redis on a request.
"""

from dashboard.observer.observer import Observer, UnknownSection
from dashboard.observer.section import Section

__all__ = ["Observer", "Section", "UnknownSection"]
