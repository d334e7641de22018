"""Known layouts (dashboard/inspect/layouts.py): the keys real libraries write are
recognised, only on evidence; the audit lists them instead of missing-ttl findings and
the keyspace rollup names each namespace's owner.

rq, celery/kombu, limits and python-redis-lock run for real against the suite's
redis-server. Sidekiq (Ruby) and BullMQ (Node) cannot be installed from PyPI: their
keys were captured from the real libraries by the scripts in tests/layouts/ and are
replayed here with the same names, types and TTLs.
"""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis_lock
from limits import RateLimitItemPerMinute, storage, strategies

from dashboard.inspect.audit.engine import run_audit
from dashboard.inspect.keyspace.rollup import Rollup, iter_nodes
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.inspect.keyspace.scanjob import scan_keyspace
from dashboard.inspect.layouts import LAYOUTS, LayoutTally

CAPTURES = Path(__file__).resolve().parent / "layouts"
_snapshots: list[dict[bytes, tuple[str, int]]] = []


# -- helpers -----------------------------------------------------------------------------
def _keyspace(r) -> dict[bytes, tuple[str, int]]:
    """Every key of the test database: (type, pttl). A key that vanished between SCAN
    and TYPE (kombu's short-lived unacked_mutex, a drained queue) is left out."""
    keys = {k: (r.type(k).decode(), r.pttl(k)) for k in r.scan_iter(count=1000)}
    return {k: v for k, v in keys.items() if v[0] != "none"}


def _attribution(keys: dict[bytes, tuple[str, int]]) -> tuple[dict[bytes, str | None], set]:
    """What the layout table makes of these keys: key -> library (None: no layout's key
    or no evidence) and the names of the libraries present."""
    tally, rollup = LayoutTally(), Rollup()
    groups: dict[tuple, list] = {}
    for key, (kind, ttl) in keys.items():
        groups.setdefault(rollup.namespace(key), []).append((key, kind, ttl, None, None))
    tally.add_page(groups)
    present = tally.present()
    out = {}
    for ns, facts in groups.items():
        marks = tally.page[ns] or [-1] * len(facts)
        for fact, lib in zip(facts, marks, strict=True):
            out[fact[0]] = LAYOUTS[lib].library if lib in present else None
    return out, {LAYOUTS[lib].library for lib in present}


def _owners(r) -> dict[str, str | None]:
    result = scan_keyspace(r, ScanOptions())["result"]
    return {node["path"] or node["name"]: node["owner"] for node in iter_nodes(result["tree"])}


def _findings(report, rule):
    return [f for f in report["findings"] if f["rule"] == rule]


def _known(report, library):
    return next((k for k in report["known_layouts"] if k["library"] == library), None)


def _write(r, key: bytes, kind: str, ttl: bool) -> None:
    """A key of ``kind`` (what a library wrote there), with a TTL or without."""
    writers = {
        "string": lambda: r.set(key, "1"),
        "hash": lambda: r.hset(key, "f", "v"),
        "list": lambda: r.rpush(key, "x"),
        "set": lambda: r.sadd(key, "x"),
        "zset": lambda: r.zadd(key, {"x": 1}),
        "stream": lambda: r.xadd(key, {"f": "v"}),
    }
    writers[kind]()
    if ttl:
        r.pexpire(key, 600_000)


def _assert_recognised_and_quiet(r, library: str, keys, exceptions=()) -> None:
    """Every key is the library's; the audit lists them under known_layouts, with
    keys lacking a TTL, and reports no missing-ttl / no-namespace for them."""
    attributed, present = _attribution(keys)
    assert library in present
    strays = [k for k, lib in attributed.items() if lib != library and k not in exceptions]
    assert not strays, f"not recognised as {library}: {strays}"
    report = run_audit(r)
    known = _known(report, library)
    assert known is not None and known["keys"] == len(keys) - len(exceptions)
    assert known["without_ttl"] > 0 and known["note"]
    assert not _findings(report, "missing-ttl"), _findings(report, "missing-ttl")
    assert not _findings(report, "no-namespace"), _findings(report, "no-namespace")


# -- rq, for real ----------------------------------------------------------------------------
def rq_double(x):
    return x * 2


def rq_boom():
    raise ValueError("boom")


def rq_snapshot(port):
    """Runs inside rq's worker: what the keyspace looks like while a job is started."""
    import redis

    _snapshots.append(_keyspace(redis.Redis(port=port)))
    return "seen"


def test_rq_layout_written_by_rq(r, redis_server):
    from rq import Queue
    from rq.worker import SimpleWorker

    _snapshots.clear()
    default, emails = Queue("default", connection=r), Queue("emails", connection=r)
    first = default.enqueue(rq_double, 1)
    default.enqueue(rq_boom)
    default.enqueue(rq_double, 2, depends_on=first)
    default.enqueue_in(timedelta(hours=1), rq_double, 3)
    default.enqueue(rq_snapshot, redis_server.port)
    emails.enqueue(rq_double, 4)
    emails.enqueue(rq_double, 5).cancel()
    SimpleWorker([default], connection=r).work(burst=True)
    default.enqueue(rq_double, 6)  # queued, never run: no TTL while it waits
    assert len(_snapshots) == 1  # the job really ran inside the worker
    for keys in (_snapshots[0], _keyspace(r)):
        attributed, present = _attribution(keys)
        assert present == {"rq"}
        assert set(attributed.values()) == {"rq"}, attributed
    started = [key for key, (kind, _) in _snapshots[0].items() if kind == "zset"]
    assert any(key.startswith(b"rq:wip") for key in started)  # seen while the job ran
    _assert_recognised_and_quiet(r, "rq", _keyspace(r))
    owners = _owners(r)
    assert owners["rq"] == "rq" and owners["rq:job"] == "rq" and owners["rq:queue"] == "rq"
    r.set("rq:settings", "mine")  # under rq's own prefix: rq's, once rq is there
    assert _attribution(_keyspace(r))[0][b"rq:settings"] == "rq"


# -- celery/kombu, for real --------------------------------------------------------------
def test_celery_layout_written_by_a_celery_worker(r, redis_url):
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    app = Celery("shop", broker=redis_url, backend=redis_url)

    @app.task(name="shop.add")
    def add(x, y):
        return x + y

    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        assert add.delay(1, 2).get(timeout=30) == 3
        add.apply_async((3, 4), countdown=3600)  # the worker holds it: kombu's unacked
        deadline = time.monotonic() + 30
        while not r.exists("unacked") and time.monotonic() < deadline:
            time.sleep(0.02)
        busy = _keyspace(r)
    add.apply_async((5, 6), priority=6)  # a priority queue: celery\x06\x16<n>
    assert {b"unacked", b"unacked_index", b"_kombu.binding.celery"} <= set(busy)
    idle = _keyspace(r)
    assert any(k.startswith(b"celery\x06\x16") for k in idle)
    for keys in (busy, idle):
        attributed, present = _attribution(keys)
        strays = {k: keys[k] for k, lib in attributed.items() if lib != "celery/kombu"}
        assert present == {"celery/kombu"} and not strays, strays
    _assert_recognised_and_quiet(r, "celery/kombu", idle)
    assert _owners(r)["(root)"] == "celery/kombu"
    r.set("feature-flags", "on")  # one key of yours in the root bucket: no owner there
    assert _owners(r)["(root)"] is None


# -- captured from Sidekiq and BullMQ ---------------------------------------------------------
def _capture(name: str, phase: str) -> list[tuple[bytes, str, bool]]:
    rows = [line.split(" ") for line in (CAPTURES / name).read_text().splitlines()]
    return [(key.encode(), kind, ttl == "ttl") for ph, key, kind, ttl in rows if ph == phase]


@pytest.mark.parametrize("phase", ["busy", "idle"])
@pytest.mark.parametrize(
    ("capture", "library", "owned"),
    [
        ("sidekiq-6.4.1.keys", "Sidekiq", ["queue", "stat"]),
        ("bullmq-5.81.5.keys", "BullMQ", ["bull", "bull:emails", "bull:reports"]),
    ],
)
def test_captured_layouts(r, capture, library, owned, phase):
    rows = _capture(capture, phase)
    for key, kind, ttl in rows:
        _write(r, key, kind, ttl)
    # Sidekiq's per-process heartbeat hash (<host>:<pid>:<nonce>, TTL 60 s) has no
    # fixed prefix: documented as not attributed (docs/scan.md)
    heartbeat = {key for key, kind, ttl in rows if kind == "hash" and ttl and b"stat" not in key}
    exceptions = heartbeat if library == "Sidekiq" else set()
    _assert_recognised_and_quiet(r, library, _keyspace(r), exceptions)
    owners = _owners(r)
    shown = [ns for ns in owned if ns in owners]
    assert shown and all(owners[ns] == library for ns in shown), owners


# -- limits and python-redis-lock, for real -----------------------------------------------------
def test_limits_and_python_redis_lock(r, redis_url):
    store = storage.storage_from_string(redis_url)
    for strategy in (strategies.FixedWindowRateLimiter, strategies.MovingWindowRateLimiter):
        for who in ("alice", "bob"):
            strategy(store).hit(RateLimitItemPerMinute(10), who, strategy.__name__)
    strategies.SlidingWindowCounterRateLimiter(store).hit(RateLimitItemPerMinute(5), "eve")
    for name in ("a", "b"):
        lock = redis_lock.Lock(r, name, expire=60, signal_expire=600_000)
        lock.acquire()
        lock.release()  # leaves its wake-up list lock-signal:<name> behind
    attributed, present = _attribution(_keyspace(r))
    assert present == {"limits", "python-redis-lock"}
    assert all(lib == ("limits" if k.startswith(b"LIMITS") else "python-redis-lock")
               for k, lib in attributed.items())  # fmt: skip
    owners = _owners(r)
    assert owners["LIMITS"] == "limits" and owners["lock-signal"] == "python-redis-lock"


# -- evidence, not names -------------------------------------------------------------------------
LOOKALIKES = [
    (b"queue:orders", "list"),  # Sidekiq's queue name, alone
    (b"retry", "zset"),  # Sidekiq's sets, which no evidence rests on
    (b"dead", "zset"),
    (b"schedule", "zset"),
    (b"celery", "list"),  # kombu's default queue, alone
    (b"rq:settings", "string"),  # rq's prefix, nothing of rq's
    (b"bull:jobs:wait", "string"),  # BullMQ's name, wrong type
    (b"bull:jobs:meta", "string"),
    (b"unacked", "string"),  # kombu's names, wrong types
    (b"unacked_index", "set"),
    (b"queues", "list"),
    (b"lock-signal:x", "list"),  # one python-redis-lock wake-up list
]


def test_lookalikes_without_evidence_stay_ordinary_keys(r):
    for key, kind in LOOKALIKES:
        _write(r, key, kind, ttl=False)
    attributed, present = _attribution(_keyspace(r))
    assert present == set() and set(attributed.values()) == {None}
    report = run_audit(r)
    assert report["known_layouts"] == []
    flagged = {f["subject"] for f in _findings(report, "missing-ttl")}
    assert {"queue", "rq", "bull:jobs", "(root)"} <= flagged  # reported, not silenced
    assert set(_owners(r).values()) == {None}


def test_evidence_is_names_plus_types_and_a_mixed_namespace_keeps_its_own_keys(r):
    r.rpush("queue:orders", "job")
    r.sadd("queues", "orders")  # Sidekiq's layout, two roles: recognised
    r.hset("queue:config", "f", "v")  # a hash: no role of Sidekiq's, so yours
    report = run_audit(r)
    assert _known(report, "Sidekiq")["keys"] == 2
    (finding,) = [f for f in _findings(report, "missing-ttl") if f["subject"] == "queue"]
    assert finding["evidence"]["keys"] == 1 and finding["evidence"]["examples"] == ["queue:config"]
    assert finding["evidence"]["known_layout_keys"] == {"Sidekiq": 1}
    assert _owners(r)["queue"] is None  # not every key of it is Sidekiq's


def test_hostile_names_are_classified_without_harm(r):
    from rq import Queue

    Queue("default", connection=r).enqueue(rq_double, 1)
    huge = b"rq:queue:" + b"\xff" * 100_000
    odd = [huge, b"rq:job:\xfe\xff", b"rq:job:a\nb", b"rq:queue:<script>"]
    for key, kind in zip(odd, ["list", "hash", "hash", "list"], strict=True):
        _write(r, key, kind, ttl=False)
    attributed, _ = _attribution(_keyspace(r))
    assert all(attributed[key] == "rq" for key in odd)
    report = run_audit(r)
    assert _known(report, "rq") and not _findings(report, "missing-ttl")
    assert len(json.dumps(report)) < 50_000  # the 100 KB name is shown cut, not whole


def test_random_user_keys_never_make_a_library_present():
    rng = random.Random(7)
    words = [b"user", b"cart", b"order", b"queue_x", b"jobs", b"stats", b"celeryx", b"bulls"]
    kinds = ["string", "hash", "list", "set", "zset", "stream"]
    keys = {}
    for _ in range(5_000):
        parts = [rng.choice(words) for _ in range(rng.randint(1, 4))]
        key = b":".join(parts) + bytes([rng.randrange(256)])
        keys[key] = (rng.choice(kinds), rng.choice([-1, 5000]))
    attributed, present = _attribution(keys)
    assert present == set() and set(attributed.values()) == {None}


def test_keyspace_page_labels_the_owner(web, r):
    for key, kind, ttl in _capture("bullmq-5.81.5.keys", "idle"):
        _write(r, key, kind, ttl)
    r.set("user:1", "x")
    deadline = time.monotonic() + 20
    while web.get("/keyspace.json").get_json()["scan"]["state"] != "done":
        assert time.monotonic() < deadline, "scan did not finish"
        time.sleep(0.05)
    data = web.get("/keyspace.json").get_json()
    owners = {c["name"]: c["owner"] for c in data["children"]}
    assert owners["bull"] == "BullMQ" and owners["user"] is None
    html = web.get("/keyspace").get_data(as_text=True)
    assert html.count('class="badge info owner"') == 1 and ">BullMQ</span>" in html


def test_audit_page_and_formats_list_known_layouts(web, r):
    from dashboard.inspect.audit.formats import to_markdown, to_text

    for key, kind, ttl in _capture("sidekiq-6.4.1.keys", "idle"):
        _write(r, key, kind, ttl)
    web.get("/audit")
    deadline = time.monotonic() + 30
    while (data := web.get("/audit.json").get_json())["job"]["state"] == "running":
        assert time.monotonic() < deadline, "the audit did not finish"
        time.sleep(0.02)
    report = data["report"]
    assert [k["library"] for k in report["known_layouts"]] == ["Sidekiq"]
    html = web.get("/audit").get_data(as_text=True)
    assert 'id="audit-known-layouts"' in html and "<strong>Sidekiq</strong>" in html
    assert "known layout: Sidekiq:" in to_text(report)
    assert "## Known layouts" in to_markdown(report) and "Sidekiq" in to_markdown(report)
