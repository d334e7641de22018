"""The scan's bookkeeping helpers (dashboard/inspect/keyspace/passes.py), exactly: how a
sample is shared between shards, how long a retry waits, how a sampled scan is scaled
up, what one number of progress means. The end-to-end scans only see their sums."""

from types import SimpleNamespace

import pytest

from dashboard.inspect.keyspace import passes
from dashboard.inspect.keyspace.options import Batch
from dashboard.inspect.keyspace.passes import ShardPass
from dashboard.inspect.keyspace.rollup import Rollup
from dashboard.inspect.keyspace.scan import NodeScanner, ScanOptions
from dashboard.inspect.keyspace.sources import Shard, Source


@pytest.mark.parametrize(
    ("sample", "dbsize", "total", "shards", "quota"),
    [
        (0, 10, 30, 3, None),  # no sampling
        (100, 30, 90, 3, 34),  # its share of DBSIZE, rounded up
        (100, 90, 90, 1, 100),
        (100, 0, 90, 3, 0),  # an empty shard takes nothing
        (100, None, 90, 3, 34),  # size unknown: an equal share
        (100, 5, 0, 2, 50),
        (100, 5, None, 0, 100),
    ],
)
def test_a_samples_share(sample, dbsize, total, shards, quota):
    assert passes.quota_for(sample, dbsize, total, shards) == quota


@pytest.mark.parametrize(
    ("troubles", "seconds"),
    [(0, 0.05), (1, 0.05), (2, 0.1), (3, 0.2), (6, 1.6), (7, 2.0), (30, 2.0)],
)
def test_retry_backoff_doubles_from_50_ms_to_2_s(troubles, seconds):
    assert passes.backoff(troubles) == pytest.approx(seconds)


def _done(dbsize, scanned):
    return SimpleNamespace(dbsize=dbsize, counters={"scanned": scanned})


def test_the_factor_a_sample_is_scaled_by():
    assert passes.factor_of([_done(1000, 100), _done(3000, 300)]) == 10.0
    assert passes.factor_of([_done(100, 100)]) == 1.0
    assert passes.factor_of([_done(50, 100)]) == 1.0  # never scaled down
    assert passes.factor_of([_done(None, 100), _done(10, 5)]) == 1.0  # a size unknown
    assert passes.factor_of([_done(10, 0)]) == 1.0  # nothing scanned
    assert passes.factor_of([_done(0, 10), _done(30, 10)]) == 1.5


def test_path_names():
    assert passes.path_name({"lua"}) == "lua"
    assert passes.path_name({"pipeline"}) == "pipeline"
    assert passes.path_name({"lua", "pipeline"}) == "mixed"
    assert passes.path_name(set()) is None


def test_overall_progress_weighs_shards_by_size():
    assert passes.overall_progress([], []) is None
    assert passes.overall_progress([0.5, None], [10, 10]) is None
    assert passes.overall_progress([1.0, 0.5], [300, 100]) == pytest.approx(0.875)
    assert passes.overall_progress([1.0, 0.0], [0, 100]) == pytest.approx(0.5)  # a size 0
    assert passes.overall_progress([0.25], [7]) == pytest.approx(0.25)


def _pass(**fields) -> ShardPass:
    shard = Shard("h:1", None)
    source = Source(shard, "h:1", "primary", None, "the primary")
    scanner = NodeScanner(None, ScanOptions(), name="h:1")
    p = ShardPass(source=source, assigned=None, scanner=scanner, rollup=Rollup())
    for name, value in fields.items():
        setattr(p, name, value)
    return p


def test_a_pass_reports_its_progress():
    p = _pass(dbsize=200)
    assert p.progress() == 0.0 and not p.finished
    p.counters["scanned"] = 50
    assert p.progress() == 0.25
    p.counters["scanned"] = 250  # keys added meanwhile: never 1.0 before it is done
    assert p.progress() == 0.999
    assert _pass(dbsize=0).progress() is None
    assert _pass(dbsize=None).progress() is None
    p.scanner.done = True
    assert p.progress() == 1.0 and p.finished
    assert _pass(committed=True, dbsize=10).progress() == 1.0


def test_a_sampling_pass_counts_against_its_quota():
    p = _pass(quota=40, dbsize=1000)
    p.counters["analysed"] = 10
    assert p.progress() == 0.25
    p.counters["analysed"] = 80
    assert p.progress() == 1.0
    assert _pass(quota=0).progress() == 1.0
    p.counters["fetched"] = 39
    assert not p.finished
    p.counters["fetched"] = 40
    assert p.finished


def test_folding_a_page_counts_everything_and_ends_a_run_of_errors():
    p = _pass(troubles=3, trouble_since=12.0)
    facts = [(b"a:1", "string", -1, 50, 1), (b"a:2", "hash", 1000, 70, 2)]
    batch = Batch(facts, 9, 2, 3, 100, "lua", 250, 900, 0, moved=1, skipped=1, node="h:1")
    p.fold(batch)
    p.fold(batch)
    assert p.counters == {
        "fetched": 0,  # counted by the walk, not by the fold
        "scanned": 18,
        "analysed": 4,
        "vanished": 4,
        "refused": 6,
        "moved": 2,
        "skipped": 2,
        "batches": 2,
        "server_us": 500,
    }
    assert (p.troubles, p.trouble_since) == (0, None)
    assert p.rollup.analysed_keys == 4
    state = p.state()
    assert (state["scanned"], state["analysed"], state["batches"]) == (18, 4, 2)
    assert state["server_ms"] == 0.5 and state["attempt"] == 1 and state["slots"] is None
    assert state["read_from"] == "primary" and state["primary"] == "h:1"


def test_the_snapshot_of_a_finished_scan_field_by_field(r, redis_server):
    from dashboard.inspect.keyspace.scanjob import ScanJob

    for i in range(30):
        r.set(f"k:{i}", "v" * i)
    clock = {"now": 1000.0}
    options = ScanOptions(start_count=10, min_count=10, max_count=10)
    job = ScanJob(r, options, clock=lambda: clock["now"], monotonic=lambda: 50.0)
    assert job.snapshot()["resumable"] is False and job.snapshot()["age_s"] is None
    job.run()
    port = redis_server.port
    clock["now"] = 1012.5
    snap = job.snapshot()
    node = snap.pop("nodes")
    result = snap.pop("result")
    assert snap.pop("server_ms") >= 0 and snap.pop("max_batch_ms") >= 0
    assert snap.pop("batches") >= 3
    assert snap == {
        "state": "done",
        "error": None,
        "resumable": False,
        "started_at": 1000.0,
        "finished_at": 1000.0,
        "age_s": 12.5,
        "duration_s": 0.0,  # the injected monotonic clock never moved
        "runs": 1,
        "path": "lua",
        "path_reasons": [],
        "dbsize": 30,
        "progress": 1.0,
        "scanned": 30,
        "analysed": 30,
        "vanished": 0,
        "refused": 0,
        "moved": 0,
        "skipped": 0,
        "sampling": False,
        "restarts": 0,
        "events": [
            {
                "at": 1000.0,
                "kind": "source",
                "node": f"localhost:{port}",
                "reason": "scan_from=primary",
            }
        ],
        "options": options.public(),
    }
    [shard] = node
    assert (shard["scanned"], shard["analysed"], shard["done"], shard["dbsize"]) == (
        30,
        30,
        True,
        30,
    )
    assert result["finished_at"] == 1000.0 and result["estimated"] is False
    assert result["factor"] == 1.0 and result["tree"]["keys"] == 30
    assert job.snapshot(include_result=False).get("result", "absent") == "absent"


def test_type_names_of_modules_and_odd_replies():
    from dashboard.inspect.keyspace import scan

    assert scan._type_name(b"hash") == "hash"
    assert scan._type_name(b"ReJSON-RL") == "ReJSON-RL"  # a module's type: kept as is
    assert scan._type_name(b"bad\xff") == "bad\ufffd"  # never an exception
    assert scan._type_name("zset") == "zset"  # decode_responses=True


def test_facts_of_keys_found_another_way(r):
    """NodeScanner.facts: the key browser's and bulk actions' path (keys from SCAN MATCH)."""
    scanner = NodeScanner(r, ScanOptions(path="lua"), name="n")
    assert scanner.facts([]) == ([], 0, 0, 0)
    r.set("a", "xy")
    r.hset("b", "f", "v")
    facts, vanished, refused, server_us = scanner.facts([b"a", b"gone", b"b"])
    assert [(f[0], f[1], f[2], f[4]) for f in facts] == [
        (b"a", "string", -1, 2),
        (b"b", "hash", -1, 1),
    ]
    assert all(f[3] > 0 for f in facts)
    assert (vanished, refused) == (1, 0) and server_us >= 0


def test_server_time_between_two_time_replies():
    """A page's server time on the pipeline path: TIME before and after, in microseconds,
    also across a second boundary; a refused TIME counts nothing (never a crash)."""
    from dashboard.inspect.keyspace import scan

    assert scan._span((b"10", b"999990"), (b"11", b"000010")) == 20
    assert scan._span((10, 500), (10, 1500)) == 1000
    assert scan._span((7, 0), (9, 250)) == 2_000_250
    assert scan._span(Exception("NOPERM"), (10, 1)) == 0
    assert scan._span((10, 1), Exception("NOPERM")) == 0


@pytest.mark.parametrize("path", ["lua", "pipeline"])
def test_facts_of_keys_found_another_way_report_the_server_time_they_took(r, path):
    """Fifty keys' TYPE, PTTL and MEMORY USAGE cannot take the server 0 microseconds: the
    time is passed on (the key browser shows it), not dropped."""
    keys = [f"t:{i}".encode() for i in range(50)]
    r.mset(dict.fromkeys(keys, "v"))
    facts, vanished, refused, server_us = NodeScanner(r, ScanOptions(path=path), name="n").facts(
        keys
    )
    assert (len(facts), vanished, refused) == (50, 0, 0)
    assert server_us > 0


def test_facts_of_keys_whose_slot_moved_count_as_not_here(r, monkeypatch):
    """In a cluster, a key found by SCAN MATCH whose slot left the node mid-call is not
    on this node any more: the key browser counts it with the vanished ones, and a
    call whose server time is unknown reports 0."""
    from dashboard.inspect.keyspace.scriptpage import MOVED

    scanner = NodeScanner(r, ScanOptions(path="lua"), name="n")
    flat = [b"string", -1, 10, 1, b"none", -2, None, None, MOVED, None, None, None]
    monkeypatch.setattr(scanner, "_facts", lambda keys, groups, after: ("lua", None, flat, 0, 0))
    facts, vanished, refused, server_us = scanner.facts([b"a", b"b", b"c"])
    assert facts == [(b"a", "string", -1, 10, 1)]
    assert (vanished, refused, server_us) == (2, 0, 0)


def test_a_finished_pass_is_verified_unless_its_node_changed_under_it(monkeypatch):
    """The verdict of a walked shard: its node's identity at the start against now (a
    restart, a new primary of its slots), or keys that answered MOVED/ASK."""
    from dashboard.inspect.keyspace.sources import Identity

    start = Identity("run-1", "master", None, None, None, owner="n1", owned=frozenset({1}))
    now = {"identity": start}
    monkeypatch.setattr(passes, "identity", lambda client, source: now["identity"])

    def verdict(moved=0, assigned=frozenset({1})):
        scanner = SimpleNamespace(done=True, moved=moved)
        p = SimpleNamespace(scanner=scanner, start=start, source=None, assigned=assigned)
        return passes._verdict(None, p)

    assert verdict() == ("verified", None)
    assert verdict(moved=2) == (
        "changed",
        "2 key(s) answered MOVED/ASK: their slot moved mid-pass",
    )
    now["identity"] = Identity("run-2", "master", None, None, None, owner="n1")
    assert verdict() == ("changed", "the node restarted (new run_id)")
    now["identity"] = Identity("run-1", "master", None, None, None, owner="n2")
    assert verdict() == ("changed", "the shard has a new primary")
    assert verdict(assigned=None) == ("verified", None)  # not a cluster: no owner to check


def test_a_script_page_reply_unpacked_and_grouped_by_slot():
    """scan_batch's tab-separated reply: server microseconds, then type, PTTL, bytes and
    count per key ('' unknown); a group whose slot left the node is all moved."""
    from redis.exceptions import MovedError, ResponseError

    from dashboard.inspect.keyspace import scriptpage

    reply = b"42\tstring\t-1\t56\t3\thash\t5000\t\t\tnone\t-2\t\t"
    assert scriptpage.unpack(reply, 3) == (
        42,
        [b"string", -1, 56, 3, b"hash", 5000, None, None, b"none", -2, None, None],
    )
    assert scriptpage.unpack(reply.decode(), 3) == scriptpage.unpack(reply, 3)  # str reply
    moved = MovedError("3999 127.0.0.1:7001")
    assert scriptpage.unpack(moved, 2) == (0, [scriptpage.MOVED, None, None, None] * 2)
    with pytest.raises(ResponseError, match="NOSCRIPT"):
        scriptpage.unpack(ResponseError("NOSCRIPT no such script"), 1)
    assert scriptpage.ok(b"x") == b"x"
    assert scriptpage.group([7, 3, 7, 9, 3]) == [[0, 2], [1, 4], [3]]


def test_a_pass_state_for_the_snapshot():
    p = _pass(dbsize=3000, assigned=frozenset({1, 2, 3}), attempt=2)
    p.counters.update(scanned=1000, analysed=990, batches=7, server_us=123_456)
    state = p.state()
    assert {k: state[k] for k in ("done", "slots", "attempt", "dbsize", "quota")} == {
        "done": False,
        "slots": 3,
        "attempt": 2,
        "dbsize": 3000,
        "quota": None,
    }
    assert (state["scanned"], state["analysed"], state["batches"]) == (1000, 990, 7)
    assert (state["server_ms"], state["progress"]) == (123.456, 0.3333)
    p.committed = True  # its keys are in the result: done, whatever the scanner says
    assert p.state()["done"] is True and p.state()["progress"] == 1.0
    assert _pass().state()["progress"] is None and _pass().state()["slots"] is None


def test_a_pass_checks_its_node_before_walking(monkeypatch):
    """Before its first page a pass waits out migrating slots; a pass that already
    started (a resume) is redone when its node changed; otherwise it walks."""
    import queue

    calls = []

    def migrating(now, assigned):
        calls.append(("migrating", now, assigned))
        return "slot 7 is migrating" if now == "moving" else None

    def changed(start, now, assigned):
        calls.append(("changed", start, now, assigned))
        return "the node restarted" if now == "restarted" else None

    monkeypatch.setattr(passes, "migrating", migrating)
    monkeypatch.setattr(passes, "changed", changed)
    found = {}
    monkeypatch.setattr(passes, "identity", lambda client, source: found["now"])

    def walk(start, now):
        found["now"] = now
        p = SimpleNamespace(start=start, source=None, assigned=frozenset({7}), stop="cancel")
        out = queue.Queue()
        passes.walk(None, p, out, lambda: False, 0, None)
        return p, out.get_nowait()

    p, ended = walk(None, "moving")
    assert ended == ("end", p, "changed", "slot 7 is migrating") and p.start is None
    p, ended = walk("before", "restarted")
    assert ended == ("end", p, "changed", "the node restarted")
    p, ended = walk(None, "steady")  # starts: remembers the node as it found it
    assert p.start == "steady" and ended == ("end", p, "stopped", "cancel")
    assert calls == [
        ("migrating", "moving", frozenset({7})),
        ("changed", "before", "restarted", frozenset({7})),
        ("migrating", "steady", frozenset({7})),
    ]


def test_a_pass_ends_with_its_verdict_or_the_trouble_it_ran_into(monkeypatch):
    """What a walk reports last: the verdict of a finished pass; a topology or loading
    error as trouble (retried); anything else as an error."""
    import queue

    import redis

    monkeypatch.setattr(passes, "identity", lambda client, source: "same")
    monkeypatch.setattr(passes, "migrating", lambda now, assigned: None)
    monkeypatch.setattr(passes, "_verdict", lambda client, p: ("verified", None))

    def walk(finished=False, raises=None):
        def next_batch():
            raise raises

        scanner = SimpleNamespace(next_batch=next_batch)
        p = SimpleNamespace(start=None, source=None, assigned=None, stop=None)
        p.finished, p.scanner = finished, scanner
        out = queue.Queue()
        passes.walk(None, p, out, lambda: False, 0, None)
        return p, out.get_nowait()

    p, ended = walk(finished=True)
    assert ended == ("end", p, "verified", None)
    dropped = redis.ConnectionError("Connection reset by peer")
    p, ended = walk(raises=dropped)
    assert ended == ("end", p, "trouble", dropped)
    loading = redis.exceptions.BusyLoadingError("LOADING")
    assert walk(raises=loading)[1][2] == "trouble"
    bug = ValueError("unexpected reply")
    p, ended = walk(raises=bug)
    assert ended == ("end", p, "error", bug)
