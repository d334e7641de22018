"""Browser tests: /streams live lag and the stream detail actions, in Chromium."""

import threading
import time

import pytest
from playwright.sync_api import expect

from dashboard.keyid import encode_key
from dashboard.patterns.streams import ensure_group

pytestmark = pytest.mark.browser

WAIT = 20_000


def lag_of(page, group):
    return page.locator(f'tr.group[data-group="{group}"] td.lag')


def test_lag_refreshes_live_with_sparkline_and_growing_flag(live_server, page, r):
    ensure_group(r, "events", "slow", start_id="$")
    base = live_server()
    running = threading.Event()
    running.set()

    def produce():
        while running.is_set():
            r.xadd("events", {"kind": "click"})
            time.sleep(0.05)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        page.goto(base + "/streams")
        cell = lag_of(page, "slow")
        expect(cell).to_be_visible(timeout=WAIT)
        first = int(cell.get_attribute("data-lag"))
        # no reload: the htmx fragment refreshes every second
        page.wait_for_function(
            "([sel, n]) => Number(document.querySelector(sel).dataset.lag) > n + 20",
            arg=['tr.group[data-group="slow"] td.lag', first],
            timeout=WAIT,
        )
        row = page.locator('tr.group[data-group="slow"]')
        expect(row.locator("svg.spark polyline")).to_have_count(1, timeout=WAIT)
        expect(row.locator(".flag-growing")).to_be_visible(timeout=WAIT)
    finally:
        running.clear()
        producer.join()
    assert not page.errors


def test_ack_through_the_confirmation_step(live_server, page, r):
    for i in range(5):
        r.xadd("work", {"n": i})
    ensure_group(r, "work", "g", start_id="0")
    r.xreadgroup("g", "w1", {"work": ">"}, count=3)
    base = live_server(allow_writes=True)
    page.goto(f"{base}/stream?k={encode_key(b'work')}&group=g")
    boxes = page.locator('#pending-form input[name="ids"]')
    expect(boxes).to_have_count(3)
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#ack-selected")
    expect(page.locator("#confirm-summary")).to_contain_text("XACK 2 entries")
    assert r.xpending("work", "g")["pending"] == 3  # nothing happens before confirming
    page.click("#confirm-action")
    expect(page.locator(".notice")).to_contain_text("acknowledged 2 of 2")
    expect(page.locator('#pending-form input[name="ids"]')).to_have_count(1)
    assert r.xpending("work", "g")["pending"] == 1
    assert not page.errors


def test_read_only_detail_offers_no_actions(live_server, page, r):
    r.xadd("work", {"n": 1})
    ensure_group(r, "work", "g", start_id="0")
    r.xreadgroup("g", "w1", {"work": ">"})
    base = live_server()
    page.goto(f"{base}/stream?k={encode_key(b'work')}")
    expect(page.locator("#read-only-note")).to_be_visible()
    assert page.locator('input[name="ids"]').count() == 0
    assert page.locator("#pending .pending-entry").count() == 1
    assert page.locator("#entries tr.entry").count() == 1
