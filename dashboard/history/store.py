"""One target's state file (SQLite, WAL mode), or its in-memory stand-in.

* **One writer.** Only the :class:`~dashboard.history.writer.Writer` thread writes, on
  its own connection; the process takes an exclusive lock (``<file>.lock``) so a second
  dashboard on the same file cannot write it too. Views read on a read-only connection,
  which WAL mode lets run while the writer writes.
* **Never a crash.** A damaged file, one that cannot be written, one another process
  writes, or one from a newer dashboard: the store says why (:attr:`Store.warning`,
  logged once and shown on the history pages) and keeps this run's history in memory.
  The file is left untouched. A write that keeps failing later (a full disk) moves the
  store to memory the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dashboard.history.schema import VERSION as SCHEMA_VERSION
from dashboard.history.schema import SchemaTooNew, migrate
from dashboard.history.schema import version as schema_version

try:  # POSIX; elsewhere the one-writer rule rests on the user
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

WAL_LIMIT_BYTES = 1024 * 1024
WAL_CHECKPOINT_PAGES = 256  # the WAL is folded into the file every ~1 MB
BUSY_TIMEOUT_S = 5.0


class StoreUnavailable(Exception):
    """Why a state file cannot be used (the message is shown to the user)."""


class Store:
    """Rows of one target's history: written by one writer, read by every view."""

    def __init__(
        self, path: str, *, target: str = "", url: str = "", read_only: bool = False
    ) -> None:
        self.requested_path = path
        self.target, self.url = target, url
        self.warning: str | None = None
        self.mode = "memory"
        self.path: str | None = None
        self._lock_file: Any = None
        self._write_lock = threading.RLock()
        self._read_lock = threading.RLock()
        self._writer: sqlite3.Connection
        self._reader: sqlite3.Connection
        self.opened_at = time.time()
        self.series_ids: dict[tuple[Any, ...], int] = {}  # the writer's cache (record.py)
        self.migrated: list[int] = []
        if read_only:
            self._open_read_only(path)  # raises StoreUnavailable: the caller says why
        elif path:
            try:
                self._open_file(path)
            except StoreUnavailable as exc:
                self._release_lock()
                self._memory(str(exc))
        else:
            self._memory(None)

    # --- opening ---------------------------------------------------------------------

    def _open_file(self, path: str) -> None:
        where = Path(path)
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(self._unwritable(path, exc.strerror or str(exc))) from exc
        self._take_lock(path)
        try:
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(self._unwritable(path, str(exc))) from exc
        try:
            self._prepare(conn, new=not where.exists() or where.stat().st_size == 0)
            reader = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_S
            )
            reader.row_factory = sqlite3.Row
        except SchemaTooNew as exc:
            conn.close()
            raise StoreUnavailable(f"the state file {path} cannot be used: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            text = str(exc)
            if isinstance(exc, sqlite3.OperationalError) and _unwritable(text):
                raise StoreUnavailable(self._unwritable(path, text)) from exc
            raise StoreUnavailable(
                f"the state file {path} is damaged ({text}); history is kept in memory for "
                "this run and the file is left as it is: move it away to start a new one"
            ) from exc
        self._writer, self._reader = conn, reader
        self.mode, self.path = "file", path

    def _open_read_only(self, path: str) -> None:
        """Read a file another process writes (the CLI beside a running dashboard)."""
        if not Path(path).is_file():
            raise StoreUnavailable(f"no state file at {path}")
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_S
            )
            conn.row_factory = sqlite3.Row
            found = schema_version(conn)
            if found == 0 or found > SCHEMA_VERSION:
                conn.close()
                raise StoreUnavailable(
                    f"the state file {path} has schema version {found}; this dashboard reads "
                    f"1 to {SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"the state file {path} cannot be read ({exc})") from exc
        self._writer = self._reader = conn
        self.mode, self.path = "read-only", path

    def _prepare(self, conn: sqlite3.Connection, *, new: bool) -> None:
        if new:  # only takes effect before the first table is made
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"WAL mode refused (journal mode {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {check}")
        self.migrated = migrate(conn)
        self._stamp(conn)

    def _stamp(self, conn: sqlite3.Connection) -> None:
        """Write once at open: proves the file is writable, records whose history it is."""
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            [("target", self.target), ("url", self.url), ("opened_at", str(time.time()))],
        )
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('created_at', ?)", (str(time.time()),)
        )
        conn.execute("COMMIT")

    def _take_lock(self, path: str) -> None:
        if fcntl is None:
            return
        try:
            handle = open(path + ".lock", "a+")  # noqa: SIM115 - held for the store's life
        except OSError as exc:
            raise StoreUnavailable(self._unwritable(path, exc.strerror or str(exc))) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise StoreUnavailable(
                f"the state file {path} is being written by another redis-dashboard process; "
                "history is kept in memory for this run (give each dashboard its own --state)"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    @staticmethod
    def _unwritable(path: str, reason: str) -> str:
        return (
            f"the state file {path} cannot be written ({reason}); history is kept in memory "
            "for this run"
        )

    def _memory(self, warning: str | None) -> None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        migrate(conn)
        self._stamp(conn)
        self._writer = self._reader = conn
        self._read_lock = self._write_lock  # one connection: reads wait for a write
        self.mode, self.path = "memory", None
        if warning:
            self.warning = warning
            log.warning("history: %s", warning)

    def fall_back(self, reason: str) -> None:
        """Writes to the file keep failing: keep this run's history in memory from now on."""
        with self._write_lock, self._read_lock:
            if self.mode != "file":
                return
            old_writer, old_reader, path = self._writer, self._reader, self.path
            self.series_ids.clear()
            self._memory(
                f"writing the state file {path} failed ({reason}); history is kept in memory "
                "from now on (the file keeps what was written before)"
            )
            for conn in (old_writer, old_reader):
                conn.close()
            self._release_lock()

    # --- writing (the writer thread) and reading (views) -------------------------------

    def write(self, ops: Iterable[Callable[[sqlite3.Connection], Any]]) -> None:
        """Run ``ops`` in one transaction on the writer connection."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    op(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def maintain(self, job: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``job`` on the writer connection outside a transaction (retention, vacuum)."""
        with self._write_lock:
            self.series_ids.clear()  # retention may drop series
            return job(self._writer)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Rows for a view (read-only connection; WAL lets it read while the writer writes)."""
        with self._read_lock:
            return self._reader.execute(sql, tuple(params)).fetchall()

    def size_bytes(self) -> int:
        """What the history takes: the file and its WAL (in memory: the pages in use)."""
        if self.mode == "file" and self.path:
            total = 0
            for suffix in ("", "-wal"):
                with contextlib.suppress(OSError):
                    total += os.stat(self.path + suffix).st_size
            return total
        with self._read_lock:
            pages = self._reader.execute("PRAGMA page_count").fetchone()[0]
            size = self._reader.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            try:
                if self.mode == "file":
                    self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.debug("history: checkpoint at close failed: %s", exc)
            for conn in {id(self._writer): self._writer, id(self._reader): self._reader}.values():
                conn.close()
            self._release_lock()


def _unwritable(text: str) -> bool:
    text = text.lower()
    return any(
        part in text
        for part in ("readonly", "read-only", "unable to open", "permission", "disk i/o", "full")
    )
