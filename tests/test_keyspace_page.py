"""/keyspace without a browser: each row's share of memory and escaped key names.

The browser tests see the same page through Chromium; these run wherever the suite
runs (no Chromium needed) and check the numbers against MEMORY USAGE itself.
"""

import html
import re

import pytest
from observer_support import wait_scan

from dashboard.keyid import encode_key

HOSTILE = [
    b"<img src=x onerror=alert(1)>",
    b"ns:<script>alert(2)</script>:k",
    b'q:"><svg onload=alert(3)>:1',
    b"amp:&lt;already&gt;:x",
]


def _memory(r, pattern):
    return sum(r.memory_usage(k) for k in r.scan_iter(match=pattern))


def _plant(r):
    for i in range(30):
        r.set(f"user:{i}:name", "x" * (10 + i))
        r.hset(f"cache:product:{i}", mapping={"a": "1" * i})
        r.hset(f"cache:page:{i}", mapping={"b": "2"})
    r.rpush("queue:jobs", *range(200))
    r.set("plain", "v" * 300)  # the root bucket


def test_share_is_the_part_of_the_parents_memory(web, r):
    _plant(r)
    data = wait_scan(web)
    total = data["totals"]["bytes"]
    everything = _memory(r, "*")
    assert total == everything
    shares = {c["name"]: c["share"] for c in data["children"]}
    assert shares["user"] == pytest.approx(_memory(r, "user:*") / everything)
    assert shares["cache"] == pytest.approx(_memory(r, "cache:*") / everything)
    assert shares["(root)"] == pytest.approx(r.memory_usage("plain") / everything)
    assert sum(shares.values()) == pytest.approx(1.0)

    cache = next(c for c in data["children"] if c["name"] == "cache")
    inside = web.get(f"/keyspace.json?ns={cache['id']}").get_json()
    cache_bytes = _memory(r, "cache:*")
    assert inside["node"]["bytes"] == cache_bytes
    assert inside["node"]["share"] == pytest.approx(cache_bytes / everything)  # of all memory
    kids = {c["name"]: c["share"] for c in inside["children"]}
    assert kids["product"] == pytest.approx(_memory(r, "cache:product:*") / cache_bytes)
    assert kids["page"] == pytest.approx(_memory(r, "cache:page:*") / cache_bytes)

    page = web.get(f"/keyspace?ns={cache['id']}").get_data(as_text=True)
    share_text = re.search(r'id="node-share">([^<]*)<', page).group(1)
    assert share_text.startswith(f"{cache_bytes / everything * 100:.1f} %")
    shown = {}
    for row in re.findall(r'<tr data-kind="namespace">(.*?)</tr>', page, re.S):
        name = re.search(r'title="cache:([^"]+)"', row).group(1)
        cells = re.findall(r'<td class="num">(.*?)</td>', row, re.S)  # keys, memory, share
        shown[name] = cells[2]
    assert shown == {name: f"{share * 100:.1f} %" for name, share in kids.items()}


def test_hostile_key_names_are_escaped_in_the_html(web, r):
    for i, key in enumerate(HOSTILE):
        r.set(key, "v" * (1000 * (i + 1)))
    data = wait_scan(web)
    page = web.get("/keyspace").get_data(as_text=True)
    for raw in ("<img src=x", "<script>alert(2)", "<svg onload", "&lt;already&gt;"):
        assert raw not in page
    assert html.escape("<img src=x onerror=alert(1)>", quote=False) in page
    assert "&amp;lt;already&amp;gt;" in page  # escaped once more, shown as typed
    for node in data["children"]:
        if node["kind"] != "namespace":
            continue
        inside = web.get(f"/keyspace?ns={node['id']}").get_data(as_text=True)
        assert "<script>alert(2)" not in inside and "<svg onload" not in inside
    ns = web.get(f"/keyspace?ns={encode_key(b'ns:<script>alert(2)</script>')}")
    if ns.status_code == 200:  # the segment may be an id: then it has no node of its own
        assert "<script>alert(2)" not in ns.get_data(as_text=True)
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in web.get(
        f"/keyspace?ns={encode_key(b'ns')}"
    ).get_data(as_text=True)
