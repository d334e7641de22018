"""/streams as a table: one row per group, sorted and paged; read in pipelined round trips."""

import redis
from observer_support import fresh_get

from dashboard.inspect.live.streamread import read_streams
from dashboard.inspect.live.streams import LagHistory, stream_summary
from dashboard.patterns.streams import ensure_group


def _plant(r, streams=60):
    for i in range(streams):
        key = f"orders:{i:02d}"
        for n in range(i % 7 + 1):
            r.xadd(key, {"n": n})
        if i % 3:
            ensure_group(r, key, "billing", start_id="0")
            if i % 4:
                r.xreadgroup("billing", "w1", {key: ">"}, count=i % 4)
    r.xadd("lonely", {"a": 1})


def test_rows_are_sorted_and_paged(make_app, r):
    _plant(r)
    client = make_app(max_streams=200).test_client()
    first = fresh_get(client, "/streams.json?sort=pending").get_json()
    assert first["paging"]["rows"] == 61 and first["paging"]["pages"] == 2
    pending = [row["pending"] for row in first["rows"] if row["pending"] is not None]
    assert pending == sorted(pending, reverse=True)
    by_lag = client.get("/streams.json?sort=lag&dir=asc").get_json()["rows"]
    lags = [row["lag"] for row in by_lag if row["lag"] is not None]
    assert lags == sorted(lags) and by_lag[-1]["lag"] is None  # unknown last
    assert {row["stream"] for row in first["rows"] if row["group"] is None} >= {"lonely"}
    for sort in ("stream", "oldest", "length", "last", "memory"):
        assert client.get(f"/streams.json?sort={sort}").status_code == 200
    assert client.get("/streams.json?sort=nope").status_code == 400
    assert client.get("/streams.json?page=9").status_code == 404


def test_pages_of_fifty(make_app, r):
    for i in range(70):
        r.xadd(f"s:{i:02d}", {"n": i})
    client = make_app(max_streams=500).test_client()
    one = fresh_get(client, "/streams.json?sort=stream").get_json()
    assert one["paging"]["pages"] == 2 and len(one["rows"]) == 50
    two = client.get("/streams.json?sort=stream&page=2").get_json()
    assert len(two["rows"]) == 20 and two["rows"][0]["stream"] == "s:50"
    assert len(one["streams"]) == 70  # the twin keeps every stream read
    html = client.get("/streams?sort=stream").get_data(as_text=True)
    assert "page=2" in html and html.count('class="stream-only"') == 50


def test_the_reading_is_pipelined_and_matches_the_one_stream_reader(redis_server, r, monkeypatch):
    _plant(r)
    found = [(k, None) for k in sorted(r.scan_iter(_type="stream", count=1000))]
    round_trips = []
    real = redis.client.Pipeline.execute

    def counted(self, *args, **kwargs):
        round_trips.append(len(self.command_stack))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)
    client = redis.Redis(port=redis_server.port)
    client.ping()  # connected: the handshake is not part of the reading
    before = r.info("stats")["total_commands_processed"]
    batched = read_streams(client, found, history=LagHistory(), dead_ms=60_000)
    spent = r.info("stats")["total_commands_processed"] - before - 1
    assert len(round_trips) == 2  # 61 streams, 40 groups: two round trips in all
    assert round_trips[0] == 1 + 3 * len(found)  # TIME, then XINFO STREAM/GROUPS, MEMORY
    assert spent == sum(round_trips)
    monkeypatch.setattr(redis.client.Pipeline, "execute", real)
    for summary in batched:
        single = stream_summary(
            client, summary["id"] and _key(summary), node=None, history=LagHistory(), dead_ms=60_000
        )
        for field in ("length", "first_id", "last_id", "trimmed", "entries_added"):
            assert summary[field] == single[field], field
        for mine, theirs in zip(summary["groups"], single["groups"], strict=True):
            for field in (
                "name",
                "pending",
                "lag",
                "lag_source",
                "oldest_pending_id",
                "max_delivery_count",
                "consumers",
            ):
                assert mine[field] == theirs[field], field
    client.close()


def _key(summary):
    from dashboard.keyid import resolve_address

    return resolve_address(summary["id"])
