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


def test_bulk_job_fields_documented(make_app, r):
    import time

    r.set("a:1", "v")
    web = make_app().test_client()
    html = web.get("/keys").get_data(as_text=True)
    token = html.split('"X-CSRF-Token": "')[1].split('"')[0]
    started = web.post(
        "/bulk/dryrun.json", data={"csrf_token": token, "rule": "missing-ttl", "ns": "YQ"}
    ).get_json()["job"]
    for _ in range(200):
        data = web.get(f"/bulk/job/{started['id']}.json").get_json()
        if data["job"]["state"] == "done":
            break
        time.sleep(0.05)
    section = _section("/bulk.json")
    missing = [n for n in (*data, *data["job"]) if f"`{n}`" not in section]
    assert not missing, f"undocumented bulk job fields {missing}"


def test_row_and_history_fields_documented(web, r):
    r.xadd("s", {"f": "v"})
    rows = web.get("/streams.json").get_json()
    streams = _section("/streams.json")
    assert rows["rows"], rows
    missing = [n for n in (*rows["rows"][0], *rows["paging"]) if f"`{n}`" not in streams]
    assert not missing, f"undocumented /streams.json row fields {missing}"
    history = web.get("/locks.json").get_json()["history"]
    locks = _section("/locks.json")
    assert not [n for n in history if f"`{n}`" not in locks]


def test_key_browser_entry_fields_documented(web, r):
    r.set("a:1", "v")
    entry = web.get("/keys.json?match=a*").get_json()["keys"][0]
    section = _section("/keys.json")
    assert not [n for n in entry if f"`{n}`" not in section]


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
        "/keys.json?match=a*",
        "/slowlog.json",
        "/clients.json",
        "/commands.json",
        "/info.json",
        "/writes.json",
        "/bulk.json?rule=missing-ttl&ns=YQ",
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


# --- docs -> code: every field a table documents is in the twin ---------------------

# Fields a table documents that a twin carries only in some states; each says when.
SOMETIMES = {
    # /keys.json names `nodes` in the same row as `scan_calls`; it is in every answer.
}


def _documented_fields(section: str) -> list[str]:
    """The names in the first column of the section's first `| field | meaning |` table."""
    match = re.search(r"^\| field \| meaning \|\n\|[-|]+\|\n((?:\|.*\n?)+)", section, re.M)
    if not match:
        return []
    names = []
    for row in match.group(1).splitlines():
        first = row.split("|")[1]
        names += re.findall(r"`([^`]+)`", first)
    return names


TABLE_PAGES = [
    "/keyspace.json",
    "/keys.json?match=a*",
    "/slowlog.json",
    "/clients.json",
    "/commands.json",
    "/info.json",
    "/ratelimits.json",
    "/locks.json",
    "/streams.json",
    "/stream.json?k=cw",
    "/pubsub.json?channel=x",
    "/playground.json",
    "/history.json",
    "/history/keyspace.json",
    "/history/streams.json",
    "/compare.json",
]


def test_every_page_with_a_field_table_is_checked():
    sections = re.findall(r"^## `(/[^`?<]+)[^`]*`\n", DOC, re.M)
    with_table = {s for s in sections if _documented_fields(_section(s))}
    checked = {p.split("?")[0] for p in TABLE_PAGES} | {"/fleet.json"}
    assert with_table == checked


@pytest.mark.parametrize("path", TABLE_PAGES)
def test_every_documented_field_is_in_the_twin(web, r, path):
    r.set("a", "1")
    r.xadd("s", {"f": "v"})
    data = _wait(web, path)
    route = path.split("?")[0]
    documented = _documented_fields(_section(route))
    assert documented, f"{route}: no field table found"
    absent = [n for n in documented if n not in data and n not in SOMETIMES.get(route, ())]
    assert not absent, f"{path}: documented but not in the twin: {absent}"


def test_every_documented_fleet_field_is_in_the_twin(redis_server, r):
    from dashboard.targets import Target
    from dashboard.web import create_app

    targets = [Target("one", redis_server.url), Target("two", redis_server.url)]
    app = create_app({"rescan_interval": 0}, targets)
    try:
        data = app.test_client().get("/fleet.json").get_json()
    finally:
        app.extensions["redis_dashboard_fleet"].close()
    absent = [n for n in _documented_fields(_section("/fleet.json")) if n not in data]
    assert not absent, f"/fleet.json: documented but not in the twin: {absent}"


def test_every_documented_freshness_field_is_in_a_freshness_object(web, r):
    documented = _documented_fields(DOC.split("## Freshness", 1)[1].split("\n## ", 1)[0])
    assert "age_ms" in documented
    keyspace = _wait(web, "/keyspace.json")["freshness"]
    live = _wait(web, "/ratelimits.json")["freshness"]
    only_live = {"error_at", "failures", "generation"}  # "live sections only"
    only_keyspace = {"scan_id"}  # "the keyspace only"
    for name in documented:
        if name in only_live:
            assert name in live and name not in keyspace, name
        elif name in only_keyspace:
            assert name in keyspace and name not in live, name
        else:
            assert name in keyspace and name in live, name
