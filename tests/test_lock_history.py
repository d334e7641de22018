"""/locks remembers what its readings saw: acquisitions, holders, contention."""

from observer_support import observer_of

from dashboard.inspect.live.lockhistory import LockHistory
from dashboard.patterns.locks import Lock


def _ours(resource, fence, failures=0, held=False, holder=None, **more):
    return {
        "id": resource,
        "resource": resource,
        "key": f"lock:{{{resource}}}",
        "layout": "dashboard",
        "held": held,
        "holder": holder,
        "last_fence": fence,
        "attempts": fence + failures,
        "failures": failures,
        "waits": 0,
        "wait_ms_total": 0,
        "releases": fence - int(held),
        "hold_ms_total": 3 * fence,
        "expired": 0,
        **more,
    }


def test_acquisitions_between_readings_come_from_the_fencing_counter():
    clock = [1000.0]
    history = LockHistory(clock=lambda: clock[0])
    history.record({"entries": [_ours("orders", 10)]}, 1000.0)
    assert history.view()["acquired"] == 0  # the first sight is the baseline
    history.record({"entries": [_ours("orders", 25, failures=4)]}, 1001.0)
    clock[0] = 1001.5
    view = history.view()
    assert view["acquired"] == 15 and view["contended"] == 4
    lock = view["locks"][0]
    assert (lock["resource"], lock["acquired"], lock["contended"]) == ("orders", 15, 4)
    assert lock["avg_hold_ms"] == 3.0
    kinds = [(e["kind"], e["count"]) for e in view["events"]]
    assert ("acquired", 15) in kinds and ("contended", 4) in kinds
    assert history.active()


def test_foreign_holders_count_as_acquisitions_and_the_window_forgets():
    clock = [0.0]
    history = LockHistory(window_s=60, bucket_s=10, clock=lambda: clock[0])
    foreign = {"id": "x", "resource": "x", "key": "x:lock", "layout": "redis-py", "held": True}
    history.record({"entries": [{**foreign, "holder": "aaa"}]}, 0.0)
    history.record({"entries": [{**foreign, "holder": "bbb"}]}, 1.0)
    history.record({"entries": []}, 2.0)
    clock[0] = 2.0
    view = history.view()
    assert [e["kind"] for e in view["events"]] == ["released", "acquired"]
    assert view["events"][1]["holder"] == "bbb" and view["acquired"] == 1
    clock[0] = 500.0
    assert history.view()["events"] == [] and history.view()["acquired"] == 0
    assert not history.active()


def test_memory_is_bounded():
    history = LockHistory(max_events=10, max_locks=5)
    for n in range(50):
        entries = [_ours(f"r{i}", n) for i in range(20)]
        history.record({"entries": entries}, float(n))
    view = history.view()
    assert len(view["events"]) <= 10 and len(view["locks"]) <= 5


def test_the_page_shows_short_locks_it_never_caught_holding(web, r):
    observer = observer_of(web)
    web.get("/locks.json")  # starts listening
    for _ in range(3):
        with Lock(r, "invoice", ttl=5):
            pass
    observer.refresh("locks")
    for _ in range(7):
        with Lock(r, "invoice", ttl=5):
            pass
    holder = Lock(r, "invoice", ttl=5)
    holder.acquire()
    Lock(r, "invoice", ttl=5).acquire(blocking=False)  # a failed attempt: contention
    holder.release()
    observer.refresh("locks")
    data = web.get("/locks.json").get_json()
    assert data["locks"] == []  # nothing held at this instant
    history = data["history"]
    assert history["acquired"] == 8 and history["contended"] == 1
    assert history["locks"][0]["resource"] == "invoice"
    html = web.get("/locks").get_data(as_text=True)
    assert 'id="lock-activity"' in html and 'id="history-acquired">8<' in html
    assert 'hx-trigger="every 1s, live-resume"' in html  # keeps watching while active
