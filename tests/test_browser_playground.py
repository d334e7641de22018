"""Browser test of /playground: Chromium against a real `redis-dashboard demo` process.

Every card runs from its button and shows its outcome (htmx swaps the card; the two
that take a while poll until done); no inline script is needed (CSP stays intact).
"""

import re

import pytest
from demo_support import start_demo
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# (card, action, text the finished outcome shows)
RUNS = [
    ("ratelimit", "burst", "100 allowed, 50 denied"),
    ("stampede", "unprotected", "without protection"),
    ("stampede", "protected", "ran 1 time;"),
    ("locks", "race", "won the lock with fence"),
    ("locks", "expire", "refused A's late charge"),
    ("cache", "read", "came from the database"),
    ("cache", "read", "came from the cache"),
    ("cache", "invalidate", "new version"),
    ("pubsub", "publish", "the shop's notifier received it"),
    ("sessions", "login", "Logged in"),
    ("sessions", "read", "renewed its TTL"),
    ("sessions", "logout", "Logged out"),
    ("leaderboard", "sell", "Recorded 20 sales"),
    ("hll", "count", "10,000 distinct visitors"),
    ("streams", "kill", "survivors reclaimed"),
    ("streams", "revive", "is back"),
    ("antipatterns", "big-hash", "A big hash: reported by big-collection"),
]


@pytest.fixture(scope="module")
def demo():
    process = start_demo("--no-traffic")
    yield process
    process.stop()


def _run(page, card, action, text, timeout=60_000):
    article = page.locator(f"#card-{card}")
    article.locator(f"button[data-action='{action}']").click()
    expect(article.locator(".outcome .summary")).to_contain_text(text, timeout=timeout)
    expect(article).to_have_attribute("data-state", "done", timeout=timeout)
    return article


def test_every_card_runs_and_shows_its_outcome(demo, page):
    csp = []
    page.on("console", lambda m: csp.append(m.text) if "Content Security" in m.text else None)
    page.goto(demo.base + "/playground")
    expect(page.locator("#target")).to_contain_text("the demo's own server")
    for card, action, text in RUNS:
        _run(page, card, action, text)
    burst = page.locator("#card-ratelimit")
    expect(burst.locator("dd[data-field=allowed]")).to_have_text("100")
    expect(burst.locator("dd[data-field=denied]")).to_have_text("50")
    stampede = page.locator("#card-stampede")
    expect(stampede.locator("dd[data-field=recomputations]")).to_have_text("1")
    plant = page.locator("#card-antipatterns td.verdict")
    expect(plant).to_contain_text("reported")
    assert not page.errors and not page.dialogs and not csp, (page.errors, csp)


def test_cards_link_to_the_views_that_show_their_effect(demo, page):
    page.goto(demo.base + "/playground")
    _run(page, "ratelimit", "burst", "100 allowed")
    page.locator("#card-ratelimit .links a", has_text="/ratelimits").click()
    expect(page).to_have_url(re.compile(r"/ratelimits\?q=client-"))
    expect(page.locator("body")).to_contain_text("burst")
    page.goto(demo.base + "/playground")
    page.locator("#card-pubsub .links a", has_text="live tail").click()
    expect(page).to_have_url(re.compile(r"/pubsub\?channel=shop%3Anotifications"))


def test_traffic_starts_and_stops_from_the_page(demo, page):
    page.goto(demo.base + "/playground")
    panel = page.locator("#simulator")
    expect(panel).to_have_attribute("data-running", "no")
    panel.locator("button[data-action=start]").click()
    expect(page.locator("#simulator")).to_have_attribute("data-running", "yes")
    expect(page.locator("#sim-requests")).not_to_have_text("0", timeout=15_000)
    page.locator("#simulator button[data-action=stop]").click()
    expect(page.locator("#simulator")).to_have_attribute("data-running", "no")
