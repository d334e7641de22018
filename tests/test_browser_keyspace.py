"""Browser tests: Debian's Chromium through Playwright against `redis-dashboard serve`."""

import pytest

from dashboard.keyid import encode_key

pytestmark = pytest.mark.browser

HTML_KEY = b"<img src=x onerror=alert(1)>"
BAD_UTF8 = b"odd:\xff\xfe\xfd"


def _plant_every_type(r):
    r.set("str:plain", "hello")
    r.set("str:json", '{"a": [1, 2]}')
    r.hset("hash:user", mapping={"name": "ada", "html": "<b>bold</b>"})
    r.rpush("list:jobs", *[f"job-{i}" for i in range(30)])
    r.sadd("set:tags", "a", "b", "c")
    r.zadd("zset:board", {"ada": 3, "bob": 2})
    r.xadd("stream:events", {"kind": "order"})
    r.pfadd("hll:visitors", "a", "b", "c")
    r.set(HTML_KEY, "<script>alert(2)</script>")
    r.set(BAD_UTF8, "v")


def test_overview_loads(live_server, page, r):
    base = live_server()
    page.goto(base + "/")
    assert page.locator("h1").inner_text() == "Server overview"
    assert page.locator("#panel-memory").is_visible()
    assert "7." in page.locator(".headline .big").first.inner_text()
    assert not page.errors


def test_keyspace_shows_progress_then_tree_and_drills_down(live_server, page, r):
    for i in range(400):
        r.set(f"user:{i}:name", "x")
        r.hset(f"cache:product:{i}", "a", 1)
    base = live_server(scan_count=10, scan_throttle_ms=100)
    page.goto(base + "/keyspace")
    progress = page.locator("#scan-progress")
    assert progress.is_visible()
    assert "Scanning the keyspace" in progress.inner_text()
    # htmx polls the fragment; when the scan is done the page reloads with the tree.
    page.locator("#namespaces").wait_for(timeout=60_000)
    rows = page.locator("#namespaces tbody tr")
    assert rows.count() == 2
    assert page.locator("#node-keys").inner_text() == "800"
    page.locator("#namespaces a", has_text="cache").click()
    page.wait_for_url("**ns=*")
    assert "product" in page.locator("#namespaces tbody").inner_text()
    assert page.locator(".crumbs strong").inner_text() == "cache"
    assert page.locator("#node-keys").inner_text() == "400"
    assert not page.errors


@pytest.mark.parametrize(
    ("key", "kind", "expect"),
    [
        (b"str:plain", "string", "hello"),
        (b"str:json", "string", '"a"'),
        (b"hash:user", "hash", "<b>bold</b>"),
        (b"list:jobs", "list", "job-0"),
        (b"set:tags", "set", "b"),
        (b"zset:board", "zset", "ada"),
        (b"stream:events", "stream", "order"),
        (b"hll:visitors", "hll", "3"),
    ],
)
def test_key_detail_for_every_type(live_server, page, r, key, kind, expect):
    _plant_every_type(r)
    base = live_server()
    page.goto(f"{base}/key?k={encode_key(key)}")
    assert page.locator("#key-type").inner_text() == kind
    assert expect in page.locator("#preview").inner_text()
    assert not page.dialogs and not page.errors


def test_hostile_key_names_are_escaped_and_openable(live_server, page, r):
    _plant_every_type(r)
    base = live_server()
    page.goto(base + "/keyspace")
    page.locator("#namespaces").wait_for(timeout=30_000)
    # The HTML key sits in the root bucket: it shows as text, never as an element.
    page.goto(base + "/keyspace.json")
    page.goto(base + "/keyspace")
    assert page.locator("img").count() == 0
    page.goto(f"{base}/key?k={encode_key(HTML_KEY)}")
    assert page.locator("#key-name").inner_text() == HTML_KEY.decode()
    assert "<script>alert(2)</script>" in page.locator("#preview").inner_text()
    assert page.locator("img").count() == 0
    page.goto(f"{base}/key?k={encode_key(BAD_UTF8)}")
    assert page.locator("#key-name").inner_text() == "odd:\\xff\\xfe\\xfd"
    assert page.locator("#key-type").inner_text() == "string"
    assert page.dialogs == [] and not page.errors


def test_biggest_key_links_open_detail(live_server, page, r):
    _plant_every_type(r)
    r.set(HTML_KEY, "x" * 100_000)  # now the biggest key: listed in the root namespace
    base = live_server()
    page.goto(base + "/keyspace")
    page.locator("#top-keys").wait_for(timeout=30_000)
    link = page.locator("#top-keys a").first
    assert link.inner_text() == HTML_KEY.decode()
    link.click()
    page.wait_for_url("**/key/*")  # a printable name gets a readable URL, escaped
    assert page.locator("#key-name").inner_text() == HTML_KEY.decode()
    assert page.dialogs == [] and page.locator("img").count() == 0
