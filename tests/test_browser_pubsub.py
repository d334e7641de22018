"""Browser tests: the live pub/sub tail in Chromium against `redis-dashboard serve`."""

import json
import time

import pytest
from playwright.sync_api import expect

from dashboard.web.pubsub import TAIL_CLIENT_NAME

pytestmark = pytest.mark.browser

WAIT = 15_000  # ms: an upper bound for things that happen within a second or two


def tail_connections(r):
    return [c for c in r.client_list() if c.get("name") == TAIL_CLIENT_NAME]


def wait_until(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


def open_tail(page, url):
    page.goto(url)
    expect(page.locator("#tail-status")).to_have_text("live", timeout=WAIT)


def test_published_messages_appear_escaped_and_pretty(live_server, page, r):
    base = live_server()
    open_tail(page, base + "/pubsub?channel=news")
    r.publish("news", json.dumps({"order": 7, "items": [1, 2]}))
    r.publish("news", "<img src=x onerror=alert(1)>")
    rows = page.locator("#tail-rows .tail-row")
    expect(rows).to_have_count(2, timeout=WAIT)
    # newest first; HTML is text, JSON is pretty-printed
    assert rows.nth(0).locator("pre").inner_text() == "<img src=x onerror=alert(1)>"
    pretty = json.dumps({"order": 7, "items": [1, 2]}, indent=2)
    assert rows.nth(1).locator("pre").inner_text() == pretty
    assert rows.nth(1).locator(".tail-channel").inner_text() == "news"
    expect(page.locator("#tail-received")).to_have_text("2", timeout=WAIT)
    assert page.locator("img").count() == 0
    assert not page.dialogs and not page.errors


def test_pause_resume_and_filter(live_server, page, r):
    base = live_server()
    open_tail(page, base + "/pubsub?channel=jobs")
    rows = page.locator("#tail-rows .tail-row")
    r.publish("jobs", "first job")
    expect(rows).to_have_count(1, timeout=WAIT)
    page.click("#tail-pause")
    expect(page.locator("#tail-pause")).to_have_text("Resume")
    r.publish("jobs", "second job")
    r.publish("jobs", json.dumps({"kind": "order"}))
    expect(page.locator("#tail-held")).to_have_text("2", timeout=WAIT)
    assert rows.count() == 1
    page.click("#tail-pause")
    expect(rows).to_have_count(3, timeout=WAIT)
    page.fill("#tail-filter", "ORDER")
    expect(page.locator("#tail-rows .tail-row:visible")).to_have_count(1)
    expect(page.locator("#tail-matching")).to_have_text("1")
    page.fill("#tail-filter", "")
    expect(page.locator("#tail-rows .tail-row:visible")).to_have_count(3)
    assert not page.errors


def test_pattern_tail_and_closing_the_browser_releases_the_subscription(live_server, page, r):
    base = live_server()
    open_tail(page, base + "/pubsub?pattern=shop:*")
    assert len(tail_connections(r)) == 1
    r.publish("shop:orders", "o1")
    r.publish("shop:payments", "p1")
    channels = page.locator("#tail-rows .tail-channel")
    expect(channels).to_have_count(2, timeout=WAIT)
    assert sorted(channels.all_inner_texts()) == ["shop:orders", "shop:payments"]
    page.close()
    wait_until(lambda: not tail_connections(r))
    assert r.pubsub_numpat() == 0


def test_tail_over_the_cap_says_so(live_server, page, r):
    base = live_server(max_tails=1)
    open_tail(page, base + "/pubsub?channel=a")
    other = page.context.new_page()
    other.goto(base + "/pubsub?channel=b")
    expect(other.locator("#tail-status")).to_have_text("refused")
    expect(other.locator("#tail-message")).to_contain_text("max_tails=1")
    other.close()
