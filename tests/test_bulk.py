"""Bulk fixes from audit findings, against a real server: dry run, confirm, throttled
apply, report, the audit re-checked; refused with nothing written when read-only."""

import time

import pytest
import redis
from observer_support import observer_of
from write_support import csrf, wait_job, writes_seen

from dashboard.inspect.audit import load_config
from dashboard.inspect.keyspace.bulk import BulkAction, BulkError, BulkJob, Selector
from dashboard.inspect.keyspace.scan import ScanOptions
from dashboard.keyid import encode_key

NS = encode_key(b"session")


def _plant(r, n):
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"session:{i:x}", "v")
        if i % 5000 == 4999:
            pipe.execute()
    pipe.set("session:keep", "v", ex=5000)  # already expires: EXPIRE NX leaves it
    pipe.set("other:1", "v")  # another namespace: never touched
    pipe.set("lock:{job}:fence", "7")  # a lock's fencing counter must never expire
    pipe.execute()


def _finding(client, rule, subject):
    report = client.get("/audit.json").get_json()["report"]
    return [f for f in report["findings"] if f["rule"] == rule and f["subject"] == subject]


def _no_ttl(r, match):
    pipe = r.pipeline(transaction=False)
    keys = list(r.scan_iter(match=match, count=1000))
    for key in keys:
        pipe.ttl(key)
    return sum(1 for t in pipe.execute() if t == -1), len(keys)


def test_bulk_ttl_fix_of_100k_keys(make_app, r):
    n = 100_000
    _plant(r, n)
    client = make_app(allow_writes=True, rescan_interval=0).test_client()
    assert observer_of(client).keyspace.wait(60)
    assert _finding(client, "missing-ttl", "session")
    html = client.get("/audit").get_data(as_text=True)
    assert f"/bulk?rule=missing-ttl&amp;ns={NS}" in html
    token = csrf(client)
    form = {
        "csrf_token": token,
        "rule": "missing-ttl",
        "ns": NS,
        "action": "expire",
        "ttl": "3600",
        "spread": "10",
    }
    dry = client.post("/bulk/dryrun.json", data=form).get_json()["job"]
    dry = wait_job(client, dry["id"])
    assert dry["state"] == "done" and dry["would_change"] == n and dry["changed"] is None
    assert _no_ttl(r, "session:*")[0] == n  # a dry run writes nothing
    page = client.get(f"/bulk/job/{dry['id']}").get_data(as_text=True)
    assert "100,000" in page and 'id="apply"' in page
    done = client.post(
        "/bulk/apply.json", data={"csrf_token": token, "job": dry["id"], "confirm": "yes"}
    ).get_json()["job"]
    done = wait_job(client, done["id"])
    assert done["state"] == "done" and done["changed"] == n and done["skipped"] == 0
    # throttled: every step took at most one scan batch of keys
    assert done["max_step_keys"] <= 1000 and done["steps"] >= n // 1000
    missing, total = _no_ttl(r, "session:*")
    assert missing == 0 and total == n + 1
    assert 3600 <= r.ttl("session:0") <= 3960 and r.ttl("session:keep") <= 5000
    assert r.ttl("other:1") == -1 and r.ttl("lock:{job}:fence") == -1
    # the job asked for a new scan: the audit's finding for the namespace is gone
    deadline = time.monotonic() + 60
    while _finding(client, "missing-ttl", "session"):
        assert time.monotonic() < deadline, "the audit still reports session"
        observer_of(client).keyspace.wait(5)
        time.sleep(0.2)
    log = client.get("/writes.json").get_json()["writes"]
    assert log[0]["action"] == "bulk expire" and log[0]["ok"] is True
    assert f"changed {n:,}" in log[0]["outcome"] and log[0]["detail"]["job"] == done["id"]


def test_read_only_refuses_the_apply_and_writes_nothing(make_app, r):
    _plant(r, 2000)
    client = make_app(rescan_interval=0).test_client()
    token = csrf(client)
    form = {"csrf_token": token, "rule": "missing-ttl", "ns": NS, "action": "expire", "ttl": "60"}
    dry = wait_job(client, client.post("/bulk/dryrun.json", data=form).get_json()["job"]["id"])
    assert dry["would_change"] == 2000  # counting is a read: allowed read-only
    page = client.get(f"/bulk/job/{dry['id']}").get_data(as_text=True)
    assert 'id="apply-unavailable"' in page and "--allow-writes" in page
    before = writes_seen(r)
    answer = client.post(
        "/bulk/apply.json", data={"csrf_token": token, "job": dry["id"], "confirm": "yes"}
    )
    assert answer.status_code == 403 and "--allow-writes" in answer.get_json()["message"]
    time.sleep(0.5)  # nothing may still be running either
    assert writes_seen(r) == before
    assert _no_ttl(r, "session:*")[0] == 2000
    assert client.get("/writes.json").get_json()["writes"] == []


def test_apply_needs_a_finished_dry_run_and_the_confirmation(make_app, r):
    _plant(r, 10)
    client = make_app(allow_writes=True, rescan_interval=0).test_client()
    token = csrf(client)
    assert (
        client.post(
            "/bulk/apply.json", data={"csrf_token": token, "job": "nope", "confirm": "yes"}
        ).status_code
        == 404
    )
    form = {"csrf_token": token, "rule": "missing-ttl", "ns": NS, "ttl": "60"}
    dry = wait_job(client, client.post("/bulk/dryrun.json", data=form).get_json()["job"]["id"])
    unconfirmed = client.post("/bulk/apply.json", data={"csrf_token": token, "job": dry["id"]})
    assert unconfirmed.status_code == 400 and _no_ttl(r, "session:*")[0] == 10
    no_csrf = client.post("/bulk/apply.json", data={"job": dry["id"], "confirm": "yes"})
    assert no_csrf.status_code == 400 and _no_ttl(r, "session:*")[0] == 10


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"rule": "keys-command", "ns": NS}, 400),
        ({"rule": "missing-ttl", "ns": NS, "action": "unlink"}, 400),
        ({"rule": "missing-ttl", "ns": "!!"}, 400),
        ({"rule": "missing-ttl", "ns": NS, "ttl": "0"}, 400),
        ({"rule": "missing-ttl", "ns": NS, "spread": "90"}, 400),
        ({"rule": "missing-ttl"}, 400),
    ],
)
def test_bad_bulk_requests(make_app, r, form, status):
    client = make_app(allow_writes=True, rescan_interval=0).test_client()
    answer = client.post("/bulk/dryrun.json", data={"csrf_token": csrf(client), **form})
    assert answer.status_code == status and answer.get_json()["message"]


def test_big_string_unlink_deletes_only_the_big_ones(r, redis_server):
    config = load_config(None)
    limit = config.get("big-string", "max_bytes")
    r.set("blob:small", "x")
    r.set("blob:big", "x" * (limit + 1))
    r.set("blob:sub:big", "x" * (limit + 1))  # another namespace (blob:sub)
    r.hset("blob:hash", mapping={"a": "x" * (limit + 1)})  # not a string
    options = ScanOptions()
    selector = Selector.for_finding("big-string", (b"blob",), options, config)
    from dashboard import gate

    client = gate.install(redis.Redis(port=redis_server.port), True)
    job = BulkJob(selector, BulkAction("unlink"), True, options)
    job.run(client)
    assert job.state == "done" and job.changed == 1
    assert not r.exists("blob:big") and r.exists("blob:small", "blob:sub:big", "blob:hash") == 3


def test_the_gate_refuses_an_apply_job_on_a_read_only_client(r, redis_server):
    _plant(r, 50)
    from dashboard import gate

    client = gate.install(redis.Redis(port=redis_server.port), False)
    options = ScanOptions()
    selector = Selector.for_finding("missing-ttl", (b"session",), options, load_config(None))
    before = writes_seen(r)
    job = BulkJob(selector, BulkAction("expire", 60), True, options)
    job.run(client)
    assert job.state == "failed" and "read-only" in job.error and job.changed == 0
    assert writes_seen(r) == before


def test_actions_are_checked():
    with pytest.raises(BulkError):
        BulkAction("expire")
    with pytest.raises(BulkError):
        BulkAction("flush")
    with pytest.raises(BulkError):
        BulkAction("expire", 10, spread_pct=80)
