"""Paths of lua/*.lua that ordinary use rarely takes, each checked against the contract
in the script's header or the pattern's docs: resends (the same request twice), id
collisions, exact max-age boundaries on the store's clock, a denied sliding hit's two
times, the scan script's own server time. Found with tests/mutation lua."""

import time

import pytest

from dashboard.patterns import scripts, sessions
from dashboard.patterns.ratelimit import RateLimiter
from dashboard.patterns.sessions import SessionStore

# --- set_if_absent: SET NX PX that a resend finds done ------------------------------------


def test_set_if_absent_answers_a_resend_and_refuses_another_token(r):
    take = scripts.load("set_if_absent")
    assert take(r, keys=["k"], args=["tok-1", 5000]) == 1
    assert take(r, keys=["k"], args=["tok-1", 5000]) == 1  # the same request again
    assert take(r, keys=["k"], args=["tok-2", 5000]) == 0
    assert r.get("k") == b"tok-1" and 0 < r.pttl("k") <= 5000


# --- session_create: idempotent, never overwrites ------------------------------------------


def _create(r, uid, created):
    create = scripts.load("session_create")
    fields = ["uid", uid, "created_ms", created, "last_access_ms", created, "d:x", "1"]
    return create(r, keys=["session:s1"], args=[60_000, *fields])


def test_session_create_answers_its_own_resend(r):
    assert _create(r, "u1", 1000) == 1
    assert _create(r, "u1", 1000) == 1  # same uid and created_ms: this very request
    assert r.hgetall("session:s1")[b"uid"] == b"u1"
    assert 0 < r.pttl("session:s1") <= 60_000


@pytest.mark.parametrize(("uid", "created"), [("u2", 1000), ("u1", 2000), ("u2", 2000)])
def test_session_create_refuses_an_id_that_is_taken(r, uid, created):
    assert _create(r, "u1", 1000) == 1
    assert _create(r, uid, created) == 0
    assert r.hgetall("session:s1") == {
        b"uid": b"u1",
        b"created_ms": b"1000",
        b"last_access_ms": b"1000",
        b"d:x": b"1",
    }


def test_a_colliding_session_id_is_refused_by_the_store(r, monkeypatch):
    store = SessionStore(r, ttl=60, clock=lambda: 1000.0)
    same = "S" * 43  # the shape of token_urlsafe(32)
    monkeypatch.setattr(sessions.secrets, "token_urlsafe", lambda n: same)
    assert store.create("u1") == same
    with pytest.raises(RuntimeError, match="collision"):
        store.create("u2")  # created in the same ms: only the uid differs
    assert store.get(same).user_id == "u1"


# --- session_touch: max age on the store's clock, deletes and sets in one touch ------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_session_at_its_max_age_is_gone_and_one_ms_before_it_is_not(r):
    clock = Clock(1000.0)
    store = SessionStore(r, ttl=10, clock=clock, max_age=20)
    sid = store.create("u1")
    clock.now = 1020.0 - 1 / 1024  # 1019999.02 ms: 1 ms of its max age left
    session = store.get(sid)
    assert session is not None and session.ttl_ms == 1
    sid = store.create("u2")  # created at 1019999 ms
    clock.now = 1039.9990234375  # 1039999.02 ms -> 1039999: exactly 20 s after it
    assert store.get(sid) is None
    assert not r.exists(store.session_key(sid))


def test_one_touch_deletes_and_sets_fields(r):
    store = SessionStore(r, ttl=60, index_users=False)
    sid = store.create("u1", {"a": 1, "b": 2, "c": 3})
    assert store.update(sid, {"d": 4, "a": 5}, remove=["b", "c"])
    assert store.get(sid).data == {"a": 5, "d": 4}
    assert store.update(sid, remove=["d"])
    assert store.get(sid).data == {"a": 5}


# --- ratelimit_sliding: a denied hit's reset (newest entry) and retry (oldest) -------------


def test_a_denied_sliding_hit_resets_after_its_newest_entry(r):
    limiter = RateLimiter(r, "two", 2, 10, algorithm="sliding")
    assert limiter.hit("who").allowed
    time.sleep(0.05)
    assert limiter.hit("who").allowed
    denied = limiter.hit("who")
    assert not denied.allowed
    # retry: when the oldest leaves; reset: when the newest (50 ms younger) leaves
    assert 0 < denied.retry_after_s < denied.reset_after_s <= 10
    assert denied.reset_after_s - denied.retry_after_s >= 0.04


# --- scan_batch: the server time it reports --------------------------------------------------


def test_scan_batch_server_time_is_within_the_call(r):
    r.set("a", "1")
    batch = scripts.load("scan_batch")
    for _ in range(20):
        began = time.perf_counter()
        reply = batch.call_ro(r, [b"a"] * 50, [b""])
        wall_us = (time.perf_counter() - began) * 1_000_000
        assert 0 <= int(reply.split(b"\t")[0]) <= wall_us
