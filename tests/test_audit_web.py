"""The /audit page: background job, JSON twin, re-run with CSRF, Markdown export."""

import re
import time

from observer_support import observer_of

HOSTILE = b"cache:<img src=x onerror=alert(1)>"


def _wait(web):
    for _ in range(600):
        data = web.get("/audit.json").get_json()
        if data["job"]["state"] != "running":
            return data
        time.sleep(0.02)
    raise AssertionError("the audit did not finish")


def _csrf(web) -> str:
    html = web.get("/audit").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_page_starts_the_audit_and_shows_findings(web, r):
    r.set("lock:{order-1}", "token")
    r.set(HOSTILE, "v")
    r.set("cache:ok", "v", ex=60)
    first = web.get("/audit")
    assert first.status_code == 200
    data = _wait(web)
    assert data["job"]["state"] == "done" and data["job"]["age_s"] is not None
    report = data["report"]
    assert {"lock:{order-1}"} == {
        f["subject"] for f in report["findings"] if f["rule"] == "lock-without-ttl"
    }
    html = web.get("/audit").get_data(as_text=True)
    assert 'id="rule-lock-without-ttl"' in html and "lock:{order-1}" in html
    assert "<code>dashboard.patterns.locks</code>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    progress = web.get("/audit/progress")
    assert progress.headers.get("HX-Refresh") == "true"


def test_rerun_needs_csrf_and_refreshes_the_report(web, r):
    web.get("/audit")
    before = _wait(web)
    assert web.post("/audit/run").status_code == 400  # no token
    r.set("jobs:nightly:lock", "host")
    token = _csrf(web)
    reply = web.post("/audit/run", data={"csrf_token": token})
    assert reply.status_code == 302
    after = _wait(web)
    assert after["job"]["finished_at"] >= before["job"]["finished_at"]
    subjects = {f["subject"] for f in after["report"]["findings"]}
    assert "jobs:nightly:lock" in subjects


def test_markdown_export(web, r):
    assert observer_of(web).keyspace.wait(30)
    r.set("lock:{a}", "t")  # after the first scan: only a new scan sees it
    assert "`lock-without-ttl`" not in web.get("/audit.md").get_data(as_text=True)
    observer_of(web).rescan("test")
    _wait(web)
    reply = web.get("/audit.md")
    assert reply.status_code == 200 and reply.mimetype == "text/markdown"
    text = reply.get_data(as_text=True)
    assert text.startswith("# Redis audit") and "`lock-without-ttl`" in text


def test_unreachable_redis_is_shown_not_a_crash(make_app):
    from dashboard.embedded import free_port

    web = make_app(url=f"redis://127.0.0.1:{free_port()}/0", connect_timeout=1).test_client()
    assert web.get("/audit").status_code == 200
    data = _wait(web)
    assert data["job"]["state"] == "failed" and "unreachable" in data["job"]["error"]
    assert data["report"] is None
    assert "unreachable" in web.get("/audit").get_data(as_text=True)
