"""What the scan job does with each way a shard's pass can end (ScanJob._end): a pass
stopped because its shard moved is redone, a node that changed under a pass is read
again, trouble is retried with backoff and reported (the first time and every tenth),
a replica that keeps failing is replaced, and the scan gives up after
``topology_wait_s``. The end-to-end scans (test_scanjob.py, the cluster tests) only see
what these steps add up to."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from test_scan_bookkeeping import _pass

from dashboard.inspect.keyspace import scanjob
from dashboard.inspect.keyspace.passes import backoff
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.sources import Shard, Source

WAIT_S = 5.0
DOWN = "Error 111 connecting to h:1. Connection refused."


class Clock:
    """An injectable monotonic clock the test moves by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _job(monkeypatch):
    """A job with no server: its plan is fed passes by hand, node-map refreshes are
    counted instead of sent."""
    refreshes: list[object] = []

    def refresh(client):
        refreshes.append(client)
        return False

    monkeypatch.setattr(scanjob, "refresh_topology", refresh)
    clock = Clock()
    options = ScanOptions(topology_wait_s=WAIT_S)
    job = scanjob.ScanJob("client", options, clock=lambda: 1000.0, monotonic=clock)
    return job, clock, refreshes


def _planned(job, role="primary", address="h:1", **fields):
    p = _pass(**fields)
    p.source = Source(Shard("h:0", None), address, role, None, f"the {role}")
    job._plan.passes.append(p)
    return p


def _events(job):
    return [(e["kind"], e["node"], e["reason"]) for e in job.snapshot()["events"]]


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        ("h:0 no longer serves this shard", "h:0 no longer serves this shard"),
        (None, "the shard moved"),
    ],
)
def test_a_pass_stopped_because_its_shard_moved_is_dropped_and_redone(monkeypatch, stop, reason):
    job, clock, refreshes = _job(monkeypatch)
    p = _planned(job, stop=stop, retire=True)
    job._end(p, "stopped", stop)
    assert job._plan.passes == []
    assert _events(job) == [("restart", "h:1", reason)]
    assert job.snapshot()["restarts"] == 1
    assert job._plan.replan_at == clock.now  # its slots get a new pass at once
    assert refreshes == []


def test_a_pass_stopped_by_a_cancel_keeps_its_place_and_cursor(monkeypatch):
    job, _, refreshes = _job(monkeypatch)
    p = _planned(job, retire=False)
    job._end(p, "stopped", None)
    assert job._plan.passes == [p] and _events(job) == [] and refreshes == []
    assert (job.snapshot()["restarts"], job._plan.replan_at) == (0, None)


def test_a_node_that_changed_before_the_first_page_is_waited_for(monkeypatch):
    """Slots migrating before a pass began: nothing was counted, so it is no restart;
    the node map is refreshed even right after another refresh (it is known stale),
    and the shard is planned again after the first backoff."""
    job, clock, refreshes = _job(monkeypatch)
    job._last_refresh = clock.now - 0.01  # an unforced refresh would be skipped
    p = _planned(job, start=None)
    job._end(p, "changed", "slot 7 is migrating")
    assert refreshes == ["client"]
    assert job._plan.passes == []
    assert _events(job) == [
        ("refresh", None, "primaries unchanged"),
        ("wait", "h:1", "slot 7 is migrating"),
    ]
    assert job.snapshot()["restarts"] == 0
    assert job._plan.replan_at == clock.now + backoff(1)


def test_a_node_that_changed_during_a_pass_restarts_it(monkeypatch):
    job, clock, refreshes = _job(monkeypatch)
    job._last_refresh = clock.now - 0.01
    p = _planned(job, start=object())  # it had read its node's identity and walked
    job._end(p, "changed", "h:1 restarted (run id changed)")
    assert refreshes == ["client"] and job._plan.passes == []
    assert _events(job) == [
        ("refresh", None, "primaries unchanged"),
        ("restart", "h:1", "h:1 restarted (run id changed)"),
    ]
    assert job.snapshot()["restarts"] == 1
    assert job._plan.replan_at == clock.now


def test_trouble_is_retried_with_backoff_and_reported_the_first_and_every_tenth_time(
    monkeypatch,
):
    job, clock, refreshes = _job(monkeypatch)
    p = _planned(job)
    began = clock.now
    reported = []
    for n in range(1, 22):
        clock.now = began + n * 0.1
        job._end(p, "trouble", RedisConnectionError(DOWN))
        assert (p.troubles, p.trouble_since) == (n, began + 0.1)
        assert p.not_before == clock.now + backoff(n)  # later and later, up to 2 s
        assert job._plan.replan_at == clock.now
        retries = sum(kind == "retry" for kind, *_ in _events(job))
        reported += [n] * (retries - len(reported))
    assert reported == [1, 10, 20]
    retry = next(e for e in _events(job) if e[0] == "retry")
    assert retry == ("retry", "h:1", f"scan page failed: server unreachable ({DOWN})")
    assert job._plan.passes == [p]  # a primary keeps its pass and its cursor
    assert len(refreshes) >= 2  # topology trouble refreshes the map (spaced 0.2 s apart)


def test_trouble_that_is_not_about_the_topology_does_not_refresh_the_map(monkeypatch):
    job, _, refreshes = _job(monkeypatch)
    p = _planned(job)
    job._end(p, "trouble", ResponseError("LOADING Redis is loading the dataset in memory"))
    assert refreshes == [] and p.troubles == 1
    job._end(p, "trouble", RedisConnectionError(DOWN))
    assert refreshes == ["client"]


def test_the_scan_gives_up_when_trouble_lasts_topology_wait_s(monkeypatch):
    job, clock, _ = _job(monkeypatch)
    p = _planned(job)
    error = RedisConnectionError(DOWN)
    job._end(p, "trouble", error)
    clock.now += WAIT_S - 0.001
    job._end(p, "trouble", error)  # not yet
    clock.now += 0.001
    with pytest.raises(RedisConnectionError) as raised:
        job._end(p, "trouble", error)  # exactly topology_wait_s after the first
    assert raised.value is error


@pytest.mark.parametrize("started", [False, True])
def test_a_replica_failing_three_times_in_a_row_is_replaced(monkeypatch, started):
    job, clock, _ = _job(monkeypatch)
    p = _planned(job, role="replica", address="h:2", start=object() if started else None)
    error = RedisConnectionError(DOWN)
    job._end(p, "trouble", error)
    job._end(p, "trouble", error)
    assert job._plan.passes == [p]  # two errors: still the replica's
    job._end(p, "trouble", error)
    assert job._plan.passes == []
    why = "replica h:2 keeps failing; choosing the source again"
    assert _events(job)[-1] == ("restart" if started else "wait", "h:2", why)
    assert job.snapshot()["restarts"] == int(started)
    assert job._plan.replan_at == clock.now


def test_a_primary_failing_again_and_again_keeps_its_pass(monkeypatch):
    job, _, _ = _job(monkeypatch)
    p = _planned(job, role="primary")
    for _ in range(5):
        job._end(p, "trouble", RedisConnectionError(DOWN))
    assert job._plan.passes == [p] and job.snapshot()["restarts"] == 0


def test_an_event_is_timestamped_to_the_millisecond_and_handed_to_on_event(monkeypatch):
    seen = []
    job = scanjob.ScanJob("client", ScanOptions(), clock=lambda: 1234.56789, on_event=seen.append)
    job._event("refresh", None, "primaries unchanged")
    event = {"at": 1234.568, "kind": "refresh", "node": None, "reason": "primaries unchanged"}
    assert seen == [event] and job.snapshot()["events"] == [event]


def test_a_new_job_has_no_error_no_page_time_and_keeps_the_last_50_events():
    job = scanjob.ScanJob("client", ScanOptions(), clock=lambda: 1000.0)
    snap = job.snapshot()
    assert job.last_exception is None and snap["error"] is None
    assert snap["max_batch_ms"] == 0.0 and snap["events"] == []
    for i in range(scanjob.MAX_EVENTS + 10):
        job._event("retry", f"h:{i}", "scan page failed")
    nodes = [e["node"] for e in job.snapshot()["events"]]
    assert nodes == [f"h:{i}" for i in range(10, 60)]  # the oldest 10 dropped
