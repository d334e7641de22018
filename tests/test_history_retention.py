"""Bounded history: a simulated week stays within the documented size, old samples are
downsampled without changing what they say, and the age and size limits hold."""

import re
import time
from pathlib import Path

from dashboard.config import Settings
from dashboard.history import History, queries
from dashboard.history.record import COUNTER, GAUGE, record_samples
from dashboard.history.retention import RAW_KEEP_S, Retention, apply
from dashboard.history.store import Store
from tests.history_support import picture, simulate, store_scan

DOC = (Path(__file__).resolve().parent.parent / "docs" / "history.md").read_text()
WEEK = 7 * 86400


def _documented_week_mb() -> float:
    match = re.search(r"a week at the default interval[^.]*?under (\d+) MB", DOC)
    assert match, "docs/history.md states the size of a week of history"
    return float(match.group(1))


def test_a_simulated_week_at_the_default_interval_stays_within_the_documented_size(tmp_path):
    settings = Settings().updated({"state": str(tmp_path / "week.sqlite")})
    assert settings.history_interval == 60.0  # the default the documentation talks about
    history = History(settings)
    now = time.time()
    samples = simulate(history, now - WEEK, WEEK, interval=settings.history_interval)
    assert samples == WEEK // 60
    history.maintain(now=now)
    history.close()
    size = sum(p.stat().st_size for p in tmp_path.glob("week.sqlite*") if p.suffix != ".lock")
    assert size <= _documented_week_mb() * 1024 * 1024
    assert size <= settings.history_max_mb * 1024 * 1024
    store = Store(str(tmp_path / "week.sqlite"))
    counts = queries.counts(store)
    assert now - counts["first_sample"] > WEEK - 3600  # a week kept, not trimmed to fit
    steps = {r[0] for r in store.query("SELECT DISTINCT step FROM samples")}
    assert steps == {0, 300}  # raw for two days, 5-minute buckets before
    store.close()


def _series(store, metric):
    return queries.series(store, metric, 0)[1]


def test_downsampling_keeps_the_average_of_gauges_and_the_last_value_of_counters(tmp_path):
    store = Store(str(tmp_path / "d.sqlite"))
    now = time.time()
    start = int((now - RAW_KEEP_S - 3 * 3600) // 300 * 300)  # old enough to be folded
    rows = [(start + i * 60, float(i)) for i in range(10)]  # two 5-minute buckets

    def write(conn):
        for ts, v in rows:
            record_samples(conn, ts, [("mem", None, GAUGE, v), ("hits", None, COUNTER, v * 10)])

    store.write([write])
    store.maintain(lambda conn: apply(conn, Retention(), now))
    assert _series(store, "mem") == [(start, 2.0), (start + 300, 7.0)]  # means of 0..4, 5..9
    assert _series(store, "hits") == [(start, 40.0), (start + 300, 90.0)]  # last of each
    store.maintain(lambda conn: apply(conn, Retention(), now))  # idempotent
    assert _series(store, "mem") == [(start, 2.0), (start + 300, 7.0)]
    store.close()


def test_recent_samples_stay_raw(tmp_path):
    store = Store(str(tmp_path / "r.sqlite"))
    now = time.time()
    rows = [(int(now) - i * 60, float(i)) for i in range(60)]
    store.write([lambda conn: [record_samples(conn, t, [("m", None, GAUGE, v)]) for t, v in rows]])
    store.maintain(lambda conn: apply(conn, Retention(), now))
    assert len(_series(store, "m")) == 60
    store.close()


def test_age_limit_drops_old_samples_and_scans(tmp_path):
    store = Store(str(tmp_path / "age.sqlite"))
    now = time.time()
    old, recent = now - 10 * 86400, now - 3600
    store_scan(store, picture("old-1", old, {"a": (1, 1, 0)}))
    store_scan(store, picture("new-1", recent, {"a": (2, 2, 0)}))
    store.write(
        [lambda conn: [record_samples(conn, t, [("m", None, GAUGE, 1.0)]) for t in (old, recent)]]
    )
    store.maintain(lambda conn: apply(conn, Retention(max_age_s=5 * 86400), now))
    assert [s["id"] for s in queries.scans(store)] == ["new-1"]
    assert [t for t, _ in _series(store, "m")] == [int(recent)]
    assert store.query("SELECT COUNT(*) FROM scan_namespaces")[0][0] == 1  # no orphans
    store.close()


def test_size_limit_trims_the_oldest_and_never_the_last_day(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(str(path))
    now = time.time()
    spaces = {f"ns{i}": (1000 + i, 100_000 + i, 10) for i in range(1500)}
    hours = 10 * 24
    for hour in range(hours):  # ten days of hourly scans of 1,500 namespaces: ~20 MB
        store_scan(store, picture(f"{hour}-1", now - hour * 3600, spaces))
    store.write([lambda conn: record_samples(conn, now, [("m", None, GAUGE, 1.0)])])
    limit = 4 * 1024 * 1024
    assert store.size_bytes() > limit
    done = store.maintain(lambda conn: apply(conn, Retention(60 * 86400, limit), now))
    assert done["trimmed_for_size"] > 0
    assert store.size_bytes() <= limit
    kept = [s["finished_at"] for s in queries.scans(store, limit=100000)]
    assert min(kept) > now - (hours - 1) * 3600  # the oldest went
    assert sum(1 for t in kept if t >= now - 86400) == 25  # the last day is whole
    assert queries.series(store, "m", 0)[1]  # the newest sample stayed
    store.close()


def test_old_scans_are_thinned_to_one_an_hour_then_one_a_day(tmp_path):
    store = Store(str(tmp_path / "t.sqlite"))
    now = time.time()
    for i in range(0, 20 * 86400, 600):
        store_scan(store, picture(f"{i}-1", now - i, {"a": (1, 1, 0)}))
    store.maintain(lambda conn: apply(conn, Retention(max_age_s=30 * 86400), now))
    times = [s["finished_at"] for s in queries.scans(store, limit=100000)]
    recent = [t for t in times if t >= now - 2 * 86400]
    middle = [t for t in times if now - 14 * 86400 <= t < now - 2 * 86400]
    oldest = [t for t in times if t < now - 14 * 86400]
    assert len(recent) == sum(1 for i in range(0, 20 * 86400, 600) if i <= 2 * 86400)
    assert 12 * 24 - 2 <= len(middle) <= 12 * 24 + 2  # about one an hour
    assert 5 <= len(oldest) <= 7  # about one a day
    store.close()
