"""Streams on a real redis-server: groups, at-least-once worker, recovery, read side."""

import time

import pytest
import redis

from dashboard import gate
from dashboard.connection import connect
from dashboard.patterns import keys
from dashboard.patterns.streams import (
    GroupMissing,
    StreamStateError,
    Worker,
    add,
    dead_letter_name,
    ensure_group,
    original_fields,
    stream_state,
)


class Died(BaseException):
    """Stands for a process that dies in the middle of a batch (not an Exception)."""


@pytest.fixture
def reader(redis_server):
    client = gate.install(connect(redis_server.url), allow_writes=False)
    yield client
    client.close()


def _fill(r, stream, n, **extra):
    return [add(r, stream, {"n": i, **extra}) for i in range(n)]


def _pending(r, stream, group):
    return r.xpending(stream, group)["pending"]


def _worker(r, handler, **kw):
    kw.setdefault("block_ms", 0)
    return Worker(r, "jobs", "g", kw.pop("consumer", "c1"), handler, **kw)


def _drain(worker, done, limit=10):
    deadline = time.monotonic() + limit
    while not done() and time.monotonic() < deadline:
        worker.run_once()
    assert done(), f"not done in {limit}s: {worker.stats()}"


# --- producer and group setup ------------------------------------------------------------


def test_add_returns_the_id_and_checks_fields(r):
    entry_id = add(r, "s", {"a": 1, b"b": b"\xff"})
    assert r.xrange("s") == [(entry_id.encode(), {b"a": b"1", b"b": b"\xff"})]
    with pytest.raises(ValueError, match="at least one field"):
        add(r, "s", {})
    with pytest.raises(TypeError, match="'payload' is dict"):
        add(r, "s", {"payload": {"nested": 1}})


def test_maxlen_keeps_the_stream_bounded(r):
    node = int(r.config_get("stream-node-max-entries")["stream-node-max-entries"])
    for i in range(1000):
        add(r, "approx", {"i": i}, maxlen=100)
        add(r, "exact", {"i": i}, maxlen=100, approximate=False)
    assert 100 <= r.xlen("approx") <= 100 + node
    assert r.xlen("exact") == 100
    assert r.xrevrange("exact", count=1)[0][1] == {b"i": b"999"}


def test_ensure_group_is_idempotent(r):
    assert ensure_group(r, "jobs", "g") is True
    assert ensure_group(r, "jobs", "g") is False
    assert [g["name"] for g in r.xinfo_groups("jobs")] == [b"g"]


def test_ensure_group_reraises_everything_but_busygroup(r):
    r.set("plain", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE") as err:
        ensure_group(r, "plain", "g")
    assert "'plain'" in str(err.value)
    with pytest.raises(redis.ResponseError, match="MKSTREAM"):
        ensure_group(r, "missing", "g", mkstream=False)
    assert not r.exists("missing")


def test_dead_letter_stream_of_a_tagged_stream_shares_its_slot():
    stream = keys.key(keys.tag("orders"), "events")
    assert keys.same_slot(stream, dead_letter_name(stream))
    assert dead_letter_name(b"{x}") == b"{x}:dead"


# --- the worker -----------------------------------------------------------------------------


def test_missing_group_is_a_clear_error(r):
    add(r, "jobs", {"a": 1})
    with pytest.raises(GroupMissing, match="ensure_group"):
        _worker(r, print).run_once()


def test_at_least_once_a_failure_leaves_the_entry_pending(r):
    ensure_group(r, "jobs", "g", start_id="0")
    ids = _fill(r, "jobs", 3)
    calls = []

    def handler(entry):
        calls.append((entry.id, entry.deliveries))
        if entry.id == ids[1] and entry.deliveries == 1:
            raise RuntimeError("temporary")

    worker = _worker(r, handler, claim_idle_ms=0)
    assert worker.run_once() == 3
    assert worker.processed == 2
    assert worker.failed == 1
    assert [row["message_id"] for row in r.xpending_range("jobs", "g", "-", "+", 10)] == [
        ids[1].encode()
    ]
    _drain(worker, lambda: _pending(r, "jobs", "g") == 0)
    assert (ids[1], 2) in calls
    assert worker.processed == 3
    assert worker.reclaimed == 1


def test_consumer_killed_mid_batch_loses_nothing(r, make_client):
    ensure_group(r, "jobs", "g", start_id="0")
    ids = _fill(r, "jobs", 20)
    seen_a, seen_b = [], []

    def dies_on_fourth(entry):
        if len(seen_a) == 3:
            raise Died
        seen_a.append(entry.id)

    a = _worker(make_client(), dies_on_fourth, consumer="a", count=10)
    with pytest.raises(Died):
        a.run_once()
    assert _pending(r, "jobs", "g") == 7  # read 10, acked 3, then died

    b = _worker(make_client(), lambda e: seen_b.append(e.id), consumer="b", claim_idle_ms=50)
    b.block_ms = 20
    _drain(b, lambda: set(seen_a) | set(seen_b) == set(ids) and _pending(r, "jobs", "g") == 0)
    assert b.reclaimed == 7
    assert _pending(r, "jobs", "g") == 0
    assert set(seen_a).isdisjoint(seen_b)


def test_restarted_consumer_reprocesses_its_own_pending_first(r):
    ensure_group(r, "jobs", "g", start_id="0")
    ids = _fill(r, "jobs", 5)
    r.xreadgroup("g", "c1", {"jobs": ">"}, count=3)  # the previous life of c1 read 3
    r.xdel("jobs", ids[1])  # ...and one of them was deleted since
    seen = []
    worker = _worker(r, lambda e: seen.append((e.id, e.deliveries)), claim_idle_ms=3_600_000)
    assert worker.run_once() == 3
    assert seen == [(ids[0], 2), (ids[2], 2)]  # no XAUTOCLAIM wait, re-delivered
    assert worker.deleted == 1
    _drain(worker, lambda: len(seen) == 4)
    assert _pending(r, "jobs", "g") == 0


def test_entries_deleted_while_pending_are_dropped_by_autoclaim(r):
    ensure_group(r, "jobs", "g", start_id="0")
    ids = _fill(r, "jobs", 4)
    r.xreadgroup("g", "dead-consumer", {"jobs": ">"}, count=4)
    r.xdel("jobs", ids[0], ids[2])
    seen = []
    worker = _worker(r, lambda e: seen.append(e.id), claim_idle_ms=0)
    _drain(worker, lambda: _pending(r, "jobs", "g") == 0)
    assert seen == [ids[1], ids[3]]
    assert worker.deleted == 2


def test_poison_message_goes_to_the_dead_letter_stream(r):
    ensure_group(r, "jobs", "g", start_id="0")
    ids = _fill(r, "jobs", 3)
    poison_calls = []

    def handler(entry):
        if entry.fields[b"n"] == b"1":
            poison_calls.append(entry.deliveries)
            raise ValueError("cannot parse order")

    worker = _worker(r, handler, claim_idle_ms=0, max_deliveries=3)
    _drain(worker, lambda: worker.dead_lettered == 1)
    assert poison_calls == [1, 2, 3]
    assert worker.processed == 2
    assert _pending(r, "jobs", "g") == 0
    [(_dead_id, fields)] = r.xrange("jobs:dead")
    assert fields[b"origin-id"] == ids[1].encode()
    assert fields[b"origin-stream"] == b"jobs"
    assert fields[b"origin-group"] == b"g"
    assert fields[b"deliveries"] == b"3"
    assert b"cannot parse order" in fields[b"error"]
    assert original_fields(fields) == {b"n": b"1"}


def test_claimed_entry_past_max_deliveries_is_dead_lettered_unhandled(r):
    ensure_group(r, "jobs", "g", start_id="0")
    ids = _fill(r, "jobs", 1)
    r.xreadgroup("g", "crashy", {"jobs": ">"})  # delivered once, its consumer died
    handled = []
    worker = _worker(r, handled.append, claim_idle_ms=0, max_deliveries=1)
    _drain(worker, lambda: worker.dead_lettered == 1)
    assert handled == []
    [(_, fields)] = r.xrange("jobs:dead")
    assert fields[b"origin-id"] == ids[0].encode()
    assert fields[b"deliveries"] == b"2"
    assert fields[b"error"] == b"delivery count exceeded"
    assert _pending(r, "jobs", "g") == 0


def test_reclaim_waits_for_the_injected_clock(r):
    ensure_group(r, "jobs", "g", start_id="0")
    _fill(r, "jobs", 2)
    r.xreadgroup("g", "gone", {"jobs": ">"})
    now = [100.0]
    worker = _worker(r, lambda e: None, claim_idle_ms=0, claim_every_ms=5000, clock=lambda: now[0])
    worker.run_once()  # first step: a claim round is due at once
    assert worker.reclaimed == 2
    add(r, "jobs", {"x": 1})
    r.xreadgroup("g", "gone", {"jobs": ">"})  # one more entry left pending by "gone"
    assert worker.run_once() == 0
    assert worker.reclaimed == 2  # the next round is 5 s away on the injected clock
    now[0] += 5
    assert worker.run_once() == 1
    assert worker.reclaimed == 3


def test_graceful_stop_finishes_the_batch_and_reads_no_more(r):
    ensure_group(r, "jobs", "g", start_id="0")
    _fill(r, "jobs", 10)
    seen = []

    def handler(entry):
        seen.append(entry.id)
        if len(seen) == 2:
            worker.stop()

    worker = _worker(r, handler, count=5)
    worker.run()  # returns after the batch in which stop() was asked
    assert len(seen) == 5
    assert _pending(r, "jobs", "g") == 0
    assert r.xinfo_groups("jobs")[0]["lag"] == 5  # the rest was never read


def test_thread_variant_starts_and_stops(r, make_client):
    ensure_group(r, "jobs", "g", start_id="0")
    _fill(r, "jobs", 7)
    seen = []
    worker = _worker(make_client(), lambda e: seen.append(e.id), count=3, block_ms=50)
    with worker:
        deadline = time.monotonic() + 10
        while len(seen) < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.alive
    assert not worker.alive
    assert worker.error is None
    assert len(seen) == 7
    assert worker.stats()["processed"] == 7


# --- read side ---------------------------------------------------------------------------


def test_stream_state_lag_grows_and_falls(r, reader):
    ensure_group(r, "jobs", "g", start_id="0")
    _fill(r, "jobs", 5)
    worker = _worker(r, lambda e: None)
    _drain(worker, lambda: worker.processed == 5)
    state = stream_state(reader, "jobs")
    [group] = state.groups
    assert (group.lag, group.lag_source, group.pending) == (0, "server", 0)

    _fill(r, "jobs", 7)  # the consumer is stopped: nobody reads
    [group] = stream_state(reader, "jobs").groups
    assert group.lag == 7

    _drain(worker, lambda: worker.processed == 12)
    state = stream_state(reader, "jobs")
    [group] = state.groups
    assert group.lag == 0
    assert group.last_delivered_id == state.last_id
    assert group.entries_read == 12
    assert state.length == 12
    assert state.entries_added == 12
    assert [(c.name, c.pending) for c in group.consumer_list] == [("c1", 0)]


def test_lag_is_counted_when_the_server_reports_none(r, reader):
    ensure_group(r, "jobs", "g", start_id="0")
    ids = _fill(r, "jobs", 10)
    r.xreadgroup("g", "c1", {"jobs": ">"}, count=3)
    r.xack("jobs", "g", *ids[:3])
    r.xdel("jobs", ids[6])  # a deleted entry the group has not read yet
    assert r.xinfo_groups("jobs")[0]["lag"] is None  # what Redis 7 says here

    [group] = stream_state(reader, "jobs").groups
    assert group.lag == 6  # 10 added - 3 read - 1 deleted
    assert group.lag_source == "xrange"
    assert not group.lag_is_lower_bound
    assert group.lag_upper_bound == 7  # entries_added - entries_read counts the deleted one

    [bounded] = stream_state(reader, "jobs", lag_scan_limit=4).groups
    assert (bounded.lag, bounded.lag_source, bounded.lag_is_lower_bound) == (
        4,
        "xrange-lower-bound",
        True,
    )


def test_lag_without_entries_read(r, reader):
    ids = _fill(r, "jobs", 5)
    ensure_group(r, "jobs", "start", start_id="0")
    ensure_group(r, "jobs", "middle", start_id=ids[1])
    r.xgroup_setid("jobs", "middle", ids[1])  # SETID without ENTRIESREAD: count unknown
    r.xdel("jobs", ids[0], ids[2])
    assert [g["lag"] for g in r.xinfo_groups("jobs")] == [None, None]
    groups = {g.name: g for g in stream_state(reader, "jobs").groups}
    start, middle = groups["start"], groups["middle"]
    assert (start.lag, start.lag_source, start.lag_is_lower_bound) == (3, "computed", False)
    assert (middle.lag, middle.lag_source, middle.lag_upper_bound) == (2, "xrange", None)


def test_stream_state_pending_consumers_and_ages(r, reader):
    now_ms = int(r.time()[0]) * 1000
    old_id = f"{now_ms - 60_000}-0"
    add(r, "jobs", {"n": 0}, entry_id=old_id)
    _fill(r, "jobs", 2)
    ensure_group(r, "jobs", "g", start_id="0")
    r.xreadgroup("g", "slow", {"jobs": ">"}, count=2)
    r.xclaim("jobs", "g", "slow", 0, [old_id])  # delivered twice now
    state = stream_state(reader, "jobs")
    assert state.first_id == old_id
    assert state.first_age_ms >= 60_000
    assert 0 <= state.last_age_ms < 60_000
    [group] = state.groups
    assert group.pending == 2
    assert group.oldest_pending_id == old_id
    assert group.oldest_pending_age_ms >= 60_000
    assert group.oldest_pending_idle_ms >= 0
    assert group.max_delivery_count == 2
    assert group.pending_sampled == 2
    assert group.lag == 1
    [consumer] = group.consumer_list
    assert (consumer.name, consumer.pending) == ("slow", 2)
    assert consumer.idle_ms >= 0


def test_stream_state_of_missing_wrong_type_and_binary_names(r, reader):
    assert stream_state(reader, "nothing").exists is False
    r.set("plain", "x")
    with pytest.raises(StreamStateError, match="plain"):
        stream_state(reader, "plain")
    add(r, b"s\xff", {"a": 1})
    ensure_group(r, b"s\xff", b"g\xfe", start_id="0")
    state = stream_state(reader, b"s\xff")
    assert state.stream == "s\\xff"
    assert state.groups[0].name == "g\\xfe"
    assert state.groups[0].lag == 1


def test_stream_state_of_an_empty_stream(r, reader):
    ensure_group(r, "jobs", "g")
    state = stream_state(reader, "jobs")
    assert (state.exists, state.length, state.first_id, state.first_age_ms) == (
        True,
        0,
        None,
        None,
    )
    assert state.groups[0].lag == 0
