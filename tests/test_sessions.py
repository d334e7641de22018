import time

import pytest

from dashboard import gate
from dashboard.patterns import keys, scripts
from dashboard.patterns.sessions import SessionStore, session_state, user_index_state


class Clock:
    def __init__(self, start=1_700_000_000.0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def wait_gone(client, name):
    """Poll until the server expired ``name`` (short TTLs); fail instead of hanging."""
    for _ in range(500):
        if not client.exists(name):
            return
        time.sleep(0.01)
    pytest.fail(f"{name!r} never expired")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(r, clock):
    return SessionStore(r, ttl=10, clock=clock)


def test_create_and_get_round_trip(r, store, clock):
    sid = store.create(42, {"cart": [1, 2], "name": "Zoë"})
    skey = f"session:{sid}"
    assert r.type(skey) == b"hash"
    assert r.hget(skey, "d:cart") == b"[1,2]"
    assert 0 < r.pttl(skey) <= 10_000
    session = store.get(sid)
    assert session.user_id == "42"
    assert session.data == {"cart": [1, 2], "name": "Zoë"}
    assert session.created_ms == session.last_access_ms == int(clock() * 1000)
    assert session.ttl_ms == 10_000


def test_get_renews_ttl_and_access_time(r, store, clock):
    sid = store.create("u1")
    skey = f"session:{sid}"
    r.pexpire(skey, 500)  # as if 9.5 s had passed
    clock.advance(9.5)
    before = r.pttl(skey)
    session = store.get(sid)
    after = r.pttl(skey)
    assert before <= 500 < 5_000 < after
    assert session.last_access_ms == int(clock() * 1000)
    assert int(r.hget(skey, "last_access_ms")) == int(clock() * 1000)
    # the user index was pushed back with it and still outlives the session
    assert r.zscore("session:user:u1", sid) == int(clock() * 1000) + 10_000
    assert r.pttl("session:user:u1") > after


def test_update_sets_removes_and_renews(r, store):
    sid = store.create("u1", {"a": 1, "b": 2})
    r.pexpire(f"session:{sid}", 300)
    assert store.update(sid, {"c": {"x": None}}, remove=["a"])
    assert store.set(sid, "b", "two")
    assert store.get(sid).data == {"b": "two", "c": {"x": None}}
    assert r.pttl(f"session:{sid}") > 5_000


def test_update_on_expired_session_does_not_recreate_it(r, clock):
    store = SessionStore(r, ttl=0.03, clock=clock)
    sid = store.create("u1", {"a": 1})
    skey = f"session:{sid}"
    wait_gone(r, skey)
    assert store.update(sid, {"a": 2}) is False
    assert store.set(sid, "b", 3) is False
    assert store.get(sid) is None
    assert r.exists(skey) == 0
    assert r.pttl(skey) == -2


def test_update_on_deleted_session_writes_nothing(r, store):
    sid = store.create("u1")
    assert store.delete(sid) is True
    assert store.update(sid, {"a": 1}) is False
    assert r.exists(f"session:{sid}") == 0


def test_crafted_ids_never_address_other_keys(r, store):
    store.create("victim")
    assert r.type("session:user:victim") == b"zset"
    for bad in ["user:victim", "", "short", "x" * 200, "a b" * 10, None]:
        assert store.get(bad) is None
        assert store.update(bad, {"a": 1}) is False
        assert store.delete(bad) is False
    assert r.type("session:user:victim") == b"zset"


def test_delete_removes_session_and_index_entry(r, store):
    sid = store.create("u1")
    other = store.create("u1")
    assert store.delete(sid) is True
    assert store.delete(sid) is False
    assert r.exists(f"session:{sid}") == 0
    assert r.zscore("session:user:u1", sid) is None
    assert [s.sid for s in store.list_user_sessions("u1")] == [other]


def test_index_has_ttl_covering_its_sessions(r, store):
    sid = store.create("u1")
    index_ttl = r.pttl("session:user:u1")
    assert index_ttl > r.pttl(f"session:{sid}")
    assert index_ttl <= 10_000 + 60_000


def test_listing_prunes_sessions_that_expired(r, clock):
    long = SessionStore(r, ttl=10, clock=clock)
    short = SessionStore(r, ttl=0.03, clock=clock)
    keep = long.create("u1")
    gone = short.create("u1")
    wait_gone(r, f"session:{gone}")
    clock.advance(1)  # the short session's score is now in the past
    assert r.zscore("session:user:u1", gone) is not None
    listed = long.list_user_sessions("u1")
    assert [s.sid for s in listed] == [keep]
    assert 0 < listed[0].ttl_ms <= 10_000
    assert r.zscore("session:user:u1", gone) is None
    assert r.pttl("session:user:u1") > 0


def test_listing_verifies_entries_whose_score_lies(r, store, clock):
    alive = store.create("u1")
    r.zadd("session:user:u1", {alive: 0})  # score says expired, session is alive
    r.zadd("session:user:u1", {"A" * 43: int(clock() * 1000) + 99_000})  # no such session
    listed = store.list_user_sessions("u1")
    assert [s.sid for s in listed] == [alive]
    assert r.zscore("session:user:u1", alive) > clock() * 1000  # healed
    assert r.zscore("session:user:u1", "A" * 43) is None


def test_list_orders_by_last_access_and_respects_limit(store, clock):
    first = store.create("u1")
    clock.advance(1)
    second = store.create("u1")
    clock.advance(1)
    store.get(first)
    assert [s.sid for s in store.list_user_sessions("u1")] == [first, second]
    assert len(store.list_user_sessions("u1", limit=1)) == 1


def test_delete_all_for_user(r, store):
    mine = [store.create("u1") for _ in range(5)]
    theirs = store.create("u2")
    assert store.delete_all_for_user("u1", batch=2) == 5
    assert not any(r.exists(f"session:{s}") for s in mine)
    assert r.exists("session:user:u1") == 0
    assert store.get(theirs).user_id == "u2"


def test_delete_all_skips_sessions_of_another_user(r, store):
    victim = store.create("victim")
    r.zadd("session:user:attacker", {victim: 1})  # a forged/corrupt index entry
    assert store.delete_all_for_user("attacker") == 0
    assert r.exists(f"session:{victim}") == 1


def test_max_age_caps_sliding_renewal(r, clock):
    store = SessionStore(r, ttl=10, clock=clock, max_age=20)
    sid = store.create("u1")
    clock.advance(15)
    assert store.get(sid).ttl_ms == 5_000
    assert r.pttl(f"session:{sid}") <= 5_000
    clock.advance(6)
    assert store.get(sid) is None
    assert r.exists(f"session:{sid}") == 0


def test_without_index_no_index_key(r, clock):
    store = SessionStore(r, ttl=10, index_users=False, clock=clock)
    sid = store.create("u1")
    store.get(sid)
    assert r.exists("session:user:u1") == 0


def test_values_must_be_json(store):
    with pytest.raises(TypeError, match="'blob'"):
        store.create("u1", {"blob": object()})


def test_every_session_script_touches_exactly_one_key():
    """Session and index live in different slots: no script may take both."""
    for name in ("session_create", "session_touch", "session_index_add"):
        assert len(scripts.load(name).keys) == 1, name
    sid = "A" * 43
    assert keys.slot(f"session:{sid}") != keys.slot("session:user:u1")  # spread by design


# --- read side -------------------------------------------------------------------------


def test_session_state(r, store, clock):
    sid = store.create("u1", {f"f{i}": i for i in range(5)})
    clock.advance(3)
    state = session_state(r, f"session:{sid}".encode(), max_fields=2, clock=clock)
    assert state.sid == sid
    assert state.user_id == "u1"
    assert state.idle_ms == 3_000
    assert state.field_count == 8
    assert len(state.data_fields) == 2 and state.data_fields_truncated
    assert 0 < state.ttl_ms <= 10_000
    full = session_state(r, f"session:{sid}", clock=clock)
    assert full.data_fields == [f"f{i}" for i in range(5)] and not full.data_fields_truncated


def test_session_state_missing_wrong_type_and_binary(r):
    assert session_state(r, "session:nope") is None
    r.set("session:str", "pickled")
    with pytest.raises(ValueError, match="session:str"):
        session_state(r, "session:str")
    r.hset(b"session:\xff", mapping={"uid": b"\xfe", "d:x": "1"})
    state = session_state(r, b"session:\xff")
    assert state.key == "session:\\xff" and state.user_id == "\\xfe"
    assert state.ttl_ms == -1 and state.last_access_ms is None and state.idle_ms is None


def test_user_index_state(r, store, clock):
    sid = store.create("u1")
    r.zadd("session:user:u1", {"B" * 43: int(clock() * 1000) - 5})
    state = user_index_state(r, "session:user:u1", clock=clock)
    assert state.user_id == "u1"
    assert state.entries == 2
    assert state.due == 1
    assert state.ttl_covers_entries
    assert state.dangling_in_sample == 1
    assert {row["sid"]: row["exists"] for row in state.sample} == {sid: True, "B" * 43: False}
    assert user_index_state(r, "session:user:none") is None
    r.hset("session:x", "a", 1)
    with pytest.raises(ValueError, match="session:x"):
        user_index_state(r, "session:x")


def test_read_sides_pass_the_read_only_gate(r, store, make_client):
    sid = store.create("u1", {"a": 1})
    ro = gate.install(make_client(), allow_writes=False)
    assert session_state(ro, f"session:{sid}").user_id == "u1"
    assert user_index_state(ro, "session:user:u1").entries == 1
    with pytest.raises(gate.CommandRefused):  # the gate would catch a write
        SessionStore(ro, ttl=10).get(sid)


# --- fakeredis subset ------------------------------------------------------------------


def test_lifecycle_on_fakeredis(fake, clock):
    store = SessionStore(fake, ttl=10, clock=clock)
    sid = store.create("u1", {"a": 1})
    assert store.update(sid, {"b": 2})
    assert store.get(sid).data == {"a": 1, "b": 2}
    assert [s.sid for s in store.list_user_sessions("u1")] == [sid]
    assert store.delete(sid)
    assert store.update(sid, {"a": 1}) is False
    assert fake.exists(f"session:{sid}") == 0
    assert store.list_user_sessions("u1") == []
