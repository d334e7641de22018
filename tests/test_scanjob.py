"""The scan as a background job: progress, cancel/resume, errors, sampling, caching."""

import json
import threading

import pytest
import redis

from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import CANCELLED, DONE, FAILED, IDLE, ScanJob, scan_keyspace


def load(r, n=3000, namespaces=("a", "b", "c")):
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        ns = namespaces[i % len(namespaces)]
        if i % 4 == 0:
            pipe.hset(f"{ns}:h:{i}", mapping={"f": i, "g": "x" * (i % 30)})
        else:
            pipe.set(f"{ns}:s:{i}", "v" * (i % 100))
    pipe.execute()


def small(**kw):
    """Small pages so that a few thousand keys make many batches."""
    kw.setdefault("max_count", 100)
    kw.setdefault("start_count", 100)
    return ScanOptions(**kw)


def test_progress_moves_up_to_done(r):
    load(r)
    seen = []
    job = ScanJob(r, small())
    job.on_batch = lambda batch: seen.append(job.snapshot(include_result=False))
    assert job.snapshot()["state"] == IDLE and job.result() is None
    snap = job.run()
    assert snap["state"] == DONE and snap["progress"] == 1.0
    assert snap["dbsize"] == 3000 and snap["scanned"] == 3000 and snap["analysed"] == 3000
    progress = [s["progress"] for s in seen]
    assert len(progress) > 10 and progress == sorted(progress)
    assert 0 < progress[0] < 1
    assert all(s["state"] == "running" for s in seen)
    assert snap["result"]["tree"]["keys"] == 3000 and snap["result"]["estimated"] is False
    assert snap["batches"] == len(seen) and snap["max_batch_ms"] > 0
    json.dumps(snap)


def test_background_thread_and_rescan(r):
    load(r, 500)
    times = iter(range(1000, 2000, 10))
    job = ScanJob(r, clock=lambda: next(times))
    assert job.start() is True
    assert job.wait(30)
    first = job.snapshot()
    assert first["state"] == DONE and first["result"]["tree"]["keys"] == 500
    assert first["age_s"] > 0  # the clock moved on since finished_at
    assert job.start() is False  # finished: results stay cached until a re-scan
    r.set("a:s:new", "v")
    assert job.rescan() is True
    assert job.wait(30)
    second = job.snapshot()
    assert second["result"]["tree"]["keys"] == 501
    assert second["finished_at"] > first["finished_at"]


def test_cancel_then_resume_gives_the_same_totals(r):
    load(r)
    reference = scan_keyspace(r, small())["result"]

    batches = 0
    job = ScanJob(r, small())

    def cancel_after_three(batch):
        nonlocal batches
        batches += 1
        if batches == 3:
            job.cancel()

    job.on_batch = cancel_after_three
    snap = job.run()
    assert snap["state"] == CANCELLED and snap["resumable"]
    assert 0 < snap["scanned"] < 3000 and job.result() is None
    job.on_batch = None
    snap = job.run()  # resume from the saved cursor
    assert snap["state"] == DONE and snap["runs"] == 2
    assert snap["scanned"] == 3000
    assert snap["result"]["tree"] == reference["tree"]


def test_a_dropped_connection_is_retried_by_itself(r):
    load(r)
    reference = scan_keyspace(r, small())["result"]
    calls = 0

    def flaky(keys):  # fails between a page's SCAN and its facts, once
        nonlocal calls
        calls += 1
        if calls == 5:
            raise redis.ConnectionError("Connection reset by peer")

    snap = ScanJob(r, small(), on_keys=flaky).run()
    assert snap["state"] == DONE and snap["runs"] == 1 and snap["restarts"] == 0
    assert snap["scanned"] == 3000  # the failed page was retried, not skipped or doubled
    assert snap["result"]["tree"] == reference["tree"]
    retries = [e for e in snap["events"] if e["kind"] == "retry"]
    assert len(retries) == 1 and "Connection reset" in retries[0]["reason"]


def test_a_lasting_outage_fails_resumably_and_resume_finishes(r):
    load(r)
    reference = scan_keyspace(r, small())["result"]
    calls, down = 0, True

    def outage(keys):
        nonlocal calls
        calls += 1
        if calls >= 5 and down:
            raise redis.ConnectionError("Connection refused")

    job = ScanJob(r, small(topology_wait_s=0), on_keys=outage)
    snap = job.run()
    assert snap["state"] == FAILED and snap["resumable"]
    assert "unreachable" in snap["error"] and "Connection refused" in snap["error"]
    assert job.result() is None
    down = False
    snap = job.run()
    assert snap["state"] == DONE and snap["runs"] == 2
    assert snap["scanned"] == 3000
    assert snap["result"]["tree"] == reference["tree"]


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (redis.AuthenticationError("WRONGPASS invalid username-password pair"), False),
        (redis.exceptions.NoPermissionError("NOPERM no permissions to run 'scan'"), False),
        (redis.BusyLoadingError("LOADING Redis is loading the dataset in memory"), True),
        (redis.TimeoutError("Timeout reading from socket"), True),
    ],
)
def test_only_topology_and_transient_errors_are_retried(r, error, retried):
    load(r, 500)
    calls = 0

    def once(keys):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise error

    snap = ScanJob(r, small(), on_keys=once).run()
    kinds = [e["kind"] for e in snap["events"]]
    if retried:
        assert snap["state"] == DONE and kinds.count("retry") == 1
        assert snap["result"]["tree"]["keys"] == 500
    else:  # auth and ACL errors would fail again: reported at once, not hidden by retries
        assert snap["state"] == FAILED and "retry" not in kinds


def test_a_failing_hook_fails_the_job_cleanly(r):
    load(r, 1000)

    def boom(batch):
        raise ValueError("hook broke")

    snap = ScanJob(r, small(), on_batch=boom).run()
    assert snap["state"] == FAILED and "ValueError: hook broke" in snap["error"]
    assert not [t for t in threading.enumerate() if t.name == "keyspace-scan-fetch"]


def test_sampling_extrapolates_and_says_so(r):
    pipe = r.pipeline(transaction=False)
    for i in range(6000):
        pipe.set(f"{'hot' if i % 5 == 0 else 'cold'}:item:{i}", "v")
    pipe.execute()
    snap = scan_keyspace(r, small(sample_keys=1500))
    result = snap["result"]
    assert result["estimated"] is True
    assert 1500 <= snap["analysed"] < 6000
    assert result["factor"] == pytest.approx(6000 / snap["scanned"], rel=1e-4)
    tree = result["tree"]
    assert tree["keys"] == pytest.approx(6000, rel=0.02)
    hot = next(c for c in tree["children"] if c["name"] == "hot")
    assert 700 <= hot["keys"] <= 1700  # truly 1200
    assert snap["sampling"] is True and snap["progress"] == 1.0


def test_sampling_larger_than_the_keyspace_is_exact(r):
    load(r, 800)
    result = scan_keyspace(r, small(sample_keys=5000))["result"]
    assert result["estimated"] is False and result["factor"] == 1.0
    assert result["tree"]["keys"] == 800


def test_throttle_sleeps_between_pages(r):
    load(r, 1000)
    naps = []
    job = ScanJob(r, small(throttle_ms=25), sleep=naps.append)
    snap = job.run()
    assert snap["state"] == DONE
    assert naps and all(nap == 0.025 for nap in naps)
    assert len(naps) == snap["batches"]


def test_partial_rollup_while_unfinished(r):
    load(r)
    job = ScanJob(r, small())
    job.on_batch = lambda batch: job.cancel()
    job.run()
    partial = job.partial()
    assert 0 < partial["tree"]["keys"] < 3000


def test_empty_database(r):
    snap = scan_keyspace(r)
    assert snap["state"] == DONE and snap["scanned"] == 0
    assert snap["result"]["tree"]["keys"] == 0 and snap["result"]["tree"]["children"] == []
