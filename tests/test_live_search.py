"""The rolling key search behind /ratelimits and /locks (KeySearch in
dashboard/inspect/live/state.py) on scripted nodes and a clock set by the test: how far
one refresh scans, what it reports, when a finished pass is repeated, the caps, a node
that refuses SCAN; and how long a lock's holder has been seen. read_live on the suite's
redis-server: what is shown, what is skipped and why."""

from types import SimpleNamespace

import pytest
import redis

from dashboard.inspect.live.detectors import Detectors
from dashboard.inspect.live.state import MAX_SKIPPED_SHOWN, KeySearch, read_live
from dashboard.keyid import key_address

# Each test here takes milliseconds; a search that loops forever fails fast.
pytestmark = pytest.mark.timeout(10)


class Node:
    """SCAN pages by (pattern, cursor); every call is recorded."""

    def __init__(self, pages, fail=None):
        self.pages, self.fail, self.calls = pages, fail or {}, []

    def scan(self, cursor, match, count):
        self.calls.append((match, cursor, count))
        if match in self.fail:
            raise self.fail[match]
        return self.pages[(match, cursor)]


class Clock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


def _two_nodes():
    a = Node({("p:*", 0): (5, [b"p:a1", b"p:a2"]), ("p:*", 5): (0, [b"p:a3"])})
    b = Node({("p:*", 0): (0, [b"p:b1"])})
    return a, b


def test_a_pass_spread_over_refreshes_by_the_scan_budget():
    a, b = _two_nodes()
    search = KeySearch(clock=Clock())
    nodes = [("A", a), ("B", b)]
    found, report = search.advance(nodes, ["p:*"], 10, 20, 100)  # two SCANs of 10
    assert found == {b"p:a1": "A", b"p:a2": "A", b"p:b1": "B"}
    assert report == {
        "patterns": ["p:*"],
        "nodes": 2,
        "scan_calls": 2,
        "examined": 20,
        "complete": False,
        "passes": 0,
        "found": 3,
        "capped": True,
        "cap_reason": "this refresh examined about 20 keys (live_scan_keys) without "
        "finishing the keyspace; the search goes on with every refresh",
        "errors": [],
    }
    found, report = search.advance(nodes, ["p:*"], 10, 20, 100)  # on from cursor 5
    assert a.calls == [("p:*", 0, 10), ("p:*", 5, 10)] and b.calls == [("p:*", 0, 10)]
    assert found == {b"p:a1": "A", b"p:a2": "A", b"p:b1": "B", b"p:a3": "A"}
    assert (report["scan_calls"], report["examined"], report["complete"]) == (1, 10, True)
    assert (report["passes"], report["found"], report["capped"]) == (1, 4, False)
    assert report["cap_reason"] is None


def test_a_budget_spent_mid_round_stops_there():
    a = Node({("p:*", 0): (1, []), ("p:*", 1): (2, []), ("p:*", 2): (0, [b"p:x"])})
    b = Node({("p:*", 0): (0, [b"p:y"])})
    search = KeySearch(clock=Clock())
    _, report = search.advance([("A", a), ("B", b)], ["p:*"], 1_000, 1_000, 100)
    assert (report["scan_calls"], report["examined"]) == (1, 1_000)  # B not reached
    assert "about 1,000 keys" in report["cap_reason"]
    _, report = search.advance([("A", a), ("B", b)], ["p:*"], 1_000, 3_000, 100)
    assert (report["scan_calls"], report["complete"]) == (3, True)  # A twice, B once


def test_a_finished_pass_is_repeated_after_five_times_its_duration():
    clock = Clock(100.0)
    a, b = _two_nodes()
    search = KeySearch(clock=clock, min_rescan_s=2.0)
    nodes = [("A", a), ("B", b)]
    search.advance(nodes, ["p:*"], 10, 20, 100)
    clock.now = 103.0  # the pass took 3 s: the next one starts 15 s after it ended
    search.advance(nodes, ["p:*"], 10, 20, 100)
    clock.now = 117.99
    found, report = search.advance(nodes, ["p:*"], 10, 20, 100)
    assert report["scan_calls"] == 0 and report["complete"] and len(found) == 4
    assert report["passes"] == 1 and report["cap_reason"] is None
    clock.now = 118.0
    _, report = search.advance(nodes, ["p:*"], 10, 20, 100)
    assert report["scan_calls"] == 2 and a.calls[-1] == ("p:*", 0, 10)  # from the start


def test_a_quick_pass_waits_at_least_min_rescan_s():
    clock = Clock(50.0)
    node = Node({("p:*", 0): (0, [b"p:1"])})
    search = KeySearch(clock=clock)  # the default the observer uses: 2 s
    search.advance([("A", node)], ["p:*"], 10, 100, 100)  # took 0 s
    clock.now = 51.99
    assert search.advance([("A", node)], ["p:*"], 10, 100, 100)[1]["scan_calls"] == 0
    search.expire()  # an explicit refresh: a new pass at once
    _, report = search.advance([("A", node)], ["p:*"], 10, 100, 100)
    assert (report["scan_calls"], report["passes"]) == (1, 2)
    clock.now = 54.0
    assert search.advance([("A", node)], ["p:*"], 10, 100, 100)[1]["scan_calls"] == 1


def test_other_patterns_or_nodes_start_over():
    clock = Clock()
    node = Node({("p:*", 0): (0, [b"p:1"]), ("q:*", 0): (0, [b"q:1"])})
    search = KeySearch(clock=clock)
    search.advance([("A", node)], ["p:*"], 10, 100, 100)
    clock.now += 10
    found, report = search.advance([("A", node)], ["q:*"], 10, 100, 100)
    assert found == {b"q:1": "A"} and report["passes"] == 2  # p:1 is not kept


def test_nodes_changing_mid_pass_start_a_new_pass_over_the_new_ones():
    """A failover or resharding changes the primaries while a pass is under way."""
    a, b = _two_nodes()
    c = Node({("p:*", 0): (0, [b"p:c1"])})
    search = KeySearch(clock=Clock())
    search.advance([("A", a), ("B", b)], ["p:*"], 10, 10, 100)  # A's first page only
    found, report = search.advance([("A", a), ("C", c)], ["p:*"], 10, 100, 100)
    assert found == {b"p:a1": "A", b"p:a2": "A", b"p:a3": "A", b"p:c1": "C"}
    assert report["complete"] and report["nodes"] == 2 and b.calls == []


def test_more_keys_than_the_cap():
    keys = [f"p:{i}".encode() for i in range(1_001)]
    node = Node({("p:*", 0): (0, keys)})
    found, report = KeySearch(clock=Clock()).advance([("A", node)], ["p:*"], 10, 100, 1_000)
    assert list(found) == keys[:1_000]
    assert report["complete"] and report["capped"] and report["found"] == 1_000
    assert report["cap_reason"] == (
        "more than 1,000 matching keys: showing 1,000 (live_max_keys); "
        "narrow the patterns or raise the cap"
    )


def test_a_key_seen_again_at_the_cap_is_not_over_it():
    node = Node({("p:*", 0): (3, [b"p:a", b"p:b"]), ("p:*", 3): (0, [b"p:a"])})
    found, report = KeySearch(clock=Clock()).advance([("A", node)], ["p:*"], 10, 100, 2)
    assert len(found) == 2 and not report["capped"] and report["cap_reason"] is None


def test_an_unfinished_pass_shows_the_last_one_too_within_the_cap():
    clock = Clock()
    node = Node({("p:*", 0): (0, [b"p:1", b"p:2"])})
    search = KeySearch(clock=clock)
    search.advance([("A", node)], ["p:*"], 10, 100, 3)
    node.pages = {("p:*", 0): (4, [b"p:3", b"p:4"]), ("p:*", 4): (0, [])}
    clock.now += 10
    found, report = search.advance([("A", node)], ["p:*"], 10, 10, 3)  # one SCAN only
    assert not report["complete"]
    assert found == {b"p:1": "A", b"p:2": "A", b"p:3": "A"}  # the last pass first, then new


def test_a_node_refusing_scan_is_reported_and_the_others_go_on():
    refusing = Node({("q:*", 0): (0, [b"q:1"])}, fail={"p:*": redis.ResponseError("NOPERM")})
    found, report = KeySearch(clock=Clock()).advance(
        [("A", refusing)], ["p:*", "q:*"], 10, 100, 100
    )
    assert found == {b"q:1": "A"} and report["complete"]
    assert report["errors"] == ["SCAN MATCH p:* on A: NOPERM"]
    assert report["scan_calls"] == 1 and report["examined"] == 10  # the refusal is no SCAN


def test_a_lost_connection_propagates_and_the_walk_keeps_its_place():
    node = Node({("p:*", 0): (7, [b"p:1"]), ("p:*", 7): (0, [b"p:2"])})
    search = KeySearch(clock=Clock())
    search.advance([("A", node)], ["p:*"], 10, 10, 100)
    node.fail["p:*"] = redis.ConnectionError("gone")
    with pytest.raises(redis.ConnectionError):
        search.advance([("A", node)], ["p:*"], 10, 10, 100)
    del node.fail["p:*"]
    found, report = search.advance([("A", node)], ["p:*"], 10, 10, 100)
    assert node.calls[-1] == ("p:*", 7, 10) and report["complete"] and len(found) == 2


def test_how_long_each_holder_has_been_seen():
    clock = Clock(10.0)
    search = KeySearch(clock=clock)

    def seen(*held):
        entries = [{"_key": k, "holder": h, "held": on} for k, h, on in held]
        search.seen_ms(entries)
        return [e["seen_ms"] for e in entries]

    assert seen((b"a", "x", True)) == [0]
    clock.now = 12.5017
    assert seen((b"a", "x", True), (b"b", "y", True)) == [2502, 0]  # whole ms, rounded
    clock.now = 13.0
    assert seen((b"a", "z", True), (b"b", "y", True)) == [0, 498]  # a changed hands
    clock.now = 14.0
    assert seen((b"b", "y", True)) == [1498]
    clock.now = 15.0
    assert seen((b"a", "z", True), (b"b", "y", False)) == [0, None]  # a was forgotten


# -- read_live on the suite's server -----------------------------------------------------
SETTINGS = SimpleNamespace(scan_count=1_000, live_scan_keys=100_000, live_max_keys=1_000)


def test_our_limiter_and_a_foreign_one_on_one_node(r):
    from dashboard.patterns.ratelimit import RateLimiter

    RateLimiter(r, "api", 5, 60, algorithm="fixed").hit("alice")
    r.set("LIMITS:LIMITER/bob/5/1/minute", 2, px=60_000)
    for i in range(MAX_SKIPPED_SHOWN + 2):
        r.set(f"LIMITS:junk{i:02}", 1)  # under the limits prefix, not in its layout
    detectors = Detectors(user=(), problems=["a broken detectors file"])
    reading = read_live(r, SETTINGS, KeySearch(), detectors, "ratelimit")
    node = reading["entries"][0]["node"]
    shown = {(e["layout"], e["identity"], e["used"], e["node"]) for e in reading["entries"]}
    assert shown == {("dashboard", "alice", 1, node), ("limits", "bob", 2, node)}
    alice, bob = sorted(reading["entries"], key=lambda e: e["identity"])
    assert alice.keys() == bob.keys()  # ours and a library's: one shape for the page
    key = b"LIMITS:LIMITER/bob/5/1/minute"
    assert (bob["key"], bob["id"], bob["_key"]) == (key.decode(), key_address(key), key)
    skipped = reading["search"]["skipped"]
    why = "matches a search glob but no rate-limit layout reads this name"
    assert skipped["keys"] == MAX_SKIPPED_SHOWN + 2
    assert len(skipped["examples"]) == MAX_SKIPPED_SHOWN
    junk = {f"LIMITS:junk{i:02}" for i in range(MAX_SKIPPED_SHOWN + 2)}
    for example in skipped["examples"]:  # the first ones found, in SCAN's order
        assert example["key"] in junk and example["reason"] == why
        assert example["id"] == key_address(example["key"].encode())
    assert reading["errors"] == ["a broken detectors file"]
    assert reading["layouts"] == ["dashboard", "limits"]
    assert reading["search"]["complete"] and "errors" not in reading["search"]


def test_a_python_redis_lock_wake_up_list_is_skipped_with_why(r):
    r.rpush("lock-signal:job", 1)  # python-redis-lock's; a glob of "lock*" finds it
    r.set("lock:job", "token", px=30_000)
    detectors = Detectors(lock_patterns=("lock*",))
    reading = read_live(r, SETTINGS, KeySearch(), detectors, "lock")
    assert [e["key"] for e in reading["entries"]] == ["lock:job"]
    assert reading["search"]["skipped"]["examples"] == [
        {
            "key": "lock-signal:job",
            "id": key_address(b"lock-signal:job"),
            "reason": "python-redis-lock's wake-up list, not a lock",
        }
    ]


def test_a_node_that_refuses_a_read_is_named_with_the_reason(private_server):
    server = private_server()
    admin = redis.Redis(port=server.port)
    admin.acl_setuser(
        "viewer", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-time"]
    )
    admin.set("LIMITS:LIMITER/bob/5/1/minute", 2, px=60_000)
    viewer = redis.Redis(port=server.port, username="viewer", password="pw")
    reading = read_live(viewer, SETTINGS, KeySearch(), Detectors(), "ratelimit")
    assert reading["entries"] == []
    [error] = reading["errors"]
    assert error.startswith(f"reading 1 keys on localhost:{server.port}: ")
    assert "'time'" in error
