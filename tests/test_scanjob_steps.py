"""The scan job's own steps (dashboard/inspect/keyspace/scanjob.py), one at a time:
its threads, when it starts passes and wakes up, node-map refreshes, the result's
reasons; the end-to-end scans only see what they add up to."""

from types import SimpleNamespace

import pytest
from test_scan_bookkeeping import _pass

from dashboard.inspect.keyspace.options import Batch
from dashboard.inspect.keyspace.scan import ScanOptions


def test_a_background_scan_runs_in_a_named_daemon_thread_and_can_be_cancelled(r):
    import threading

    from dashboard.inspect.keyspace.scanjob import ScanJob

    for i in range(300):
        r.set(f"k:{i}", i)
    seen = {}
    release = threading.Event()

    def first_page(batch):
        if seen:
            return
        thread = threading.current_thread()
        seen.update(name=thread.name, daemon=thread.daemon, state=job.snapshot()["state"])
        job.cancel()
        seen["after_cancel"] = job.snapshot()["state"]
        release.wait(10)

    assert ScanJob(r, ScanOptions()).wait() is True  # never started: nothing to wait for
    job = ScanJob(r, ScanOptions(start_count=10, min_count=10, max_count=10), on_batch=first_page)
    assert job.start() is True
    assert job.start() is False  # already running
    assert job.wait(0.05) is False  # held on its first page: a bounded wait gives up
    release.set()
    assert job.wait(30)
    assert seen == {
        "name": "keyspace-scan",
        "daemon": True,  # a stuck scan never keeps the process from exiting
        "state": "running",
        "after_cancel": "cancelling",
    }
    snap = job.snapshot()
    assert snap["state"] == "cancelled" and snap["resumable"] is True
    assert 0 < snap["scanned"] < 300


def test_scan_keyspace_hands_every_page_to_on_batch(r):
    from dashboard.inspect.keyspace.scanjob import scan_keyspace

    for i in range(50):
        r.set(f"b:{i}", i)
    seen = []
    snap = scan_keyspace(
        r, ScanOptions(start_count=10, min_count=10, max_count=10), on_batch=seen.append
    )
    assert len(seen) == snap["batches"] >= 5
    assert sum(batch.scanned for batch in seen) == snap["scanned"] == 50


def test_node_map_refreshes_are_spaced_and_each_one_is_an_event(r, monkeypatch):
    """A topology error asks for a node-map refresh; they are at least 0.2 s apart
    (unless forced), and each says what it found or why it failed."""
    from redis.exceptions import ResponseError

    from dashboard.inspect.keyspace import scanjob

    answers = [True, False, ResponseError("CLUSTERDOWN the cluster is down")]

    def refresh(client):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(scanjob, "refresh_topology", refresh)
    job = scanjob.ScanJob(r, ScanOptions())
    job._refresh(0.0)
    job._refresh(0.125)  # too soon
    job._refresh(0.2)  # exactly the gap later
    job._refresh(0.25, force=True)  # too soon, but forced
    assert [(e["kind"], e["node"], e["reason"]) for e in job.snapshot()["events"]] == [
        ("refresh", None, "primaries changed"),
        ("refresh", None, "primaries unchanged"),
        ("refresh", None, "node map refresh failed: CLUSTERDOWN the cluster is down"),
    ]
    assert answers == []


def test_each_nodes_reason_for_unknown_bytes_is_named_once(r):
    """Nodes that could not size their keys for different reasons: the result names
    each reason once, in order, separated by '; '."""
    from dashboard.inspect.keyspace.scanjob import ScanJob

    job = ScanJob(r, ScanOptions())
    job._plan.committed.add_batch([(b"a:1", "string", -1, None, 1)])

    def done(reason):
        return SimpleNamespace(scanner=SimpleNamespace(done=True, memory_reason=reason))

    job._plan.done = [done("n2: MEMORY USAGE refused"), done(None), done("n1: no MEMORY")]
    job._plan.done.append(done("n2: MEMORY USAGE refused"))
    result = job._result_json()
    assert result["tree"]["bytes_unavailable"] == "n1: no MEMORY; n2: MEMORY USAGE refused"
    assert (result["estimated"], result["factor"]) == (False, 1.0)


def test_running_a_scan_that_runs_in_another_thread_says_so(r):
    import threading

    from dashboard.inspect.keyspace.scanjob import ScanJob

    r.set("k:1", 1)
    release = threading.Event()
    job = ScanJob(r, ScanOptions(), on_batch=lambda batch: release.wait(10))
    assert job.start() is True
    try:
        with pytest.raises(RuntimeError, match=r"^this scan is already running in another thread$"):
            job.run()
    finally:
        release.set()
        assert job.wait(30)


class _Pass:
    def __init__(self, name, stop=False, not_before=0.0):
        self.name, self.stop, self.not_before = name, stop, not_before


def test_passes_start_up_to_the_parallel_limit_skipping_stopped_and_waiting_ones(r, monkeypatch):
    from dashboard.inspect.keyspace import scanjob

    walked = []
    monkeypatch.setattr(scanjob, "walk", lambda client, p, *rest: walked.append(p.name))
    job = scanjob.ScanJob(r, ScanOptions(parallel=2))
    job._plan.passes = [
        _Pass("stopped", stop=True),
        _Pass("retry-later", not_before=10.0),  # backing off until t=10
        _Pass("retry-now", not_before=5.0),  # its backoff ends now
        _Pass("a"),
        _Pass("b"),  # a third would pass the limit of 2
    ]
    job._launch(out=None, now=5.0)
    assert [p.name for p in job._running] == ["retry-now", "a"]
    # named for thread dumps, and daemons even when the scan runs in a non-daemon thread
    assert all(t.name == "keyspace-scan-fetch" and t.daemon for t in job._running.values())
    for thread in job._running.values():
        thread.join(5)
    assert sorted(walked) == ["a", "retry-now"]


def test_the_job_wakes_when_the_next_waiting_pass_may_start_or_the_plan_is_redone(r):
    from dashboard.inspect.keyspace.scanjob import ScanJob

    job = ScanJob(r, ScanOptions())
    running = _Pass("running", not_before=6.5)
    job._plan.passes = [
        _Pass("stopped", stop=True, not_before=6.0),
        _Pass("past", not_before=1.0),  # may start already: no wake-up needed for it
        _Pass("now", not_before=5.0),
        running,
        _Pass("soon", not_before=8.0),
    ]
    job._running = {running: None}
    assert job._wake_at(5.0) == 8.0
    job._plan.replan_at = 7.0
    assert job._wake_at(5.0) == 7.0
    job._plan.passes = []
    job._plan.replan_at = None
    assert job._wake_at(5.0) is None


def test_a_shard_that_waited_starts_afresh_with_its_first_page(r):
    """A shard's waits for migrating slots count toward giving up; once its pass gets a
    first page they are forgotten, so a later wait starts a new count."""
    from dashboard.inspect.keyspace.scanjob import ScanJob

    job = ScanJob(r, ScanOptions())
    job._plan._waits["h:1"] = (0.0, 3)
    p = _pass()
    page = Batch([], 0, 0, 0, 10, None, None, 5, 0)
    job._fold(p, page, hook=False)
    assert "h:1" not in job._plan._waits and p.counters["batches"] == 1
