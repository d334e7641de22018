"""Bounded history: downsampling, an age limit and a size limit.

Run by the writer thread at start and every hour (:class:`Retention.apply`):

1. **Downsample.** Raw samples older than :data:`RAW_KEEP_S` (2 days) become 5-minute
   buckets; buckets older than :data:`FINE_KEEP_S` (14 days) become 1-hour buckets. A
   gauge keeps the bucket's average; a counter (evictions, hits...) its last value, so
   rates computed from it stay right.
2. **Thin scans.** Scans older than 2 days: the first of each hour is kept; older
   than 14 days: the first of each day.
3. **Age.** Anything older than ``history_retention_days`` goes.
4. **Size.** While the file holds more than ``history_max_mb``, the oldest tenth of
   what is left goes (never the last day); freed pages are returned to the OS
   (incremental vacuum) and the WAL is truncated.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RAW_KEEP_S = 2 * 86400
FINE_KEEP_S = 14 * 86400
TIERS = ((RAW_KEEP_S, 300), (FINE_KEEP_S, 3600))
SCAN_TIERS = ((RAW_KEEP_S, 3600), (FINE_KEEP_S, 86400))
KEEP_LAST_S = 86400  # the size limit never removes the last day
LOW_WATER = 0.85  # the size limit trims down to this share of the limit
VACUUM_CHUNK_PAGES = 256  # pages given back per step (each step's WAL is truncated)


@dataclass
class Retention:
    """How much history to keep (from the settings)."""

    max_age_s: float = 30 * 86400.0
    max_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        return cls(
            max_age_s=float(settings.history_retention_days) * 86400,
            max_bytes=int(float(settings.history_max_mb) * 1024 * 1024),
        )


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the pages in use (free pages not counted)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return (pages - free) * size


def _mark(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
    return int(float(row[0])) if row else 0


def downsample(conn: sqlite3.Connection, now: float) -> int:
    """Fold old samples into buckets; returns the rows removed.

    Each tier remembers how far it got (``meta``), so a run reads only the samples that
    aged past its cutoff since the previous run; the joins on ``series`` let SQLite walk
    the ``(series, ts)`` primary key instead of the whole table.
    """
    removed = 0
    for keep, step in TIERS:
        cutoff = int((now - keep) // step * step)
        mark = f"downsampled_{step}"
        params = {"step": step, "lo": _mark(conn, mark), "hi": cutoff}
        if params["hi"] <= params["lo"]:
            continue
        conn.execute(
            "INSERT OR REPLACE INTO samples(series, ts, value, step) "
            "SELECT s.series, (s.ts / :step) * :step, AVG(s.value), :step "
            "FROM series r CROSS JOIN samples s ON s.series = r.id "
            "AND s.step < :step AND s.ts >= :lo AND s.ts < :hi "
            "WHERE r.kind = 'gauge' GROUP BY s.series, s.ts / :step",
            params,
        )
        conn.execute(
            "INSERT OR REPLACE INTO samples(series, ts, value, step) "
            "SELECT series, bucket, value, :step FROM ("
            " SELECT s.series AS series, (s.ts / :step) * :step AS bucket, s.value AS value,"
            " MAX(s.ts) FROM series r CROSS JOIN samples s ON s.series = r.id"
            " AND s.step < :step AND s.ts >= :lo AND s.ts < :hi"
            " WHERE r.kind <> 'gauge' GROUP BY s.series, s.ts / :step)",
            params,
        )
        removed += conn.execute(
            "DELETE FROM samples WHERE series IN (SELECT id FROM series) "
            "AND step < :step AND ts >= :lo AND ts < :hi",
            params,
        ).rowcount
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (mark, str(params["hi"]))
        )
    return removed


def thin_scans(conn: sqlite3.Connection, now: float) -> int:
    removed = 0
    for keep, bucket in SCAN_TIERS:
        cutoff = now - keep
        removed += conn.execute(
            "DELETE FROM scans WHERE finished_at < :cutoff AND id NOT IN ("
            " SELECT MIN(id) FROM scans WHERE finished_at < :cutoff"
            " GROUP BY CAST(finished_at / :bucket AS INTEGER))",
            {"cutoff": cutoff, "bucket": bucket},
        ).rowcount
    return removed


def drop_before(conn: sqlite3.Connection, cutoff: float) -> int:
    removed = conn.execute(
        "DELETE FROM samples WHERE series IN (SELECT id FROM series) AND ts < ?", (int(cutoff),)
    ).rowcount
    scans = conn.execute("DELETE FROM scans WHERE finished_at < ?", (cutoff,)).rowcount
    if removed:
        conn.execute(
            "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM samples WHERE series = series.id)"
        )
    return removed + scans


def drop_orphans(conn: sqlite3.Connection) -> None:
    """Rows of scans that are gone, and dictionary entries no scan uses any more."""
    conn.execute("DELETE FROM scan_namespaces WHERE scan NOT IN (SELECT id FROM scans)")
    conn.execute("DELETE FROM scan_findings WHERE scan NOT IN (SELECT id FROM scans)")
    conn.execute("DELETE FROM namespaces WHERE id NOT IN (SELECT ns FROM scan_namespaces)")
    conn.execute("DELETE FROM findings WHERE id NOT IN (SELECT finding FROM scan_findings)")


def oldest(conn: sqlite3.Connection) -> float | None:
    row = conn.execute(
        "SELECT MIN(t) FROM (SELECT (SELECT MIN(ts) FROM samples WHERE series = r.id) AS t "
        "FROM series r UNION ALL SELECT MIN(finished_at) FROM scans)"
    ).fetchone()
    return None if row[0] is None else float(row[0])


def _in_tx(conn: sqlite3.Connection, job: Callable[[], Any]) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = job()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def reclaim(conn: sqlite3.Connection) -> None:
    """Give freed pages back to the OS and truncate the WAL, a chunk at a time so the
    WAL (which logs the moved pages) stays small too."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        while conn.execute("PRAGMA freelist_count").fetchone()[0] > 0:
            # executescript steps the pragma to the end (execute frees a single page)
            conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_CHUNK_PAGES});")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    else:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        if pages and free / pages > 0.25:
            conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def apply(conn: sqlite3.Connection, policy: Retention, now: float | None = None) -> dict:
    """Run every step; returns what was done (for the status and the tests)."""
    now = time.time() if now is None else now
    done = {"downsampled": 0, "thinned_scans": 0, "expired": 0, "trimmed_for_size": 0}

    def age_and_tiers() -> None:
        done["downsampled"] = downsample(conn, now)
        done["thinned_scans"] = thin_scans(conn, now)
        done["expired"] = drop_before(conn, now - policy.max_age_s)
        if done["thinned_scans"] or done["expired"]:
            drop_orphans(conn)

    _in_tx(conn, age_and_tiers)
    while used_bytes(conn) > policy.max_bytes * LOW_WATER:
        first = oldest(conn)
        if first is None or first >= now - KEEP_LAST_S:
            break
        cutoff = min(first + max((now - first) / 10, 3600), now - KEEP_LAST_S)

        def trim(cutoff: float = cutoff) -> int:
            removed = drop_before(conn, cutoff)
            drop_orphans(conn)
            return removed

        done["trimmed_for_size"] += _in_tx(conn, trim)
        if used_bytes(conn) <= policy.max_bytes * LOW_WATER:
            break
    reclaim(conn)
    done["bytes"] = used_bytes(conn)
    return done
