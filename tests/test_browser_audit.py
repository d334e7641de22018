"""Browser test: /audit shows the findings of a planted server in Chromium."""

import pytest

pytestmark = pytest.mark.browser

HTML_KEY = b"cache:<img src=x onerror=alert(1)>"


def test_audit_page_shows_planted_findings_and_reruns(live_server, page, r):
    r.set("lock:{order-1}", "token")  # critical: a lock without TTL
    r.set("blob:report:1", "x" * 150_000, ex=600)  # warning: big string
    r.set(HTML_KEY, "v")  # a hostile key, shown as an example of missing-ttl
    for i in range(5):
        r.set(f"cache:page:{i}", "v", ex=600)
    base = live_server(scan_count=10, scan_throttle_ms=20)
    page.goto(base + "/audit")
    # The page polls the progress fragment, then reloads with the report.
    page.locator("#audit-summary").wait_for(timeout=60_000)
    lock = page.locator("#rule-lock-without-ttl")
    assert "critical" in lock.locator("h3").inner_text()
    assert lock.locator("xpath=ancestor::section[@id='severity-critical']").count() == 1
    assert lock.locator("td.subject").inner_text() == "lock:{order-1}"
    assert "dashboard.patterns.locks" in lock.locator(".fix").inner_text()
    assert page.locator("#rule-big-string td.subject").inner_text() == "blob:report"
    assert "cache:<img src=x onerror=alert(1)>" in page.locator("#rule-missing-ttl").inner_text()
    assert int(page.locator("#count-critical").inner_text()) >= 1
    assert "hot-keys" in page.locator("#audit-notes").inner_text()
    assert page.locator("img").count() == 0

    # Re-run after fixing the lock: the report no longer lists it.
    r.pexpire("lock:{order-1}", 60_000)
    with page.expect_navigation(timeout=60_000):  # POST, then the redirect back
        page.locator("#rerun").click()
    # While it runs the page keeps the old report under a progress panel, then reloads.
    page.locator("#audit-progress").wait_for(state="detached", timeout=60_000)
    page.locator("#rule-big-string").wait_for(timeout=60_000)
    assert page.locator("#rule-lock-without-ttl").count() == 0
    assert page.dialogs == [] and not page.errors
