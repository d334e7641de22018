"""The README's first command on a machine without redis-server: ``redis-dashboard demo``
runs on the fakeredis stand-in. Chromium crawls every page and JSON twin of the app,
discovered from its url_map (so pages added later are crawled too) and from the links
the pages show, and checks what a new user would meet:

* no 5xx anywhere, and no console error (a failed script, a 404 favicon);
* every HTML page labelled as the stand-in;
* every reason a JSON twin gives for something unavailable is on its HTML page too:
  an unsupported panel says so (and why), never a made-up zero.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import time
from urllib.parse import urlsplit

import pytest

from dashboard.web import create_app
from tests.demo_support import start_demo, wait_for

pytestmark = pytest.mark.browser

# GET rules not crawled as pages: static files, and the live tail's event stream (its
# page /pubsub opens it; a crawler would hold it open forever).
NOT_PAGES = {"static", "favicon", "pubsub.tail"}
PER_PATH = 4  # a few URLs per route are enough (e.g. 4 key pages, not every key)
MAX_PAGES = 120
LABEL = "fakeredis (stand-in)"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    empty = tmp_path_factory.mktemp("bin-without-redis-server")
    assert shutil.which("redis-server", path=str(empty)) is None
    running = start_demo(path=str(empty))
    try:
        assert "fakeredis" in running.banner()
        # let the traffic simulator make streams, limiters and locks to look at
        wait_for(lambda: json.loads(running.get("/streams.json"))["streams"], 60, 0.2, "streams")
        running.get("/keyspace")
        running.get("/audit")
        wait_for(lambda: json.loads(running.get("/keyspace.json"))["node"], 60, 0.2, "scan")
        wait_for(lambda: json.loads(running.get("/audit.json"))["report"], 60, 0.2, "audit")
        yield running
    finally:
        running.stop()


def _argument_values(demo) -> dict[str, list[str]]:
    """How to fill the routes that take a path argument (a new one must be added here)."""
    cards = json.loads(demo.get("/playground.json"))["cards"]
    return {"card_id": [c["id"] for c in cards][:2]}


def _seeds(demo) -> tuple[list[str], set[str]]:
    """Every GET route of the app, as URLs; and the endpoints that must be visited."""
    app = create_app({"url": "redis://127.0.0.1:1/0"})  # only its url_map is used
    values = _argument_values(demo)
    urls, endpoints = [], set()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in NOT_PAGES:
            continue
        endpoints.add(rule.endpoint)
        missing = [a for a in rule.arguments if a not in values]
        assert not missing, f"{rule.rule}: tell _argument_values how to fill {missing}"
        if not rule.arguments:
            urls.append(rule.rule)
        for i in range(max((len(values[a]) for a in rule.arguments), default=0)):
            urls.append(rule.build({a: values[a][i % len(values[a])] for a in rule.arguments})[1])
    return urls, endpoints


def _reasons(data, out: set[str]) -> set[str]:
    """Every reason a JSON twin gives for something it could not show."""
    if isinstance(data, dict):
        if (data.get("available") is False or data.get("status") == "skipped") and isinstance(
            data.get("reason"), str
        ):
            out.add(data["reason"])
        for key, value in data.items():
            if key == "unavailable" and isinstance(value, dict):
                out.update(v for v in value.values() if isinstance(v, str))
            elif key.endswith("_unavailable") and isinstance(value, str):
                out.add(value)
            elif key == "skipped" and isinstance(value, list):
                out.update(s["reason"] for s in value if isinstance(s, dict) and s.get("reason"))
            else:
                _reasons(value, out)
    elif isinstance(data, list):
        for item in data:
            _reasons(item, out)
    return out


def _links(page, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all(
        "a[href], [hx-get]",
        "els => els.map(e => e.getAttribute('href') || e.getAttribute('hx-get'))",
    )
    out = []
    for href in hrefs:
        if not href or href.startswith(("#", "http", "mailto:")) or not href.startswith("/"):
            continue
        if href.startswith(("/static/", "/pubsub/tail?")):
            continue
        out.append(href)
    return out


def _json_twin(path: str) -> str | None:
    parts = urlsplit(path)
    if parts.path.endswith(".json") or "." in parts.path.rsplit("/", 1)[-1]:
        return None
    twin = (parts.path.rstrip("/") or "/index") + ".json"
    return twin + (f"?{parts.query}" if parts.query else "")


@pytest.mark.timeout(600)
def test_every_page_and_twin_works_on_the_stand_in(demo, browser):
    seeds, endpoints = _seeds(demo)
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    current = {"url": ""}
    page.on("pageerror", lambda e: problems.append(f"{current['url']}: script error {e}"))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{current['url']}: {r.status} for {r.url}")
            if r.status >= 400 and r.request.resource_type != "document"
            else None
        ),
    )
    queue, seen, per_path, visited_endpoints = list(seeds), set(), {}, set()
    adapter = create_app({"url": "redis://127.0.0.1:1/0"}).url_map.bind("localhost")
    pages = 0
    try:
        while queue and pages < MAX_PAGES:
            path = queue.pop(0)
            route = urlsplit(path).path
            if path in seen or per_path.get(route, 0) >= PER_PATH:
                continue
            seen.add(path)
            per_path[route] = per_path.get(route, 0) + 1
            pages += 1
            current["url"] = path
            response = page.goto(demo.base + path, wait_until="load")
            status = response.status
            if status >= 500:
                problems.append(f"{path}: {status} {response.text()[:300]}")
                continue
            app_route = re.sub(r"^/t/[^/]+(?=/)", "", route)  # a fleet target's prefix
            endpoint, _args = adapter.match(app_route, method="GET")
            visited_endpoints.add(endpoint)
            kind = response.headers.get("content-type", "")
            if "text/html" not in kind:
                if route.endswith(".json"):
                    assert "application/json" in kind, f"{path}: {kind}"
                    json.loads(response.text())
                continue
            queue += [link for link in _links(page, demo.base) if link not in seen]
            if not page.evaluate("document.querySelector('title') !== null"):
                continue  # an htmx fragment of a page, not a page
            targets = page.locator("header .target")
            label = targets.inner_text() if targets.count() else ""
            if LABEL not in label:
                problems.append(f"{path}: not labelled as the stand-in ({label!r})")
            twin = _json_twin(path)
            if twin and status == 200:
                reply = context.request.get(demo.base + twin)
                if reply.status == 200:
                    shown = " ".join(html.unescape(page.content()).split())
                    for reason in _reasons(reply.json(), set()):
                        if " ".join(reason.split()) not in shown:
                            problems.append(f"{path}: does not say {reason!r}")
            time.sleep(0.05)  # let polling fragments fire once
    finally:
        context.close()
    assert not problems, "\n".join(problems[:30])
    assert endpoints <= visited_endpoints, f"never crawled: {endpoints - visited_endpoints}"
    assert pages >= len(endpoints)


def test_unsupported_panels_say_unavailable_on_the_stand_in(demo, page):
    """The panels fakeredis cannot fill: the overview's INFO panels, the keyspace's
    memory; each says 'unavailable' with its reason, and no '0 B' is made up."""
    page.goto(demo.base + "/overview")
    text = page.inner_text("main")
    assert "unavailable" in text and "INFO" in text
    assert "no maxmemory limit" not in text  # unknown is not "no limit"
    page.goto(demo.base + "/keyspace")
    page.wait_for_selector("#node-keys", timeout=30_000)
    main = page.inner_text("main")
    assert re.search(r"unavailable: MEMORY USAGE", main), main[:500]
    assert not re.search(r"(?<![\d.])0 B\b", main) and "100 %" not in main
