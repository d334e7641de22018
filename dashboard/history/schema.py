"""The state file's schema and its migrations.

``PRAGMA user_version`` holds the schema version. :data:`MIGRATIONS` is an ordered list:
migration ``n`` (1-based) takes a file from version ``n - 1`` to ``n``. Opening a file
runs the missing ones in one transaction each, so an old file is upgraded in place and a
file from a newer dashboard is refused (its history is kept untouched) instead of
being misread.

Tables (details in docs/history.md):

* ``scans``: one row per finished keyspace scan (totals, settings, top keys, audit summary).
* ``namespaces``: the namespace dictionary (its address and display path), so
  ``scan_namespaces`` rows are small integers.
* ``scan_namespaces``: per scan and namespace: keys, bytes, TTL coverage, types, top keys.
* ``findings`` / ``scan_findings``: the audit findings of each scan (dictionary + rows).
* ``series`` / ``samples``: the time series of server facts and live state
  (``step`` 0: a raw sample; 300 or 3600: an average over that many seconds).
"""

from __future__ import annotations

import sqlite3

V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE scans (
    id INTEGER PRIMARY KEY,
    scan_id TEXT NOT NULL UNIQUE,
    finished_at REAL NOT NULL,
    started_at REAL,
    duration_s REAL,
    reason TEXT,
    source TEXT NOT NULL DEFAULT 'serve',
    scanned INTEGER,
    keys INTEGER NOT NULL,
    bytes INTEGER,  -- null: MEMORY USAGE unavailable (unknown, not 0)
    with_ttl INTEGER NOT NULL,
    without_ttl INTEGER NOT NULL,
    namespaces INTEGER NOT NULL,
    folded_keys INTEGER NOT NULL DEFAULT 0,
    estimated INTEGER NOT NULL DEFAULT 0,
    path TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    recorded INTEGER NOT NULL DEFAULT 0,
    min_recorded_bytes INTEGER,
    top_keys TEXT NOT NULL DEFAULT '[]',
    audit TEXT
);
CREATE INDEX scans_finished ON scans(finished_at);
CREATE TABLE namespaces (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    kind TEXT NOT NULL
);
CREATE TABLE scan_namespaces (
    scan INTEGER NOT NULL,
    ns INTEGER NOT NULL,
    parent INTEGER,
    depth INTEGER NOT NULL,
    keys INTEGER NOT NULL,
    bytes INTEGER,  -- null: MEMORY USAGE unavailable (unknown, not 0)
    with_ttl INTEGER NOT NULL,
    without_ttl INTEGER NOT NULL,
    types TEXT NOT NULL,
    top TEXT,
    PRIMARY KEY (scan, ns)
) WITHOUT ROWID;
CREATE TABLE findings (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    subject TEXT NOT NULL,
    subject_kind TEXT,
    title TEXT,
    UNIQUE (rule, subject, severity)
);
CREATE TABLE scan_findings (
    scan INTEGER NOT NULL,
    finding INTEGER NOT NULL,
    message TEXT,
    PRIMARY KEY (scan, finding)
) WITHOUT ROWID;
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    metric TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'gauge',
    UNIQUE (metric, labels)
);
CREATE TABLE samples (
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL,
    step INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
"""

MIGRATIONS: list[str] = [V1]
VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The file was written by a newer dashboard (a schema version this one does not know)."""


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the file to :data:`VERSION`; returns the versions applied (empty: up to date)."""
    current = version(conn)
    if current > VERSION:
        raise SchemaTooNew(
            f"schema version {current} is newer than this dashboard's ({VERSION}): "
            "upgrade redis-dashboard, or point --state at another file"
        )
    applied = []
    for number in range(current + 1, VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(number)
    return applied


def _statements(script: str) -> list[str]:
    """A migration script split into statements (executescript would commit on its own)."""
    return [s.strip() for s in script.split(";") if s.strip()]
