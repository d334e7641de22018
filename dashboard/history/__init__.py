"""History: what the observer saw, kept in an embedded SQLite state store per target.

* ``paths``: where a target's state file lives (XDG state dir, ``--state``, ``--no-state``).
* ``schema``: tables and migrations (``PRAGMA user_version``).
* ``store``: the file (WAL mode, one writer, a lock file) or its in-memory stand-in.
* ``writer``: the one writer thread and its bounded queue.
* ``record`` / ``sampling``: scans and samples turned into rows; the observer listener.
* ``retention``: downsampling, age and size limits.
* ``queries``: reads for the views, the compare and the CLI.
* ``compare``: two scans side by side; ``trends``: chart data; ``charts``: SVG geometry.
* ``metrics``: the Prometheus exposition of the observer's picture.
* ``service``: :class:`History`, one target's store + writer + recorder.

See docs/history.md and docs/metrics.md.
"""

from dashboard.history.service import History, disabled_status

__all__ = ["History", "disabled_status"]
