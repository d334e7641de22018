"""Browser tests (Chromium): find a key from the header, page through /keys, open
binary and root-namespace keys, and fix an audit finding in bulk."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

BINARY = b"bin:\xff\xfe<img src=x onerror=alert(1)>"
WAIT = 30_000


def _plant(r, users=2000):
    pipe = r.pipeline(transaction=False)
    for i in range(users):
        pipe.set(f"user:{i}:profile", f"profile {i}")
    for i in range(300):
        pipe.hset(f"cache:product:{i}", "name", f"<b>{i}</b>")
    pipe.set(BINARY, "binary name")
    pipe.set("rootkey", "no namespace")
    pipe.execute()


def test_header_search_opens_a_key_by_name(live_server, page, r):
    _plant(r)
    base = live_server()
    page.goto(base + "/keyspace")
    page.fill("#header-search", "user:42:profile")
    page.press("#header-search", "Enter")
    page.wait_for_url("**/key/user:42:profile")
    expect(page.locator("#key-name")).to_have_text("user:42:profile")
    expect(page.locator("#key-type")).to_have_text("string")
    assert page.locator("#cli-arg").input_value() == "user:42:profile"
    assert not page.errors


def test_glob_search_then_page_through_to_the_end(live_server, page, r):
    _plant(r)
    base = live_server(browse_scan_keys=300)  # several pages, some with few keys
    page.goto(base + "/overview")
    page.fill("#header-search", "user:4*")
    page.press("#header-search", "Enter")
    page.wait_for_url("**/keys?match=user:4*")
    seen, pages = [], 0
    while True:
        pages += 1
        seen += page.locator("#keys tbody td.key a").all_inner_texts()
        if page.locator("#keys-end").count():
            break
        page.click("#keys-next")
        page.wait_for_load_state()
        assert pages < 100
    expected = {k.decode() for k in r.scan_iter(match="user:4*", count=1000)}
    assert set(seen) == expected and len(expected) == 111 and pages > 1
    expect(page.locator("#keys-progress")).to_contain_text("End of the listing")
    assert not page.errors


def test_open_a_binary_named_key_from_the_list(live_server, page, r):
    _plant(r)
    base = live_server()
    page.goto(base + "/keys?match=bin:*")
    link = page.locator("#keys tbody td.key a")
    expect(link).to_have_count(1)
    assert link.inner_text() == "bin:\\xff\\xfe<img src=x onerror=alert(1)>"
    link.click()
    page.wait_for_url("**/key?k=*")
    expect(page.locator("#key-name")).to_have_text("bin:\\xff\\xfe<img src=x onerror=alert(1)>")
    assert page.locator("#cli-arg").input_value() == '"bin:\\xff\\xfe<img src=x onerror=alert(1)>"'
    assert "binary name" in page.locator("#preview").inner_text()
    assert page.locator("img").count() == 0 and page.dialogs == [] and not page.errors


def test_reach_a_root_namespace_key_from_the_keyspace(live_server, page, r):
    _plant(r, users=50)
    base = live_server()
    page.goto(base + "/keyspace")
    root = page.locator("#namespaces a.root-keys")
    expect(root).to_be_visible(timeout=WAIT)
    root.click()
    page.wait_for_url("**/keys?scope=*")
    link = page.locator("#keys tbody td.key a", has_text="rootkey")
    expect(link).to_have_count(1)
    assert page.locator("#keys tbody td.key a").all_inner_texts() == ["rootkey"]
    link.click()
    page.wait_for_url("**/key/rootkey")
    expect(page.locator("#key-type")).to_have_text("string")
    assert not page.errors


def test_namespace_filter_example_works(live_server, page, r):
    _plant(r, users=50)
    base = live_server()
    page.goto(base + "/keyspace")
    page.locator("#ns-filter").wait_for(timeout=WAIT)
    page.fill("#ns-filter", "user:*")
    page.press("#ns-filter", "Enter")
    expect(page.locator("#namespaces tbody tr")).to_have_count(1)
    expect(page.locator("#namespaces tbody")).to_contain_text("user")
    page.click("#filter-keys")
    expect(page.locator("#keys tbody tr")).to_have_count(50)


def test_bulk_ttl_fix_from_the_audit(live_server, page, r):
    pipe = r.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"session:{i:x}", "v")
    pipe.execute()
    base = live_server(allow_writes=True)
    page.goto(base + "/audit")
    fix = page.locator("#rule-missing-ttl a.fix-link").first
    expect(fix).to_be_visible(timeout=WAIT)
    fix.click()
    page.fill("#bulk-ttl", "600")
    page.click("#dry-run")
    expect(page.locator("#job-would-change")).to_have_text("3,000", timeout=WAIT)
    assert r.ttl("session:1") == -1
    expect(page.locator("#confirm-summary")).to_contain_text("3,000")
    page.click("#apply")
    expect(page.locator("#report")).to_be_visible(timeout=WAIT)
    expect(page.locator("#job-changed")).to_have_text("3,000")
    assert 600 <= r.ttl("session:1") <= 660
    page.goto(base + "/writes")
    expect(page.locator("#writes tbody tr").first).to_contain_text("bulk expire")
    assert not page.errors


def test_read_only_shows_actions_unavailable(live_server, page, r):
    r.set("k", "v")
    base = live_server()
    page.goto(base + "/key/k")
    expect(page.locator("#actions-unavailable")).to_contain_text("--allow-writes")
    assert page.locator("#delete-key").is_disabled()
