"""dashboard/inspect/live/state.py: what /locks and /ratelimits show from one reading
(lock_view, ratelimit_view), fed readings written out here: the order rows appear in,
the flags, the totals in the page header, the search filter, which fields reach the
JSON; and the reading itself (read_live, _read_locks) on the suite's redis-server.
The pages end to end with real libraries are in test_live_views.py."""

from types import SimpleNamespace

import pytest

from dashboard.inspect.live.state import lock_view, ratelimit_view

SETTINGS = SimpleNamespace(top_n=3, allow_writes=False)
DONE = {"complete": True, "patterns": ["lock:*"]}


def _lock(resource, *, held=True, age=None, seen=None, forever=False, long=False, **stats):
    return {
        "layout": stats.pop("layout", "redis-py"),
        "resource": resource,
        "key": f"lock:{resource}",
        "_key": f"lock:{resource}".encode(),
        "held": held,
        "held_forever": forever,
        "unusually_long": long,
        "age_ms": age,
        "seen_ms": seen,
        "failures": stats.pop("failures", None),
        "attempts": stats.pop("attempts", None),
    }


def _reading(entries, search=DONE, errors=(), layouts=("dashboard",)):
    return {"entries": entries, "search": search, "errors": list(errors), "layouts": layouts}


def _names(rows, field="resource"):
    return [row[field] for row in rows]


def test_held_locks_flagged_first_then_longest_held():
    entries = [
        _lock("plain-b", age=5_000),
        _lock("forever", seen=100, forever=True),
        _lock("long", age=9_000, long=True),
        _lock("seen-only", seen=7_000),  # a foreign lock: no age, how long we have seen it
        _lock("plain-a", age=5_000),  # the same age as plain-b: by name
        _lock("both", age=1, forever=True, long=True),
        _lock("just-seen", seen=1),
        _lock("a-nothing-known"),  # neither age nor seen: last
        _lock("gone", held=False, attempts=4),
    ]
    view = lock_view(_reading(entries), SETTINGS)
    held = view["locks"]
    assert _names(held) == [
        "long",
        "forever",
        "both",
        "seen-only",
        "plain-a",
        "plain-b",
        "just-seen",
        "a-nothing-known",
    ]
    assert {row["resource"]: row["flags"] for row in held} == {
        "long": ["unusually long"],
        "forever": ["held forever"],
        "both": ["held forever", "unusually long"],
        "seen-only": [],
        "plain-a": [],
        "plain-b": [],
        "just-seen": [],
        "a-nothing-known": [],
    }
    assert view["totals"] == {"held": 8, "held_forever": 2, "unusually_long": 2, "contended": 0}
    assert _names(view["recent"]) == ["gone"]
    assert "flags" not in view["recent"][0]  # only held locks are flagged


def test_idle_locks_most_contended_first():
    entries = [
        _lock("calm", held=False, attempts=50, failures=0),
        _lock("busy", held=False, attempts=10, failures=3),
        _lock("busier", held=False, attempts=5, failures=7),
        _lock("tie-b", held=False, attempts=9, failures=3),
        _lock("tie-a", held=False, attempts=9, failures=3),
        _lock("one-failure", held=False, attempts=2, failures=1),
        _lock("one-try", held=False, attempts=1, failures=0),
        _lock("a-unknown", held=False),  # counters unknown (None): after every known one
        _lock("held", age=10, failures=2, attempts=2),
    ]
    view = lock_view(_reading(entries), SETTINGS)
    assert _names(view["recent"]) == [
        "busier",
        "busy",
        "tie-a",
        "tie-b",
        "one-failure",
        "calm",
        "one-try",
        "a-unknown",
    ]
    # contended: every lock with a failure, held or not
    assert view["totals"] == {"held": 1, "held_forever": 0, "unusually_long": 0, "contended": 6}


def test_lock_view_passes_the_reading_through_and_hides_private_fields():
    search = {"complete": True, "found": 2}
    settings = SimpleNamespace(top_n=3, allow_writes=True)
    reading = _reading([_lock("a", age=1)], search, ["one error"], ["dashboard", "redis-py"])
    view = lock_view(reading, settings)
    assert view["locks"] == [
        {
            "layout": "redis-py",
            "resource": "a",
            "key": "lock:a",
            "held": True,
            "held_forever": False,
            "unusually_long": False,
            "age_ms": 1,
            "seen_ms": None,
            "failures": None,
            "attempts": None,
            "flags": [],
        }
    ]
    assert view["search"] is search and view["errors"] == ["one error"]
    assert view["layouts"] == ["dashboard", "redis-py"]
    assert (view["q"], view["live"], view["allow_writes"]) == ("", True, True)
    assert "flags" not in reading["entries"][0]  # the reading itself is left as it was


@pytest.mark.parametrize(
    ("held", "complete", "live"), [(True, True, True), (False, True, False), (False, False, True)]
)
def test_locks_page_polls_while_something_is_held_or_the_search_goes_on(held, complete, live):
    """``live`` keeps the page refreshing: a held lock, or a search not done yet."""
    reading = _reading([_lock("x", held=held)], {"complete": complete})
    assert lock_view(reading, SETTINGS)["live"] is live


def test_lock_filter_matches_any_shown_name_case_insensitively():
    entries = [
        _lock("Orders", age=1),
        _lock("billing", age=1, layout="python-redis-lock"),
        _lock("jobs", held=False, attempts=1),
    ]
    reading = _reading(entries)
    assert _names(lock_view(reading, SETTINGS, "  ORD ")["locks"]) == ["Orders"]
    assert _names(lock_view(reading, SETTINGS, "python-redis")["locks"]) == ["billing"]
    found = lock_view(reading, SETTINGS, "lock:jobs")  # the key, not only the resource
    assert (found["locks"], _names(found["recent"])) == ([], ["jobs"])
    assert found["totals"]["held"] == 0 and found["q"] == "lock:jobs"
    assert len(lock_view(reading, SETTINGS, "   ")["locks"]) == 2  # blank: everything
    assert lock_view(reading, SETTINGS, "nowhere")["locks"] == []
    # a lock has no limiter or identity: a field a row lacks matches no text at all
    for text in ("none", "xxxx"):
        assert lock_view(reading, SETTINGS, text)["locks"] == []


# -- rate limits -----------------------------------------------------------------------------
def _hit(limiter, identity, used, limit=10, *, blocked=False, layout="limits", window=60_000):
    return {
        "layout": layout,
        "limiter": limiter,
        "identity": identity,
        "algorithm": "fixed-window",
        "limit": limit,
        "window_ms": window,
        "used": used,
        "remaining": None if limit is None else max(0, limit - used),
        "blocked": blocked,
        "key": f"LIMITS:{limiter}/{identity}",
        "_key": f"LIMITS:{limiter}/{identity}".encode(),
    }


def test_limiters_grouped_blocked_first_then_busiest():
    entries = [
        _hit("api", "alice", 4),
        _hit("api", "bob", 10, blocked=True),
        _hit("api", "carol", 0),
        _hit("login", "mallory", 3, limit=3, blocked=True),
        _hit("search", "dave", 9, limit=100),
        _hit("export", "erin", 9, limit=20),  # the same use as search: by name
        _hit("api", "zed", 2, window=1_000),  # another window: another limiter row
    ]
    view = ratelimit_view(_reading(entries), SETTINGS)
    rows = [
        (g["limiter"], g["window_ms"], g["identities"], g["blocked"], g["used"])
        for g in view["limiters"]
    ]
    assert rows == [
        ("api", 60_000, 3, 1, 14),  # blocked 1, used 14: before login (blocked 1, used 3)
        ("login", 60_000, 1, 1, 3),
        ("export", 60_000, 1, 0, 9),
        ("search", 60_000, 1, 0, 9),
        ("api", 1_000, 1, 0, 2),
    ]
    api = view["limiters"][0]
    assert {k: api[k] for k in ("layout", "algorithm", "limit")} == {
        "layout": "limits",
        "algorithm": "fixed-window",
        "limit": 10,
    }
    # inside a limiter: blocked first, then by share of the limit used, then by name
    assert _names(api["entries"], "identity") == ["bob", "alice", "carol"]
    assert "_key" not in api["entries"][0] and api["entries"][0]["key"] == "LIMITS:api/bob"
    assert view["totals"] == {"limiters": 5, "identities": 7, "blocked": 2}


def test_identities_in_a_limiter_by_share_then_name():
    entries = [
        _hit("q", "low", 1),
        _hit("q", "b-high", 8),
        _hit("q", "a-high", 8),
        _hit("q", "mid", 5),
        _hit("q", "none-used", 0),
        _hit("q", "blocked-low", 1, blocked=True),
    ]
    view = ratelimit_view(_reading(entries), SETTINGS)
    assert _names(view["limiters"][0]["entries"], "identity") == [
        "blocked-low",
        "a-high",
        "b-high",
        "mid",
        "low",
        "none-used",
    ]


def test_top_consumers_blocked_then_by_share_of_their_limit():
    entries = [
        _hit("a", "idle", 0),  # used nothing: not a consumer
        _hit("a", "half", 5),  # 50 %
        _hit("b", "big", 40, limit=100),  # 40 %, but the most hits
        _hit("c", "refused", 0, limit=0, blocked=True),  # blocked with nothing used
        _hit("a", "most", 9),  # 90 %
        _hit("d", "many", 30, limit=None),  # no limit: share 0, ranked by hits
        _hit("d", "few", 2, limit=None),
    ]
    view = ratelimit_view(_reading(entries), SimpleNamespace(top_n=10, allow_writes=False))
    assert _names(view["top_consumers"], "identity") == [
        "refused",
        "most",
        "half",
        "big",
        "many",
        "few",
    ]
    assert "_key" not in view["top_consumers"][0]
    three = ratelimit_view(_reading(entries), SETTINGS)["top_consumers"]
    assert _names(three, "identity") == ["refused", "most", "half"]  # settings.top_n


def test_ratelimit_view_passes_the_reading_through():
    search = {"complete": False, "found": 0}
    view = ratelimit_view(_reading([], search, ["e"], ["dashboard", "limits"]), SETTINGS)
    assert view == {
        "limiters": [],
        "top_consumers": [],
        "totals": {"limiters": 0, "identities": 0, "blocked": 0},
        "search": search,
        "errors": ["e"],
        "layouts": ["dashboard", "limits"],
        "q": "",
        "live": True,  # nothing found yet, but the search is not done: keep polling
        "allow_writes": False,
    }
    done = ratelimit_view(_reading([]), SimpleNamespace(top_n=3, allow_writes=True))
    assert done["live"] is False and done["allow_writes"] is True
    idle = ratelimit_view(_reading([_hit("a", "x", 0)]), SETTINGS)
    assert idle["live"] is True  # an identity is shown, even with nothing used


def test_ratelimit_filter_by_limiter_identity_or_layout():
    entries = [
        _hit("api", "Alice", 1),
        _hit("login", "bob", 1),
        _hit("jobs", "carol", 1, layout="dashboard"),
    ]
    reading = _reading(entries)
    view = ratelimit_view(reading, SETTINGS, "alice")
    assert _names(view["top_consumers"], "identity") == ["Alice"]
    assert view["totals"] == {"limiters": 1, "identities": 1, "blocked": 0}
    assert view["q"] == "alice"
    assert _names(ratelimit_view(reading, SETTINGS, "LOGIN")["limiters"], "limiter") == ["login"]
    assert _names(ratelimit_view(reading, SETTINGS, "dashb")["limiters"], "limiter") == ["jobs"]


# -- reading: our locks, how long a holder was seen, the node's clock --------------------
def test_our_locks_are_flagged_only_when_another_writer_took_the_name(r):
    from test_live_readers import _ours

    from dashboard.inspect.live import state
    from dashboard.patterns.locks import Lock

    Lock(r, "mine", ttl=30).acquire()
    idle = Lock(r, "idle", ttl=30)
    idle.acquire()
    idle.release()
    Lock(r, "taken", ttl=30).acquire()
    r.set("lock:{taken}", "someone-else", px=30_000)  # code other than ours wrote it
    skipped = []
    claims = [_ours(name) for name in ("mine", "idle", "taken")]
    got = {claim.subject: entry for claim, entry in state._read_locks(r, claims, skipped)}
    assert {name: (e["layout"], e["held"], e["problem"]) for name, e in got.items()} == {
        "mine": ("dashboard", True, None),
        "idle": ("dashboard", False, None),  # released, its stats still shown
        "taken": (
            "dashboard",
            True,
            "its holder is not the one our :info recorded: code other than "
            "dashboard.patterns.locks wrote this key",
        ),
    }
    assert skipped == []


def test_an_idle_lock_of_ours_does_not_hide_the_next_one(r):
    from test_live_readers import _ours

    from dashboard.inspect.live import state
    from dashboard.patterns.locks import Lock

    idle = Lock(r, "idle", ttl=30)
    idle.acquire()
    idle.release()
    r.delete("lock:{idle}:info")  # only the fence is left: nothing to show
    Lock(r, "held", ttl=30).acquire()
    skipped = []
    read = state._read_locks(r, [_ours("idle"), _ours("held")], skipped)
    assert [claim.subject for claim, _ in read] == ["held"]
    assert skipped == [(b"lock:{idle}", "our layer's idle lock: no holder and no stats")]


def test_how_long_a_holder_was_seen_is_kept_per_lock(r):
    from dashboard.inspect.live.detectors import Detectors
    from dashboard.inspect.live.state import KeySearch, read_live

    now = [1_000.0]
    search = KeySearch(clock=lambda: now[0])
    settings = SimpleNamespace(scan_count=100, live_scan_keys=10_000, live_max_keys=100)
    r.set("lock:a", "worker-1")
    first = read_live(r, settings, search, Detectors(), "lock")
    assert [(e["key"], e["seen_ms"]) for e in first["entries"]] == [("lock:a", 0)]
    now[0] += 4.0
    search.expire()
    r.set("lock:b", "worker-1")  # another lock, the same holder text: seen from now on
    second = read_live(r, settings, search, Detectors(), "lock")
    seen = sorted((e["key"], e["seen_ms"]) for e in second["entries"])
    assert seen == [("lock:a", 4_000), ("lock:b", 0)]


@pytest.mark.parametrize(
    ("micros", "ms"),
    [(0, 1_700_000_000_000), (1_000, 1_700_000_000_001), (500_999, 1_700_000_000_500)],
)
def test_the_node_clock_in_whole_milliseconds(micros, ms):
    from dashboard.inspect.live.state import _server_ms

    class Node:
        def time(self):
            return (1_700_000_000, micros)

    assert _server_ms(Node()) == ms


def test_a_key_scan_returns_twice_is_listed_once_and_the_batch_goes_on():
    """SCAN may return a key more than once in a pass (the table was rehashed)."""
    from dashboard.inspect.live.state import KeySearch

    class Node:
        pages = {0: (7, [b"lock:a", b"lock:b"]), 7: (0, [b"lock:a", b"lock:c"])}

        def scan(self, cursor, match, count):
            return self.pages[cursor]

    found, report = KeySearch().advance([("n1", Node())], ["lock:*"], 10, 1_000, 100)
    assert found == {b"lock:a": "n1", b"lock:b": "n1", b"lock:c": "n1"}
    assert (report["complete"], report["scan_calls"], report["found"]) == (True, 2, 3)
