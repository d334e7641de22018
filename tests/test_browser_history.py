"""Browser tests: the trend charts and the compare view in Chromium, under the strict
Content-Security-Policy, with no console error."""

import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
WAIT = 30_000


def _console(page):
    """Console errors (a CSP violation is one), but not the browser's own favicon probe."""
    messages = []

    def record(message):
        where = (message.location or {}).get("url", "")
        if message.type == "error" and not where.endswith("/favicon.ico"):
            messages.append(f"{message.text} ({where})")

    page.on("console", record)
    return messages


def test_trend_charts_render_without_errors_under_the_csp(live_server, page, r, tmp_path):
    for i in range(50):
        r.set(f"cache:{i}", "v" * 50)
    r.xadd("jobs", {"n": 1})
    r.xgroup_create("jobs", "workers", id="0")
    base = live_server(state=str(tmp_path / "b.sqlite"), history_interval=1, rescan_interval=2)
    errors = _console(page)
    page.goto(base + "/overview")
    chart = page.locator("#trends-server #chart-memory svg.trend-svg polyline")
    expect(chart.first).to_be_attached(timeout=WAIT)  # drawn once two samples exist
    assert page.locator("#trends-server svg.trend-svg").count() >= 4
    page.click("#trends-server .ranges a:text('1h')")  # htmx swaps the panel in place
    expect(page.locator("#trends-server .ranges a[aria-current='true']")).to_have_text("1h")
    for path, panel in (
        ("/keyspace", "#trends-keyspace"),
        ("/streams", "#trends-streams"),
        ("/history", "#trends-server"),
    ):
        page.goto(base + path)
        expect(page.locator(panel)).to_be_visible(timeout=WAIT)
    page.goto(base + "/history/streams")
    expect(page.locator("#trends-streams #chart-lag polyline").first).to_be_attached(timeout=WAIT)
    time.sleep(2.5)  # a later scan, so there is something to compare
    page.goto(base + "/compare")
    expect(page.locator("#compare-totals")).to_be_visible(timeout=WAIT)
    assert not page.errors
    assert not errors, errors
