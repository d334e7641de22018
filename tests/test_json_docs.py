"""Every top-level field of every JSON twin is documented in docs/json.md."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC = (DOCS / "json.md").read_text()
# Pages whose fields are documented on their own page, linked from json.md.
DETAIL_DOCS = {
    "/key.json": "keydetail.md",
    "/overview.json": "overview.md",
    "/audit.json": "rules.md",
}


def _section(path: str) -> str:
    match = re.search(rf"^## `{re.escape(path)}[^`]*`\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert match, f"docs/json.md has no section for {path}"
    return match.group(1)


def _wait(web, path):
    import time

    for _ in range(400):
        data = web.get(path).get_json()
        if data.get("scan", {}).get("state") in (None, "done"):
            return data
        time.sleep(0.05)
    return data


@pytest.mark.parametrize(
    "path",
    [
        "/overview.json",
        "/keyspace.json",
        "/key.json?k=YQ",
        "/ratelimits.json",
        "/locks.json",
        "/audit.json",
        "/streams.json",
        "/stream.json?k=cw",
        "/pubsub.json?channel=x",
        "/playground.json",
        "/history.json",
        "/history/keyspace.json",
        "/history/streams.json",
        "/compare.json",
    ],
)
def test_top_level_fields_documented(web, r, path):
    r.set("a", "1")
    r.xadd("s", {"f": "v"})  # the stream behind /stream.json?k=cw
    data = _wait(web, path)
    route = path.split("?")[0]
    section = _section(route)
    if route in DETAIL_DOCS:
        assert DETAIL_DOCS[route] in section
        section += (DOCS / DETAIL_DOCS[route]).read_text()
    missing = [name for name in data if f"`{name}`" not in section]
    assert not missing, f"{path}: undocumented fields {missing}"


def test_healthz_documented(web):
    section = _section("/healthz")
    for name in web.get("/healthz").get_json():
        assert f'"{name}"' in section
