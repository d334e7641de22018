"""Section: one refresh at a time, leases, backoff, and the last good data kept."""

import threading

import pytest

from dashboard.observer.section import MAX_BACKOFF_S, Section


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(reader, clock=None, **kw):
    clock = clock or Clock()
    kw.setdefault("period_s", 1.0)
    kw.setdefault("lease_s", 10.0)
    return Section("t", reader, clock=clock, monotonic=clock, **kw), clock


def test_only_one_caller_runs_the_reader_at_a_time():
    inside, release = threading.Event(), threading.Event()
    calls = []

    def reader():
        calls.append(1)
        inside.set()
        release.wait(5)
        return len(calls)

    section, _ = make(reader)
    assert section.claim()
    worker = threading.Thread(target=section.refresh)
    worker.start()
    assert inside.wait(5)
    claims = [section.claim() for _ in range(20)]  # 20 more viewers arrive meanwhile
    release.set()
    worker.join(5)
    assert claims == [False] * 20 and len(calls) == 1
    assert section.current()[0] == 1 and section.claim()  # free again once finished


def test_refreshes_only_while_watched_then_stops_at_lease_end():
    section, clock = make(lambda: "x", lease_s=10.0)
    assert section.due_in() is None  # nobody watches: nothing to do
    assert section.watch() is True  # the first viewer wakes the reader
    assert section.due_in() <= 0
    assert section.claim()
    section.refresh()
    assert 0.99 <= section.due_in() <= 1.0  # next one period after the end
    assert section.watch() is False  # a second viewer changes nothing
    clock.now += 10.5
    assert section.due_in() is None  # lease over: no more reads


def test_idle_period_keeps_sampling_without_viewers():
    section, _ = make(lambda: "x", idle_period_s=30.0)
    assert section.due_in() is not None
    assert section.claim()
    section.refresh()
    assert 29.9 <= section.due_in() <= 30.0  # not watched: the idle period applies


def test_failure_keeps_last_good_data_and_says_stale():
    answers = iter(["good", RuntimeError("connection reset"), RuntimeError("still down")])

    def reader():
        value = next(answers)
        if isinstance(value, Exception):
            raise value
        return value

    section, clock = make(reader)
    section.watch()
    section.claim()
    section.refresh()
    good_as_of = section.freshness()["as_of"]
    clock.now += 5
    section.claim()
    section.refresh()
    data, fresh = section.current()
    assert data == "good" and fresh["state"] == "stale"
    assert "connection reset" in fresh["error"] and fresh["failures"] == 1
    assert fresh["as_of"] == good_as_of and fresh["age_ms"] == 5000  # the data's age
    assert fresh["retry_in_s"] is not None


def test_backoff_doubles_is_capped_and_resets_on_success():
    fail = {"on": True}

    def reader():
        if fail["on"]:
            raise ConnectionError("down")
        return "ok"

    section, clock = make(reader, lease_s=1e9)
    section.watch()
    waits = []
    for _ in range(8):
        section.claim()
        section.refresh()
        waits.append(section.due_in())
        clock.now += section.due_in()
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == MAX_BACKOFF_S and waits == sorted(waits)
    fail["on"] = False
    section.claim()
    section.refresh()
    assert section.due_in() == 1.0 and section.freshness()["state"] == "ok"
    assert section.failures == 0


def test_first_viewer_can_wait_for_the_first_reading():
    section, _ = make(lambda: 42)
    assert not section.wait_first(0.01)
    assert section.current() == (None, section.freshness())
    assert section.freshness()["state"] == "loading"
    threading.Timer(0.05, lambda: (section.claim(), section.refresh())).start()
    assert section.wait_first(5) and section.current()[0] == 42


def test_old_data_while_watched_is_stale():
    section, clock = make(lambda: 1, period_s=1.0)
    section.watch()
    section.claim()
    section.refresh()
    assert section.freshness()["state"] == "ok"
    clock.now += 5  # 5 cadences without a refresh (the reader is stuck, say)
    assert section.freshness()["state"] == "stale"


@pytest.mark.parametrize("error", [None, "boom"])
def test_an_error_before_any_data_is_error_not_loading(error):
    def reader():
        if error:
            raise RuntimeError(error)
        return 1

    section, _ = make(reader)
    section.claim()
    section.refresh()
    assert section.freshness()["state"] == ("error" if error else "ok")
