"""A scan job across runs: the time it adds up, what a failure says, what a resume
picks up again, and the snapshot's numbers to their documented precision
(docs/scan.md: milliseconds to 3 decimals, progress to 4)."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from test_scan_bookkeeping import _pass
from test_scanjob_outcomes import DOWN, Clock

from dashboard.inspect.keyspace import planner, scanjob
from dashboard.inspect.keyspace.options import Batch
from dashboard.inspect.keyspace.passes import backoff
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.sources import Shard, Source

SMALL = {"start_count": 10, "min_count": 10, "max_count": 10}


def _with_passes(*passes, clock=lambda: 1000.0):
    job = scanjob.ScanJob("client", ScanOptions(), clock=clock)
    job._plan.passes.extend(passes)
    return job


def test_a_snapshot_before_any_pass_knows_no_size_and_no_progress():
    snap = _with_passes().snapshot()
    assert (snap["dbsize"], snap["progress"], snap["nodes"]) == (None, None, [])


def test_a_snapshot_knows_the_size_only_when_every_node_gave_it():
    a, b = _pass(dbsize=100), _pass(dbsize=None)
    b.source = Source(Shard("h:2", None), "h:2", "primary", None, "the primary")
    assert _with_passes(a, b).snapshot()["dbsize"] is None
    b.dbsize = 50
    assert _with_passes(a, b).snapshot()["dbsize"] == 150


def _two_nodes(**fields):
    a, b = _pass(**fields), _pass(**fields)
    b.source = Source(Shard("h:2", None), "h:2", "primary", None, "the primary")
    return a, b


def test_progress_weighs_each_node_by_its_size():
    a, b = _two_nodes()
    a.dbsize, a.counters["scanned"] = 100, 50  # half of 100 keys
    b.dbsize, b.counters["scanned"] = 300, 100  # a third of 300
    assert _with_passes(a, b).snapshot()["progress"] == round(150 / 400, 4)


def test_progress_of_a_sample_weighs_each_node_by_its_quota():
    a, b = _two_nodes(dbsize=1000)
    a.quota, a.counters["analysed"] = 10, 5
    b.quota, b.counters["analysed"] = 30, 10
    assert _with_passes(a, b).snapshot()["progress"] == round(15 / 40, 4)


def test_progress_is_a_plain_mean_when_a_node_has_no_size_and_keeps_4_decimals():
    a, b = _two_nodes()
    a.dbsize, a.scanner.done = 0, True  # an empty node, walked
    b.dbsize, b.counters["scanned"] = 3, 1
    assert _with_passes(a, b).snapshot()["progress"] == 0.6667  # (1 + 1/3) / 2


def test_a_snapshot_gives_times_in_milliseconds_and_seconds_to_3_decimals():
    a, b = _two_nodes()
    a.counters["server_us"], b.counters["server_us"] = 1_234_567, 1
    job = _with_passes(a, b, clock=lambda: 1001.23456)
    job.max_batch_us, job.duration, job.finished_at = 2345, 1.23456, 1000.0
    snap = job.snapshot()
    assert (snap["server_ms"], snap["max_batch_ms"]) == (1234.568, 2.345)
    assert (snap["duration_s"], snap["age_s"]) == (1.235, 1.235)


def test_a_page_without_server_time_adds_none():
    p = _pass()
    p.fold(Batch([], 5, 0, 0, 10, "pipeline", None, 300, 0))
    p.fold(Batch([], 5, 0, 0, 10, "pipeline", 0, 300, 0))
    assert p.counters["server_us"] == 0
    assert _with_passes(p).snapshot()["server_ms"] == 0.0


def test_each_run_adds_its_time_and_a_failure_is_described(monkeypatch):
    """Three runs of 0.25 s (failed), 1.5 s (cancelled) and 0.25 s (failed): the job
    took 2 s; each failure is in ``error`` and ``last_exception``."""
    clock = Clock(50.0)
    job = scanjob.ScanJob("client", ScanOptions(), clock=lambda: 1000.0, monotonic=clock)
    error = RedisConnectionError(DOWN)
    runs = iter([(0.25, error), (1.5, None), (0.25, error)])

    def walk():
        took, raised = next(runs)
        clock.now += took
        if raised:
            raise raised

    monkeypatch.setattr(job, "_walk", walk)
    monkeypatch.setattr(job._plan, "complete", lambda: False)
    snap = job.run()
    assert (snap["state"], snap["duration_s"]) == ("failed", 0.25)
    assert snap["error"] == f"keyspace scan failed: server unreachable ({DOWN})"
    assert job.last_exception is error
    assert (job.run()["state"], job.snapshot()["duration_s"]) == ("cancelled", 1.75)
    snap = job.run()
    assert (snap["state"], snap["duration_s"], snap["runs"]) == ("failed", 2.0, 3)
    assert job.last_exception is error


def test_a_scan_that_failed_while_a_page_was_fetched_resumes_to_the_end(r):
    """The hook fails on the first page while the worker is already fetching: the
    worker is told to stop ("the scan failed"), and a resume walks on from its cursor."""
    r.mset({f"k:{i}": i for i in range(400)})  # 40 pages: more than a worker reads ahead
    failures = ["hook broke"]

    def hook(batch):
        if failures:
            raise ValueError(failures.pop())

    job = scanjob.ScanJob(r, ScanOptions(**SMALL), on_batch=hook)
    assert job.run()["state"] == "failed"
    snap = job.run()
    assert (snap["state"], snap["scanned"], snap["runs"]) == ("done", 400, 2)
    assert snap["result"]["tree"]["keys"] == 400


def test_the_first_plan_fails_at_once_when_the_server_cannot_be_reached(r, monkeypatch):
    """The first plan is strict: a wrong address fails at once instead of being retried
    for ``topology_wait_s`` like a node lost in the middle of a scan."""

    def down(client):
        raise RedisConnectionError(DOWN)

    monkeypatch.setattr(planner, "plan", down)
    job = scanjob.ScanJob(r, ScanOptions(topology_wait_s=0.3))
    snap = job.run()
    assert snap["state"] == "failed"
    assert snap["error"] == f"keyspace scan failed: server unreachable ({DOWN})"
    assert [e["kind"] for e in snap["events"]] == []


def test_a_resume_retries_planning_while_the_node_map_is_unreachable(r, monkeypatch):
    r.mset({f"k:{i}": i for i in range(400)})  # 40 pages: more than a worker reads ahead
    job = scanjob.ScanJob(r, ScanOptions(**SMALL), on_batch=lambda batch: job.cancel())
    assert job.run()["state"] == "cancelled"
    answers = [RedisConnectionError(DOWN)]
    real = planner.plan

    def flaky(client):
        if answers:
            raise answers.pop()
        return real(client)

    monkeypatch.setattr(planner, "plan", flaky)
    job.on_batch = None
    snap = job.run()
    assert (snap["state"], snap["scanned"]) == ("done", 400)
    retries = [e["reason"] for e in snap["events"] if e["kind"] == "retry"]
    assert retries == [f"planning the scan failed: server unreachable ({DOWN})"]


def test_a_pass_whose_node_left_its_shard_while_paused_is_dropped_on_resume(r):
    for i in range(20):
        r.set(f"k:{i}", i)
    job = scanjob.ScanJob(r, ScanOptions(**SMALL))
    gone = _pass()
    gone.source = Source(Shard("old:1", None), "old:1", "primary", None, "the primary")
    job._plan.passes.append(gone)
    job._planned = True  # as after a first run that was cancelled
    snap = job.run()
    assert (snap["state"], snap["scanned"]) == ("done", 20)
    assert ("wait", "old:1", "old:1 no longer serves this shard") in [
        (e["kind"], e["node"], e["reason"]) for e in snap["events"]
    ]


def test_workers_read_at_most_eight_pages_ahead_of_the_job_thread(r, monkeypatch):
    """While the job thread is busy with a page (here: held in on_batch), a worker
    fetches ahead into a queue of 2 pages per pass, room for at least 4 passes: it
    stops (blocks) with exactly 8 pages waiting, so memory stays bounded."""
    import queue
    import threading
    from types import SimpleNamespace

    for i in range(300):
        r.set(f"k:{i}", i)
    blocked, release = threading.Event(), threading.Event()
    waiting: list[int] = []

    class Watched(queue.Queue):
        def put(self, item, block=True, timeout=None):
            if self.full() and not blocked.is_set():
                waiting.append(self.qsize())
                blocked.set()
            super().put(item, block, timeout)

    monkeypatch.setattr(scanjob, "queue", SimpleNamespace(Queue=Watched, Empty=queue.Empty))
    job = scanjob.ScanJob(r, ScanOptions(**SMALL), on_batch=lambda batch: release.wait(30))
    assert job.start()
    try:
        assert blocked.wait(30), "the worker never filled the read-ahead"
        assert waiting == [scanjob.PREFETCH_PAGES * 4] == [8]
    finally:
        release.set()
        assert job.wait(30)
    assert job.snapshot()["scanned"] == 300


def test_a_planning_error_not_about_the_topology_fails_a_resumed_scan(r, monkeypatch):
    """A resume retries planning after a topology error; a later error of another kind
    (here a reply the planner cannot use) fails the scan, and the pass still walking is
    told to stop rather than left to finish."""
    import threading

    r.mset({f"k:{i}": i for i in range(400)})  # 40 pages: more than a worker reads ahead
    armed, released = threading.Event(), threading.Event()

    def on_keys(keys):
        if armed.is_set():
            released.wait(30)  # the worker holds its page until planning failed

    job = scanjob.ScanJob(
        r, ScanOptions(**SMALL), on_batch=lambda batch: job.cancel(), on_keys=on_keys
    )
    assert job.run()["state"] == "cancelled"
    answers = [RedisConnectionError(DOWN), ResponseError("ERR unexpected reply")]

    def flaky(client):
        if len(answers) == 1:
            released.set()
        raise answers.pop(0)

    monkeypatch.setattr(planner, "plan", flaky)
    job.on_batch = None
    armed.set()
    snap = job.run()
    assert (snap["state"], snap["error"]) == (
        "failed",
        "keyspace scan failed: ERR unexpected reply",
    )
    assert snap["scanned"] < 400 and answers == []


def _first_page_fails(monkeypatch):
    """The scan's first page fails as if the connection dropped; later pages work."""
    from dashboard.inspect.keyspace.scan import NodeScanner

    real, failures = NodeScanner.next_batch, [RedisConnectionError(DOWN)]

    def next_batch(self):
        if failures:
            raise failures.pop()
        return real(self)

    monkeypatch.setattr(NodeScanner, "next_batch", next_batch)


def test_a_cancel_while_a_shard_waits_to_retry_ends_the_run_at_once(r, monkeypatch):
    """The first page fails (connection dropped): the shard waits for its backoff and a
    replan is due. A cancel then ends the run without waiting for either; a resume
    finishes the scan."""
    r.mset({f"k:{i}": i for i in range(50)})
    _first_page_fails(monkeypatch)

    def on_event(event):
        if event["kind"] == "retry":
            job.cancel()

    job = scanjob.ScanJob(r, ScanOptions(**SMALL), on_event=on_event)
    assert job.start()
    assert job.wait(30), "the cancelled scan kept waiting"
    assert job.snapshot()["state"] == "cancelled"
    snap = job.run()
    assert (snap["state"], snap["scanned"]) == ("done", 50)


def test_a_scan_left_with_nothing_to_try_fails_and_says_so(r):
    """A safety net: every pass left is stopped for good and none can be added (here a
    retired pass that was never dropped). The run fails and says why, instead of
    ending as if it had been cancelled."""
    r.set("k:1", 1)
    job = scanjob.ScanJob(r, ScanOptions())
    stuck = _pass(stop="h:1 no longer serves this shard", retire=True)
    job._plan.passes.append(stuck)
    snap = job.run()
    assert snap["state"] == "failed" and snap["resumable"] is True
    assert snap["error"] == (
        "keyspace scan failed: RuntimeError: the scan ran out of work with part of the "
        "keyspace not walked"
    )


def test_pages_fetched_before_a_failing_hook_are_folded_without_the_hook(r):
    """The hook fails on the first page while the worker has fetched two more: those
    are folded (cursor and counts agree, a resume repeats nothing) but the hook is not
    called again for them."""
    import threading

    r.mset({f"k:{i}": i for i in range(400)})
    fetched, ahead, calls = [], threading.Event(), []

    def on_keys(keys):
        fetched.append(len(keys))
        if len(fetched) >= 3:
            ahead.set()

    def hook(batch):
        calls.append(batch)
        if len(calls) == 1:
            assert ahead.wait(30)  # the worker has queued page 2 by now
            raise ValueError("hook broke")

    snap = scanjob.ScanJob(r, ScanOptions(**SMALL), on_batch=hook, on_keys=on_keys).run()
    assert snap["state"] == "failed" and snap["error"].endswith("ValueError: hook broke")
    assert len(calls) == 1 and snap["batches"] >= 2


def test_a_shard_in_trouble_is_retried_when_its_backoff_ends(r, monkeypatch):
    """The job thread sleeps only until the next retry is due (50 ms after a first
    error), never longer, while no page can arrive."""
    import queue
    from types import SimpleNamespace

    r.mset({f"k:{i}": i for i in range(30)})
    _first_page_fails(monkeypatch)
    waits: list[float] = []

    class Watched(queue.Queue):
        def get(self, block=True, timeout=None):
            if timeout is not None:
                waits.append(timeout)
            return super().get(block, timeout)

    monkeypatch.setattr(scanjob, "queue", SimpleNamespace(Queue=Watched, Empty=queue.Empty))
    snap = scanjob.ScanJob(r, ScanOptions(**SMALL)).run()
    assert (snap["state"], snap["scanned"]) == ("done", 30)
    assert waits and max(waits) <= backoff(1)
