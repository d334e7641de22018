"""Units, labels, the audit's layout, the keyspace filter and its links."""

import re

import pytest
from observer_support import wait_scan

from dashboard.web import evidence
from dashboard.web.filters import human_bytes, size


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (3_610_304, "3.4 MiB"),
        (5 * 1024**3, "5.0 GiB"),
        (None, "—"),
    ],
)
def test_binary_units_named_as_such(value, text):
    assert human_bytes(value) == text


def test_exact_bytes_on_hover():
    assert str(size(3_610_304)) == '<span class="bytes" title="3,610,304 bytes">3.4 MiB</span>'
    assert "—" in str(size(None))


def test_evidence_reads_as_words_with_linked_examples():
    rows = evidence.rows(
        {
            "keys": 3000,
            "without_ttl": 3000,
            "share": 1,
            "largest_bytes": 2_097_152,
            "max_idle_ms": 90_000,
            "examples": ["user:1", "odd:\\xff", "long… (2,000 bytes)"],
        }
    )
    by_name = {r["name"]: r for r in rows}
    assert by_name["without_ttl"]["label"] == "without a TTL"
    assert by_name["share"]["kind"] == "percent"
    assert by_name["largest_bytes"]["kind"] == "bytes"
    assert by_name["max_idle_ms"]["kind"] == "duration_ms"
    links = by_name["examples"]["value"]
    assert links[0]["id"] and links[1]["id"] == "b2RkOv8" and links[2]["id"] is None


def test_audit_groups_by_severity_and_links_example_keys(make_app, r):
    for i in range(200):
        r.set(f"cache:item:{i}", "v")  # a volatile word: warning
        r.set(f"user:{i}:profile", "v")  # no key expires: probably deliberate, info
    r.set("lock:{job}", "t")  # a lock without TTL: critical
    client = make_app(rescan_interval=0).test_client()
    wait_scan(client)
    html = client.get("/audit").get_data(as_text=True)
    order = [m.group(1) for m in re.finditer(r'id="severity-(\w+)"', html)]
    assert order == [s for s in ("critical", "warning", "info") if s in order] and len(order) >= 2
    info = html.split('id="severity-info"')[1]
    warning = html.split('id="severity-warning"')[1].split('id="severity-info"')[0]
    assert "user" in info and "cache:item" in warning
    assert "without a TTL" in html and "without_ttl" not in html
    assert re.search(r'href="/key/cache:item:\d+"', html)
    assert 'class="fix-link"' in html


def test_keyspace_filter_matches_full_paths_and_rows_link_to_keys(make_app, r):
    for i in range(50):
        r.set(f"user:{i}:profile", "v")
        r.hset(f"cache:product:{i}", "a", 1)
    r.set("plain", "v")
    client = make_app(rescan_interval=0).test_client()
    wait_scan(client)
    data = client.get("/keyspace.json?q=user:*").get_json()
    assert [c["path"] for c in data["children"]] == ["user"]
    nested = client.get("/keyspace.json?q=cache:product").get_json()
    assert [c["path"] for c in nested["children"]] == ["cache:product"]
    html = client.get("/keyspace").get_data(as_text=True)
    assert 'href="/keys?scope=(root)"' in html
    assert 'href="/keys?match=user:*"' in html
    assert "100 % of memory" not in html and "all keys scanned" in html
    assert "Longest string values (bytes)" in html and "string keys by elements" not in html
