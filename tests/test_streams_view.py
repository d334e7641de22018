"""/streams and /stream: discovery, lag, history, flags, windows and actions."""

import re
import threading
import time

import pytest

from dashboard.inspect.live.streams import LagHistory, StreamFinder, stream_summary
from dashboard.inspect.live.streamwindows import raw_name
from dashboard.keyid import display_key, encode_key
from dashboard.patterns.streams import Worker, ensure_group
from dashboard.web.streams import sparkline


def wait_until(check, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def group_of(data, stream, group):
    s = next(s for s in data["streams"] if s["key"] == stream)
    return next(g for g in s["groups"] if g["name"] == group)


def html_numbers(html, group):
    """Lag and pending of ``group`` as the HTML page shows them (data attributes)."""
    row = re.search(rf'<tr class="group" data-group="{group}">(.*?)</tr>', html, re.S).group(1)
    pending = int(re.search(r'data-pending="(\d+)"', row).group(1))
    lag = int(re.search(r'data-lag="(\d+)"', row).group(1))
    return lag, pending


def csrf(client):
    with client.session_transaction() as session:
        session["csrf_token"] = "t0ken"
    return "t0ken"


# --- discovery ----------------------------------------------------------------------------


def test_streams_page_lists_every_stream_with_its_groups(web, r):
    for i in range(30):
        r.xadd("orders", {"n": i})
    ensure_group(r, "orders", "billing", start_id="0")
    ensure_group(r, "orders", "audit", start_id="$")
    r.xreadgroup("billing", "w1", {"orders": ">"}, count=5)
    r.xadd("events", {"a": 1})
    r.set("not-a-stream", "x")
    data = web.get("/streams.json").get_json()
    assert [s["key"] for s in data["streams"]] == ["events", "orders"]
    orders = data["streams"][1]
    assert orders["length"] == 30 and orders["first_id"] and orders["last_id"]
    assert orders["first_age_ms"] >= 0 and orders["memory_bytes"] > 0
    assert orders["trimmed"] is False and orders["removed_entries"] == 0
    billing = group_of(data, "orders", "billing")
    assert (billing["lag"], billing["pending"], billing["lag_source"]) == (25, 5, "server")
    assert billing["entries_read"] == 5 and billing["max_delivery_count"] == 1
    assert billing["consumer_list"][0]["name"] == "w1"
    assert billing["consumer_list"][0]["status"] == "active"
    assert group_of(data, "orders", "audit")["lag"] == 0
    assert data["totals"]["lag"] == 25 and data["totals"]["pending"] == 5
    assert data["discovery"]["complete"] is True and data["discovery"]["capped"] is False
    html = web.get("/streams").get_data(as_text=True)
    assert html_numbers(html, "billing") == (25, 5)
    assert 'hx-trigger="every 1s, live-resume"' in html


def test_trimmed_stream_is_told_apart_from_one_that_only_grows(web, r):
    for i in range(300):
        r.xadd("capped", {"n": i}, maxlen=100, approximate=False)
    r.xadd("growing", {"n": 1})
    data = web.get("/streams.json").get_json()
    by_key = {s["key"]: s for s in data["streams"]}
    assert by_key["capped"]["trimmed"] is True and by_key["capped"]["removed_entries"] == 200
    assert by_key["growing"]["trimmed"] is False
    assert "never trimmed" in web.get("/streams").get_data(as_text=True)


def test_listing_is_capped_and_says_so(make_app, r):
    for i in range(5):
        r.xadd(f"s{i}", {"n": i})
    data = make_app(max_streams=3).test_client().get("/streams.json").get_json()
    assert len(data["streams"]) == 3
    assert data["discovery"]["capped"] is True and data["discovery"]["not_shown"] >= 2
    narrowed = make_app(max_streams=3).test_client().get("/streams.json?match=s4").get_json()
    assert [s["key"] for s in narrowed["streams"]] == ["s4"]


def test_discovery_is_bounded_per_round_and_resumes(r):
    with r.pipeline(transaction=False) as pipe:
        for i in range(2000):
            pipe.set(f"k:{i}", 1)
        pipe.execute()
    for i in range(7):
        r.xadd(f"stream:{i}", {"n": i})
    now = [0.0]
    finder = StreamFinder(r, scan_count=100, budget=300, clock=lambda: now[0])
    rounds = [finder.find()]
    while not rounds[-1]["complete"]:
        rounds.append(finder.find())
        assert len(rounds) < 100
    assert len(rounds) > 2  # a round stops at its budget; the next one continues
    assert rounds[0]["examined"] <= 300
    assert sorted(k for k, _ in rounds[-1]["streams"]) == [f"stream:{i}".encode() for i in range(7)]
    # a new stream shows up with the next sweep, which starts once the last one is old enough
    r.xadd("stream:new", {"n": 1})
    assert b"stream:new" not in {k for k, _ in finder.find()["streams"]}
    now[0] += 60
    while b"stream:new" not in {k for k, _ in finder.find()["streams"]}:
        pass


def test_deleted_and_unreadable_streams_degrade(fake):
    fake.xadd("s", {"a": 1})
    history = LagHistory()
    summary = stream_summary(fake, b"s", node=None, history=history, dead_ms=1000)
    assert summary["length"] == 1
    if summary["memory_unavailable"]:  # fakeredis has no MEMORY USAGE: said, not raised
        assert summary["memory_bytes"] is None
    fake.set("plain", "x")
    broken = stream_summary(fake, b"plain", node=None, history=history, dead_ms=1000)
    assert broken["error"] and broken["groups"] == []
    assert stream_summary(fake, b"gone", node=None, history=history, dead_ms=1000) is None


# --- history, flags, sparkline -----------------------------------------------------------


def test_lag_history_is_bounded_and_flags_growth():
    now = [0.0]
    history = LagHistory(points=10, max_series=2, clock=lambda: now[0])
    series = ("s", "g")
    for lag in (5, 5, 6, 7, 9):
        history.record(series, lag, 1)
        now[0] += 1
    assert history.growing(series)
    history.record(series, 3, 1)
    now[0] += 1
    assert not history.growing(series)
    history.record(series, 99, 1)  # too soon after the last sample: skipped
    for lag in range(30):
        now[0] += 1
        history.record(series, lag, 0)
    assert len(history.samples(series)) == 10
    history.record(("a", "g"), 1, 0)
    history.record(("b", "g"), 1, 0)
    assert history.samples(series) == []  # least recently used series evicted


def test_sparkline_is_plain_svg_geometry():
    assert sparkline([[0, 1, 0]]) is None
    spark = sparkline([[0, 0, 0], [1, None, 0], [2, 10, 0], [4, 5, 0]])
    points = [tuple(map(float, p.split(","))) for p in spark["points"].split()]
    assert len(points) == 3
    assert all(0 <= x <= spark["width"] and 0 <= y <= spark["height"] for x, y in points)
    assert points[1][1] < points[0][1]  # higher lag is drawn higher
    assert spark["peak"] == 10


def test_dead_consumer_flag(make_app, r):
    for i in range(5):
        r.xadd("jobs", {"n": i})
    ensure_group(r, "jobs", "g", start_id="0")
    r.xreadgroup("g", "crashed", {"jobs": ">"}, count=3)
    r.xgroup_createconsumer("jobs", "g", "spare")
    client = make_app(consumer_dead_ms=50).test_client()

    def statuses():
        group = group_of(client.get("/streams.json").get_json(), "jobs", "g")
        if group["dead_consumers"]:
            return {c["name"]: c["status"] for c in group["consumer_list"]}
        return None

    assert wait_until(statuses) == {"crashed": "dead", "spare": "idle"}
    assert "1 dead" in client.get("/streams").get_data(as_text=True)


def test_lag_and_pending_grow_while_a_consumer_is_down_and_fall_after_restart(make_app, r):
    """A worker hangs mid-batch (its entries stay pending) while the producer keeps going;
    a restarted worker with the same name finishes its backlog and catches up."""
    client = make_app().test_client()
    ensure_group(r, "{orders}", "billing", start_id="0")
    for i in range(20):
        r.xadd("{orders}", {"n": i})
    hung, release = threading.Event(), threading.Event()

    def handler(entry):
        if hung.is_set():
            release.wait(30)
            raise RuntimeError("worker died")

    worker = Worker(r, "{orders}", "billing", "w1", handler, count=10, block_ms=100).start()

    def numbers():
        return group_of(client.get("/streams.json").get_json(), "{orders}", "billing")

    wait_until(lambda: numbers()["lag"] == 0 and numbers()["pending"] == 0)
    hung.set()
    producing = threading.Event()
    producing.set()

    def produce():
        n = 0
        while producing.is_set():
            r.xadd("{orders}", {"n": n})
            n += 1
            time.sleep(0.005)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        first = wait_until(lambda: (g := numbers())["pending"] > 0 and g["lag"] > 0 and g)
        later = wait_until(lambda: (g := numbers())["lag"] > first["lag"] + 50 and g)
        assert later["pending"] >= first["pending"] > 0
        lag_html, pending_html = html_numbers(
            client.get("/streams").get_data(as_text=True), "billing"
        )
        assert lag_html >= later["lag"] and pending_html > 0
        assert wait_until(lambda: numbers()["lag_growing"])
        # restart: the hung worker dies (its entries stay pending), a new one takes over
        release.set()
        worker.stop(10)
        hung.clear()
        worker = Worker(r, "{orders}", "billing", "w1", lambda e: None, count=100, block_ms=100)
        worker.start()
        peak = numbers()["lag"]
        wait_until(lambda: numbers()["lag"] < peak / 2)
    finally:
        producing.clear()
        producer.join()
    wait_until(lambda: (g := numbers())["lag"] == 0 and g["pending"] == 0)
    assert html_numbers(client.get("/streams").get_data(as_text=True), "billing") == (0, 0)
    worker.stop(10)


# --- detail page --------------------------------------------------------------------------


def test_entries_window_pages_through_without_gaps(web, r):
    ids = [r.xadd("log", {"n": i}).decode() for i in range(120)]
    k = encode_key(b"log")
    seen, start = [], None
    for _ in range(5):
        url = f"/stream.json?k={k}&limit=50" + (f"&start={start}" if start else "")
        page = web.get(url).get_json()["entries"]
        seen += [e["id"] for e in page["items"]]
        start = page["next"]
        if not start:
            break
    assert seen == ids
    newest = web.get(f"/stream.json?k={k}&order=desc&limit=3").get_json()["entries"]
    assert [e["id"] for e in newest["items"]] == ids[::-1][:3]
    assert web.get(f"/stream.json?k={k}&start=nonsense").status_code == 400
    assert web.get(f"/stream.json?k={k}&limit=100000").get_json()["entries"]["limit"] == 500


def test_pending_window_shows_delivery_counts_and_filters_by_consumer(web, r):
    for i in range(8):
        r.xadd("q", {"n": i})
    ensure_group(r, "q", "g", start_id="0")
    first = r.xreadgroup("g", "a", {"q": ">"}, count=5)[0][1]
    r.xreadgroup("g", "b", {"q": ">"}, count=3)
    r.xclaim("q", "g", "a", 0, [first[0][0]])  # delivered twice now
    k = encode_key(b"q")
    data = web.get(f"/stream.json?k={k}&group=g&plimit=4").get_json()
    assert data["group"] == "g"
    assert len(data["pending"]["items"]) == 4 and data["pending"]["next"]
    assert data["pending"]["items"][0]["deliveries"] == 2
    rest = web.get(f"/stream.json?k={k}&group=g&pstart={data['pending']['next']}").get_json()
    assert len(rest["pending"]["items"]) == 4
    only_b = web.get(f"/stream.json?k={k}&group=g&consumer=b").get_json()["pending"]
    assert {p["consumer"] for p in only_b["items"]} == {"b"} and len(only_b["items"]) == 3
    assert web.get(f"/stream.json?k={k}&group=nope").status_code == 404


def test_detail_errors_are_clear(web, r):
    assert web.get("/stream").status_code == 400
    assert web.get("/stream?k=***").status_code == 400
    missing = web.get(f"/stream.json?k={encode_key(b'nothing')}")
    assert missing.status_code == 404 and "nothing" in missing.get_json()["message"]


def test_hostile_stream_and_group_names(web, r):
    key = b"<img src=x onerror=alert(1)>:\xff"
    group = b"g\xfe<b>\\x"
    r.xadd(key, {"<script>": "</td>"})
    r.xgroup_create(key, group, id="0")
    r.xreadgroup(group, b"c\x00", {key: ">"})
    data = web.get("/streams.json").get_json()
    g = data["streams"][0]["groups"][0]
    assert raw_name(g["name"]) == group
    assert raw_name(g["consumer_list"][0]["name"]) == b"c\x00"
    html = web.get("/streams").get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x" in html
    detail = web.get(f"/stream?k={encode_key(key)}&group={g['name']}")
    assert detail.status_code == 200
    text = detail.get_data(as_text=True)
    assert "<script>" not in text.replace('<script src="', "") and "&lt;/td&gt;" in text


@pytest.mark.parametrize(
    "name", [b"plain", b"\xff\xfe", b"back\\slash", b"\x00\x1b[31m", "é\u202e".encode()]
)
def test_raw_name_inverts_display(name):
    assert raw_name(display_key(name, limit=None)) == name


# --- actions -------------------------------------------------------------------------------


def _pending_setup(r):
    for i in range(6):
        r.xadd("work", {"n": i})
    ensure_group(r, "work", "g", start_id="0")
    rows = r.xreadgroup("g", "w1", {"work": ">"}, count=4)[0][1]
    return [row[0].decode() for row in rows]


def test_actions_are_refused_read_only(web, r):
    ids = _pending_setup(r)
    token = csrf(web)
    form = {
        "csrf_token": token,
        "action": "ack",
        "k": encode_key(b"work"),
        "group": "g",
        "ids": ids,
    }
    refused = web.post("/stream/action", data={**form, "confirm": "yes"})
    assert refused.status_code == 403 and "--allow-writes" in refused.get_data(as_text=True)
    as_json = web.post("/stream/action.json", data={**form, "confirm": "yes"})
    assert as_json.status_code == 403 and "read-only" in as_json.get_json()["message"]
    assert r.xpending("work", "g")["pending"] == 4
    page = web.get(f"/stream?k={encode_key(b'work')}").get_data(as_text=True)
    assert 'id="read-only-note"' in page and 'name="ids"' not in page


def test_actions_need_the_csrf_token(make_app, r):
    ids = _pending_setup(r)
    client = make_app(allow_writes=True).test_client()
    form = {"action": "ack", "k": encode_key(b"work"), "group": "g", "ids": ids, "confirm": "yes"}
    assert client.post("/stream/action", data=form).status_code == 400
    assert r.xpending("work", "g")["pending"] == 4


def test_ack_claim_and_delete_consumer_with_confirmation(make_app, r):
    ids = _pending_setup(r)
    client = make_app(allow_writes=True).test_client()
    token = csrf(client)
    base = {"csrf_token": token, "k": encode_key(b"work"), "group": "g"}
    # step 1 only describes what would happen
    ask = client.post("/stream/action", data={**base, "action": "ack", "ids": ids[:2]})
    assert ask.status_code == 200 and 'id="confirm-action"' in ask.get_data(as_text=True)
    assert "never be delivered again" in ask.get_data(as_text=True)
    assert r.xpending("work", "g")["pending"] == 4
    # step 2 does it
    done = client.post(
        "/stream/action", data={**base, "action": "ack", "ids": ids[:2], "confirm": "yes"}
    )
    assert done.status_code == 302
    assert r.xpending("work", "g")["pending"] == 2
    assert "acknowledged 2 of 2" in client.get(done.headers["Location"]).get_data(as_text=True)
    claim = client.post(
        "/stream/action.json",
        data={**base, "action": "claim", "ids": ids[2:], "consumer": "w2", "confirm": "yes"},
    )
    assert claim.get_json()["result"] == "claimed 2 of 2 entries to w2"
    rows = r.xpending_range("work", "g", "-", "+", 10)
    assert {(x["consumer"], x["times_delivered"]) for x in rows} == {(b"w2", 1)}  # JUSTID
    ask = client.post(
        "/stream/action.json", data={**base, "action": "delconsumer", "consumer": "w2"}
    )
    assert ask.get_json()["confirm_required"] is True
    gone = client.post(
        "/stream/action.json",
        data={**base, "action": "delconsumer", "consumer": "w2", "confirm": "yes"},
    )
    assert "2 pending entries dropped" in gone.get_json()["result"]
    assert {c["name"] for c in r.xinfo_consumers("work", "g")} == {b"w1"}


def test_bad_action_requests(make_app, r):
    _pending_setup(r)
    client = make_app(allow_writes=True).test_client()
    base = {"csrf_token": csrf(client), "k": encode_key(b"work"), "group": "g", "confirm": "yes"}
    assert client.post("/stream/action", data={**base, "action": "drop"}).status_code == 400
    assert client.post("/stream/action", data={**base, "action": "ack"}).status_code == 400
    bad_id = {**base, "action": "ack", "ids": ["1-0; FLUSHALL"]}
    assert client.post("/stream/action", data=bad_id).status_code == 400
    no_consumer = {**base, "action": "claim", "ids": ["1-0"]}
    assert client.post("/stream/action", data=no_consumer).status_code == 400


def test_discovery_visits_every_primary(r, private_server):
    import redis

    other = redis.Redis(port=private_server().port)
    r.xadd("here", {"a": 1})
    other.xadd("there", {"a": 1})
    other.set("plain", 1)
    nodes = [("n1", "primary", r), ("n2", "primary", other)]
    found = StreamFinder(r, node_clients=lambda c: nodes).find()
    assert sorted(found["streams"]) == [(b"here", "n1"), (b"there", "n2")]
    other.close()


def test_overlong_match_glob_is_refused(web):
    assert web.get("/streams.json?match=" + "a" * 2000).status_code == 400
