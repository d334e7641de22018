"""/pubsub and its live tails: channels listing, SSE, caps, bounded buffers, cleanup."""

import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import pytest

from dashboard.config import Settings, SettingsError
from dashboard.inspect.live.tails import PAYLOAD_LIMIT, TailRegistry, TooManyTails, payload_text
from dashboard.web.pubsub import TAIL_CLIENT_NAME


def wait_until(check, timeout=15.0, step=0.05):
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def tail_connections(r):
    return [c for c in r.client_list() if c.get("name") == TAIL_CLIENT_NAME]


def parse_events(text):
    events = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if name:
            events.append((name, json.loads("\n".join(data))))
    return events


class FlaskStream:
    """An SSE response of the Flask test client, read event by event."""

    def __init__(self, response):
        self.response = response
        self._chunks = iter(response.response)
        self._buffer = ""

    def next_event(self):
        while True:
            while "\n\n" not in self._buffer:
                self._buffer += next(self._chunks).decode()
            block, self._buffer = self._buffer.split("\n\n", 1)
            events = parse_events(block + "\n\n")
            if events:  # a "retry:" line or a comment is not an event
                return events[0]

    def until(self, predicate, limit=500):
        for _ in range(limit):
            name, data = self.next_event()
            if predicate(name, data):
                return name, data
        raise AssertionError("event not seen")

    def messages(self, count):
        got = []
        while len(got) < count:
            _, data = self.until(lambda n, d: n == "messages")
            got.extend(data["messages"])
        return got

    def close(self):
        self.response.close()


class HttpStream:
    """An SSE stream from the real server (gunicorn) over a plain HTTP connection."""

    def __init__(self, base, path, timeout=15):
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.conn.request("GET", path)
        self.response = self.conn.getresponse()
        self.status = self.response.status

    def next_event(self):
        name, data = None, []
        while True:
            line = self.response.readline().decode()
            if line == "":
                raise EOFError("stream ended")
            line = line.rstrip("\n")
            if not line:
                if name:
                    return name, json.loads("\n".join(data))
                continue
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])

    def until(self, predicate, limit=500):
        for _ in range(limit):
            name, data = self.next_event()
            if predicate(name, data):
                return name, data
        raise AssertionError("event not seen")

    def close(self):
        self.conn.sock.close()
        self.response.close()


def subscribed(name, data):
    return name == "stats" and data["subscribed"]


# --- payloads and the registry (no web) ---------------------------------------------------


def test_payload_text_keeps_utf8_and_escapes_the_rest():
    assert payload_text(b'{"a": "\xc3\xa9"}') == ('{"a": "é"}', False, False)
    assert payload_text("line1\nline2\ttab") == ("line1\nline2\ttab", False, False)
    text, truncated, binary = payload_text(b"\xff\x00<b>")
    assert (text, truncated, binary) == ("\\xff\\x00<b>", False, True)
    assert payload_text("a\u202eb\x07")[0] == "a\\u202eb\\u0007"
    # cut inside a two-byte character: still text, still valid, marked truncated
    text, truncated, binary = payload_text("é" * 10, limit=5)
    assert (text, truncated, binary) == ("éé", True, False)


def test_flood_keeps_the_buffer_bounded_and_counts_drops(r, make_client):
    registry = TailRegistry(make_client(), max_tails=2, buffer=100)
    tail = registry.open(channel="flood")
    try:
        assert tail.subscriber.wait_subscribed(10)
        with r.pipeline(transaction=False) as pipe:
            for i in range(5000):
                pipe.publish("flood", f"m{i}")
            pipe.execute()
        wait_until(lambda: tail.received == 5000)
        stats = tail.stats()
        assert stats["buffered"] == 100
        assert stats["dropped"] == 4900
        items = tail.take(timeout=0)
        assert [m.text for m in items] == [f"m{i}" for i in range(4900, 5000)]
        assert tail.stats()["delivered"] == 100 and tail.stats()["buffered"] == 0
    finally:
        registry.close_all()


def test_big_payloads_are_cut_before_they_are_buffered(r, make_client):
    registry = TailRegistry(make_client(), max_tails=1, buffer=10)
    tail = registry.open(channel="big")
    try:
        assert tail.subscriber.wait_subscribed(10)
        for _ in range(20):
            r.publish("big", b"x" * 1_000_000)
        wait_until(lambda: tail.received == 20)
        items = tail.take(timeout=0)
        assert len(items) == 10 and tail.dropped == 10
        assert all(len(m.text) == PAYLOAD_LIMIT and m.truncated for m in items)
        assert all(m.length == 1_000_000 for m in items)
    finally:
        registry.close_all()


def test_cap_on_concurrent_tails(r, make_client):
    registry = TailRegistry(make_client(), max_tails=2, buffer=10)
    first = registry.open(channel="a")
    registry.open(pattern="b*")
    with pytest.raises(TooManyTails, match="max_tails=2"):
        registry.open(channel="c")
    assert registry.status()["refused"] == 1
    registry.close(first)
    third = registry.open(channel="c")
    assert third.subscriber.wait_subscribed(10)
    assert registry.status()["active"] == 2
    registry.close_all()
    assert registry.status()["active"] == 0


def test_idle_tails_are_reaped_and_unsubscribed(r, make_client):
    now = [1000.0]
    registry = TailRegistry(make_client(), max_tails=2, buffer=10, idle_s=30, clock=lambda: now[0])
    tail = registry.open(channel="quiet")
    assert tail.subscriber.wait_subscribed(10)
    assert r.pubsub_numsub("quiet") == [(b"quiet", 1)]
    now[0] += 10
    assert registry.reap() == 0
    tail.take(timeout=0)  # drained: the idle clock restarts
    now[0] += 25
    assert registry.reap() == 0
    now[0] += 10
    assert registry.reap() == 1
    assert "nobody read" in tail.closed_reason
    assert registry.status()["active"] == 0
    wait_until(lambda: r.pubsub_numsub("quiet") == [(b"quiet", 0)])


def test_max_tails_must_leave_threads_for_pages():
    with pytest.raises(SettingsError, match="max_tails"):
        Settings().updated({"threads": 8, "max_tails": 8})
    assert Settings().updated({"threads": 8, "max_tails": 7}).max_tails == 7


# --- /pubsub and /pubsub/tail through Flask ---------------------------------------------------


def test_pubsub_json_lists_channels_numsub_and_numpat(web, r, make_client):
    p1 = make_client().pubsub()
    p1.subscribe("orders:created", "orders:paid")
    p2 = make_client().pubsub()
    p2.subscribe("orders:created", "<img src=x>")
    p2.psubscribe("audit:*")
    for p in (p1, p2):
        p.get_message(timeout=1)
    wait_until(lambda: r.pubsub_numpat() == 1 and len(r.pubsub_channels()) == 3)
    data = web.get("/pubsub.json").get_json()
    assert data["channels"][0] == {"name": "orders:created", "subscribers": 2}
    assert {c["name"] for c in data["channels"]} == {"orders:created", "orders:paid", "<img src=x>"}
    assert data["channel_count"] == 3 and data["pattern_subscriptions"] == 1
    assert data["truncated"] is False and data["channels_unavailable"] is None
    filtered = web.get("/pubsub.json?match=orders:*").get_json()
    assert {c["name"] for c in filtered["channels"]} == {"orders:created", "orders:paid"}
    html = web.get("/pubsub").get_data(as_text=True)
    assert "&lt;img src=x&gt;" in html and "<img src=x>" not in html
    p1.close()
    p2.close()


def test_tail_needs_exactly_one_channel_or_pattern(web):
    assert web.get("/pubsub/tail").status_code == 400
    assert web.get("/pubsub/tail?channel=a&pattern=b*").status_code == 400
    assert web.get("/pubsub/tail?channel=" + "x" * 2000).status_code == 400


def test_channel_tail_streams_messages_and_releases_on_close(make_app, r):
    app = make_app()
    stream = FlaskStream(app.test_client().get("/pubsub/tail?channel=news", buffered=False))
    assert stream.response.status_code == 200
    assert stream.response.mimetype == "text/event-stream"
    name, hello = stream.next_event()
    assert name == "hello" and hello["channel"] == "news"
    stream.until(subscribed)
    assert len(tail_connections(r)) == 1
    r.publish("news", json.dumps({"id": 7, "tags": ["a"]}))
    r.publish("news", b"<script>alert(1)</script>")
    r.publish("other", "not for us")
    got = stream.messages(2)
    assert [m["channel"] for m in got] == ["news", "news"]
    assert json.loads(got[0]["text"]) == {"id": 7, "tags": ["a"]}
    assert got[1]["text"] == "<script>alert(1)</script>"  # escaped by the browser (textContent)
    stream.close()
    wait_until(lambda: not tail_connections(r))
    assert r.pubsub_numsub("news") == [(b"news", 0)]


def test_pattern_tail_gets_messages_from_two_channels(make_app, r):
    stream = FlaskStream(
        make_app().test_client().get("/pubsub/tail?pattern=shop:*", buffered=False)
    )
    stream.until(subscribed)
    r.publish("shop:orders", "o1")
    r.publish("shop:payments", "p1")
    r.publish("elsewhere", "x")
    got = stream.messages(2)
    assert {(m["channel"], m["text"], m["pattern"]) for m in got} == {
        ("shop:orders", "o1", "shop:*"),
        ("shop:payments", "p1", "shop:*"),
    }
    stream.close()
    wait_until(lambda: r.pubsub_numpat() == 0)


def test_over_the_cap_the_tail_answers_429(make_app, r):
    client = make_app(max_tails=1).test_client()
    first = FlaskStream(client.get("/pubsub/tail?channel=a", buffered=False))
    first.until(subscribed)
    refused = client.get("/pubsub/tail?channel=b")
    assert refused.status_code == 429
    assert "max_tails=1" in refused.get_data(as_text=True)
    as_json = client.get("/pubsub/tail?channel=b", headers={"Accept": "application/json"})
    assert as_json.status_code == 429 and as_json.get_json()["error"] == "Too many live tails"
    page = client.get("/pubsub?channel=b").get_data(as_text=True)
    assert 'id="tail-message"' in page and "max_tails=1" in page
    status = client.get("/pubsub/tails.json").get_json()
    assert status["active"] == 1 and status["refused"] == 2
    first.close()
    wait_until(lambda: client.get("/pubsub/tails.json").get_json()["active"] == 0)


def test_tail_page_renders_the_tail_panel(web):
    html = web.get("/pubsub?pattern=orders:*").get_data(as_text=True)
    assert 'data-src="/pubsub/tail?pattern=orders:*"' in html.replace("%3A", ":").replace(
        "%2A", "*"
    )
    assert "js/tail.js" in html and "<script>" not in html


# --- the real server (gunicorn gthread) -------------------------------------------------------


def test_gunicorn_holds_three_tails_and_stays_responsive(live_server, r):
    base = live_server()
    streams = [HttpStream(base, f"/pubsub/tail?channel=ch{i}") for i in range(3)]
    try:
        for s in streams:
            assert s.status == 200
            s.until(subscribed)
        assert len(tail_connections(r)) == 3
        parts = urlsplit(base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        for path in ("/overview.json", "/streams.json", "/pubsub.json"):
            conn.request("GET", path)
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 200, path
        assert body["tails"]["active"] == 3
        r.publish("ch1", "hello")
        _, data = streams[1].until(lambda n, d: n == "messages")
        assert data["messages"][0]["text"] == "hello"
    finally:
        for s in streams:
            s.close()
    # the server notices the closed connections on its next write (heartbeat) and unsubscribes
    wait_until(lambda: not tail_connections(r), timeout=20)
    assert r.pubsub_numsub("ch0", "ch1", "ch2") == [(b"ch0", 0), (b"ch1", 0), (b"ch2", 0)]


def test_gunicorn_refuses_a_tail_over_the_cap(live_server, r):
    base = live_server(max_tails=2)
    streams = [HttpStream(base, f"/pubsub/tail?channel=c{i}") for i in range(2)]
    try:
        for s in streams:
            s.until(subscribed)
        third = HttpStream(base, "/pubsub/tail?channel=c3")
        assert third.status == 429
        assert "max_tails=2" in third.response.read().decode()
        third.close()
    finally:
        for s in streams:
            s.close()
    wait_until(lambda: not tail_connections(r), timeout=20)


def test_slow_sse_client_gets_a_bounded_stream_with_drops_counted(live_server, r):
    base = live_server(tail_buffer=50)
    stream = HttpStream(base, "/pubsub/tail?channel=firehose")
    try:
        stream.until(subscribed)

        def flood():
            with r.pipeline(transaction=False) as pipe:
                for i in range(20000):
                    pipe.publish("firehose", f"{i:08d}" + "x" * 200)
                pipe.execute()

        publisher = threading.Thread(target=flood)
        publisher.start()
        publisher.join()
        # the stream reports what it received; what it could not keep is counted as dropped
        _, stats = stream.until(lambda n, d: n == "stats" and d["received"] == 20000, limit=5000)
        assert stats["buffered"] <= 50
        assert stats["delivered"] + stats["buffered"] + stats["dropped"] == 20000
    finally:
        stream.close()
    wait_until(lambda: not tail_connections(r), timeout=20)


def test_tails_do_not_see_sharded_messages(r, make_client):
    """As documented: SPUBLISH reaches only SSUBSCRIBE subscribers, never a tail."""
    registry = TailRegistry(make_client(), max_tails=1, buffer=10)
    tail = registry.open(channel="orders:{1}")
    try:
        assert tail.subscriber.wait_subscribed(10)
        assert r.execute_command("SPUBLISH", "orders:{1}", "sharded") == 0
        assert r.publish("orders:{1}", "global") == 1
        wait_until(lambda: tail.received == 1)
        assert [m.text for m in tail.take(timeout=0)] == ["global"]
    finally:
        registry.close_all()
