"""Browser tests of /ratelimits and /locks: Chromium against `redis-dashboard serve`."""

import time

import pytest
from playwright.sync_api import expect

from dashboard.patterns.locks import Lock, lock_key
from dashboard.patterns.ratelimit import RateLimiter

pytestmark = pytest.mark.browser

HIDE = """hidden => {
  Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def _watch(page, path):
    """Record every request the page makes for ``path`` (polls included) and CSP reports."""
    seen, csp = [], []
    page.on("request", lambda req: seen.append(req.url) if path in req.url else None)
    page.on(
        "console",
        lambda msg: csp.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return seen, csp


def _no_polls_for(page, seen, ms=2500):
    seen.clear()
    page.wait_for_timeout(ms)
    return not seen


def test_ratelimits_page_updates_live_without_reload(live_server, page, r):
    limiter = RateLimiter(r, "api", 5, 60, algorithm="fixed")
    limiter.hit("alice")
    limiter.hit("alice")
    limiter.hit("<img src=x onerror=alert(1)>")
    base = live_server()
    _, csp = _watch(page, "/ratelimits")
    page.goto(base + "/ratelimits")
    row = page.locator('section[data-limiter="api"] tr[data-identity="alice"]')
    expect(row.locator(".used")).to_have_text("2")
    expect(row.locator(".status")).to_contain_text("ok")
    page.evaluate("window.__noReload = 42")
    for _ in range(3):
        limiter.hit("alice")
    expect(row.locator(".used")).to_have_text("5", timeout=10_000)
    expect(row.locator(".status")).to_contain_text("blocked")
    expect(page.locator("#total-blocked")).to_have_text("1")
    assert page.locator("#top-consumers tr[data-identity='alice']").count() == 1
    assert page.evaluate("window.__noReload") == 42  # swapped in place, not reloaded
    assert page.locator("img").count() == 0 and not page.dialogs  # the identity is text
    assert not page.errors and not csp


def test_polling_pauses_while_hidden_and_stops_when_nothing_is_left(live_server, page, r):
    limiter = RateLimiter(r, "api", 5, 60, algorithm="fixed")
    limiter.hit("bob")
    base = live_server()
    seen, _ = _watch(page, "/ratelimits")
    page.goto(base + "/ratelimits")
    with page.expect_request(lambda req: "/ratelimits" in req.url, timeout=10_000):
        pass  # it polls
    page.evaluate(HIDE, True)
    assert _no_polls_for(page, seen)  # hidden tab: no requests at all
    with page.expect_request(lambda req: "/ratelimits" in req.url, timeout=5_000):
        page.evaluate(HIDE, False)  # visible again: refreshes at once
    r.delete(limiter.key_for("bob"))
    expect(page.locator("#ratelimits-empty")).to_be_visible(timeout=10_000)
    assert _no_polls_for(page, seen)  # nothing to show: polling stopped
    limiter.hit("carol")
    page.locator("#ratelimits-recheck").click()
    expect(page.locator('tr[data-identity="carol"] .used').first).to_have_text("1")
    with page.expect_request(lambda req: "/ratelimits" in req.url, timeout=10_000):
        pass  # and polling is back
    assert not page.errors


def test_locks_page_counts_down_extends_and_drops_released_locks(live_server, page, r):
    lock = Lock(r, "invoice", ttl=30)
    lock.acquire()
    r.set("locks:orphan", "forgotten-token")  # no TTL: held forever
    base = live_server()
    page.goto(base + "/locks")
    row = page.locator('#locks tr[data-resource="invoice"]')
    expect(row.locator(".holder")).to_have_text(lock.token[:8] + "…")
    expect(row.locator(".fence")).to_have_text("1")
    first = int(row.locator(".ttl").get_attribute("data-ttl-ms"))
    deadline = time.monotonic() + 10
    while int(row.locator(".ttl").get_attribute("data-ttl-ms")) >= first:
        assert time.monotonic() < deadline, "the TTL did not count down"
        page.wait_for_timeout(100)
    lock.extend(60)
    deadline = time.monotonic() + 10
    while int(row.locator(".ttl").get_attribute("data-ttl-ms")) <= 30_000:
        assert time.monotonic() < deadline, "the extension did not show"
        page.wait_for_timeout(100)
    orphan = page.locator('#locks tr[data-resource="orphan"]')
    expect(orphan.locator(".flags")).to_contain_text("held forever")
    expect(orphan.locator(".ttl")).to_have_text("no TTL")
    lock.release()
    expect(row).to_have_count(0, timeout=10_000)
    expect(page.locator('#recent-locks tr[data-resource="invoice"]')).to_be_visible()
    r.delete("locks:orphan")
    expect(page.locator("#locks-empty")).to_be_visible(timeout=10_000)
    assert not page.errors


def test_actions_with_writes_enabled_need_a_confirmation(live_server, page, r):
    lock = Lock(r, "invoice", ttl=30)
    lock.acquire()
    limiter = RateLimiter(r, "login", 1, 60, algorithm="gcra")
    limiter.hit("mallory")
    base = live_server(allow_writes=True)
    page.goto(base + "/locks")
    page.locator('tr[data-resource="invoice"] button.release').click()
    expect(page.locator("h1")).to_have_text("Release a lock")
    assert r.exists(lock_key("invoice"))  # not before the confirmation
    page.locator("#confirm").click()
    expect(page.locator("#action-message")).to_contain_text("released lock lock:{invoice}")
    assert not r.exists(lock_key("invoice")) and not lock.owned()
    page.goto(base + "/ratelimits")
    page.locator('tr[data-identity="mallory"] button.reset').click()
    expect(page.locator("h1")).to_have_text("Reset a rate limiter")
    assert not limiter.peek("mallory").allowed
    page.locator("#confirm").click()
    expect(page.locator("#action-message")).to_contain_text("reset mallory under login")
    assert limiter.peek("mallory").allowed
    assert not page.errors


def test_read_only_pages_offer_no_actions(live_server, page, r):
    Lock(r, "invoice", ttl=30).acquire()
    RateLimiter(r, "api", 5, 60, algorithm="fixed").hit("x")
    base = live_server()
    for path, button in (("/locks", "button.release"), ("/ratelimits", "button.reset")):
        page.goto(base + path)
        expect(page.locator("main")).to_contain_text("needs --allow-writes")
        assert page.locator(button).count() == 0
    assert r.exists(lock_key("invoice"))
