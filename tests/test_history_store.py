"""The state store: WAL mode, one writer, migrations, and a clear warning with an
in-memory fallback (never a crash) for a damaged, unwritable, locked or newer file."""

import os
import sqlite3
import time
from pathlib import Path

import pytest

from dashboard.config import Settings
from dashboard.history import History, queries, schema
from dashboard.history.paths import state_dir, state_file
from dashboard.history.store import Store
from tests.history_support import picture, store_scan

NOW = time.time()


def _settings(path, **extra):
    return Settings().updated({"state": str(path), **extra})


def test_new_file_is_wal_versioned_and_survives_reopen(tmp_path):
    path = tmp_path / "a.sqlite"
    store = Store(str(path), target="t", url="redis://x:6379/0")
    assert store.mode == "file" and store.warning is None
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert store.query("PRAGMA user_version")[0][0] == schema.VERSION
    store_scan(store, picture("1-1", time.time(), {"user": (10, 1000, 5)}))
    store.close()
    again = Store(str(path))
    assert again.migrated == []  # already at the current version: nothing re-run
    [scan] = queries.scans(again)
    assert scan["id"] == "1-1" and scan["keys"] == 10
    assert queries.namespaces(again, scan["row"])["dXNlcg"]["ttl_coverage"] == 0.5
    again.close()


def test_corrupt_file_gives_a_warning_and_memory_and_is_left_alone(tmp_path, caplog):
    path = tmp_path / "bad.sqlite"
    junk = b"this is not a database " * 400
    path.write_bytes(junk)
    store = Store(str(path))
    assert store.mode == "memory"
    assert "damaged" in store.warning and str(path) in store.warning
    assert "damaged" in caplog.text
    store_scan(store, picture("1-1", time.time(), {"a": (1, 1, 0)}))  # still records
    assert len(queries.scans(store)) == 1
    store.close()
    assert path.read_bytes() == junk


def test_truncated_database_counts_as_damaged(tmp_path):
    path = tmp_path / "cut.sqlite"
    store = Store(str(path))
    for i in range(30):
        store_scan(
            store, picture(f"{i}-1", time.time() + i, {f"n{j}": (j, j * 100, 0) for j in range(40)})
        )
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + b"\x00" * 1000 + data[len(data) // 2 + 1000 :])
    damaged = Store(str(path))
    assert damaged.mode == "memory" and damaged.warning
    damaged.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only folders anyway")
def test_unwritable_folder_falls_back_to_memory(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        store = Store(str(folder / "sub" / "x.sqlite"))
        assert store.mode == "memory" and "cannot be written" in store.warning
        store.close()
    finally:
        folder.chmod(0o700)


def test_a_folder_that_is_a_file_falls_back_to_memory(tmp_path):
    (tmp_path / "plain").write_text("x")
    store = Store(str(tmp_path / "plain" / "x.sqlite"))
    assert store.mode == "memory" and "cannot be written" in store.warning
    store.close()


def test_a_file_that_is_a_folder_falls_back_to_memory(tmp_path):
    (tmp_path / "x.sqlite").mkdir()
    store = Store(str(tmp_path / "x.sqlite"))
    assert store.mode == "memory" and store.warning
    store.close()


def test_one_writer_per_file(tmp_path):
    path = str(tmp_path / "one.sqlite")
    first = Store(path)
    second = Store(path)
    assert first.mode == "file"
    assert second.mode == "memory" and "another redis-dashboard process" in second.warning
    reader = Store(path, read_only=True)  # reading beside the writer is fine
    assert reader.mode == "read-only"
    second.close()
    first.close()
    third = Store(path)  # the lock went with the first store
    assert third.mode == "file"
    third.close()
    reader.close()


def test_newer_schema_is_refused_not_misread(tmp_path):
    path = tmp_path / "new.sqlite"
    Store(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.close()
    store = Store(str(path))
    assert store.mode == "memory" and "newer" in store.warning
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION + 1
    conn.close()


def test_migrations_run_in_order_once(tmp_path, monkeypatch):
    path = tmp_path / "m.sqlite"
    Store(str(path)).close()
    extra = "CREATE TABLE added_later (x INTEGER); INSERT INTO added_later VALUES (7)"
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, extra])
    monkeypatch.setattr(schema, "VERSION", len(schema.MIGRATIONS))
    store = Store(str(path))
    assert store.migrated == [schema.VERSION]
    assert store.query("SELECT x FROM added_later")[0][0] == 7
    store.close()
    assert Store(str(path)).migrated == []


def test_failed_migration_leaves_the_old_version(tmp_path, monkeypatch):
    path = tmp_path / "f.sqlite"
    store = Store(str(path))
    for i in range(2):  # two scans with the same key count: the new unique index fails here
        store_scan(store, picture(f"{i}-1", NOW + i, {"a": (5, 5, 0)}))
    store.close()
    broken = "CREATE TABLE added (x); CREATE UNIQUE INDEX one_size ON scans(keys)"
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    monkeypatch.setattr(schema, "VERSION", len(schema.MIGRATIONS))
    store = Store(str(path))
    assert store.mode == "memory" and store.warning
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS) - 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "added" not in tables  # the whole migration rolled back, not half of it
    conn.close()


def test_writer_writes_in_order_and_flushes_on_close(tmp_path):
    history = History(_settings(tmp_path / "w.sqlite"))
    for i in range(50):
        history.writer.submit(
            lambda conn, i=i: store_scan_op(conn, picture(f"{i:03d}-1", NOW + i, {"a": (i, i, 0)}))
        )
    history.close()
    store = Store(str(tmp_path / "w.sqlite"))
    assert [s["id"] for s in queries.scans(store)][:3] == ["049-1", "048-1", "047-1"]
    assert len(queries.scans(store)) == 50
    store.close()


def store_scan_op(conn, pic):
    from dashboard.history.record import record_scan

    record_scan(conn, pic)


def test_writer_survives_a_failing_operation(tmp_path):
    history = History(_settings(tmp_path / "e.sqlite"))

    def broken(conn):
        raise ValueError("a bug in one op")

    history.writer.submit(broken)
    assert history.writer.flush()
    assert history.writer.errors == 1 and "a bug" in history.writer.last_error
    history.writer.submit(lambda conn: store_scan_op(conn, picture("1-1", NOW, {"a": (1, 1, 0)})))
    assert history.writer.flush()
    assert len(queries.scans(history.store)) == 1
    assert history.store.mode == "file"
    history.close()


def test_writes_that_keep_failing_move_history_to_memory(tmp_path):
    history = History(_settings(tmp_path / "full.sqlite"))

    def disk_full(conn):
        raise sqlite3.OperationalError("database or disk is full")

    for _ in range(3):
        history.writer.submit(disk_full)
        assert history.writer.flush()
    assert history.store.mode == "memory" and "disk is full" in history.store.warning
    history.writer.submit(lambda conn: store_scan_op(conn, picture("1-1", NOW, {"a": (1, 1, 0)})))
    assert history.writer.flush()
    assert len(queries.scans(history.store)) == 1
    history.close()


def test_default_location_follows_xdg_and_one_file_per_target(tmp_path):
    env = {"XDG_STATE_HOME": str(tmp_path)}
    assert state_dir(env) == tmp_path / "redis-dashboard"
    assert state_dir({"XDG_STATE_HOME": "relative/ignored"}).parts[-3:] == (
        ".local",
        "state",
        "redis-dashboard",
    )
    a = state_file("", False, "cache", "redis://h:6379/0", environ=env)
    b = state_file("", False, "queues", "redis://h:6380/0", environ=env)
    db1 = state_file("", False, "cache", "redis://h:6379/1", environ=env)
    assert a == str(tmp_path / "redis-dashboard" / "cache.sqlite")
    assert len({a, b, db1}) == 3
    assert state_file("", True, "cache", "redis://h", environ=env) == ""


def test_state_path_is_a_file_or_a_folder(tmp_path):
    assert state_file(str(tmp_path / "h.db"), False, "x", "redis://h") == str(tmp_path / "h.db")
    assert state_file(str(tmp_path / "h.db"), False, "x", "redis://h", several=True) == str(
        tmp_path / "h-x.db"
    )
    assert state_file(str(tmp_path / "dir"), False, "x", "redis://h") == str(
        tmp_path / "dir" / "x.sqlite"
    )


def test_what_is_queued_is_written_when_the_process_exits(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "exit.sqlite"
    code = f"""
import time
from dashboard.config import Settings
from dashboard.history import History
from dashboard.history.record import record_scan
from tests.history_support import picture
history = History(Settings().updated({{"state": {str(path)!r}}}))
def slow(conn):
    time.sleep(0.3)
    record_scan(conn, picture("9-1", time.time(), {{"a": (1, 1, 0)}}))
history.writer.submit(slow)
"""  # exits right away: nothing closes the history but the exit hook
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
    store = Store(str(path))
    assert [s["id"] for s in queries.scans(store)] == ["9-1"]
    store.close()
