"""The stream rules (dashboard/inspect/audit/streamrules.py) on stream states written
here: which streams were read or refused, unbounded streams, consumer lag and stuck
pending entries, each finding compared whole at its thresholds' edges."""

from types import SimpleNamespace

import pytest

from dashboard.inspect.audit.findings import Finding, Skip
from dashboard.inspect.audit.thresholds import config_from_mapping


def test_stream_report_notes_refused_streams_and_skips_ones_that_changed_type(monkeypatch):
    """A stream the read side refuses is named with the reason; a key that is no longer a
    stream is passed over, and the streams after either are still read."""
    from redis.exceptions import ResponseError

    from dashboard.inspect.audit import streamrules
    from dashboard.patterns.streams import StreamStateError

    def state(client, key, **bounds):
        if key == b"q:gone":
            raise StreamStateError("WRONGTYPE")
        if key == b"q:odd":
            raise ResponseError("ERR something odd")
        return SimpleNamespace(exists=key != b"q:deleted", key=key)

    monkeypatch.setattr(streamrules, "stream_state", state)
    keys = [b"q:gone", b"q:odd", b"q:deleted", b"q:ok"]
    report = streamrules.StreamReport([(k, 10) for k in keys], total=4)
    report.read(client=None)
    assert [key for key, _ in report.states] == [b"q:ok"]
    assert report.refused == ["q:odd: XINFO/XPENDING failed: ERR something odd"]
    notes = []
    assert report.check(notes) == report.states and notes == report.refused


def test_a_stream_report_with_every_stream_refused_is_a_skip_with_the_first_reason():
    from dashboard.inspect.audit import streamrules

    report = streamrules.StreamReport([(b"q:1", 10), (b"q:2", 5)], total=3)
    report.refused = ["q:1: first reason", "q:2: second reason"]
    with pytest.raises(Skip, match=r"^q:1: first reason$"):
        report.check([])
    report.states = [(b"q:3", object())]
    notes = []
    report.check(notes)
    assert notes == [
        "q:1: first reason",
        "q:2: second reason",
        "3 streams found; the 2 longest were inspected",
    ]


def _stream(length, entries_added, **kw):
    return SimpleNamespace(
        length=length,
        entries_added=entries_added,
        max_deleted_id=kw.get("max_deleted_id", "0-0"),
        first_age_ms=kw.get("first_age_ms", 5000),
        groups=kw.get("groups", []),
    )


def test_unbounded_streams_at_the_length_edge_trimmed_or_not_or_unknown():
    from dashboard.inspect.audit import streamrules

    config = config_from_mapping({"rules": {"unbounded-stream": {"max_length": 100}}})
    states = [
        (b"s:short", _stream(99, 99)),
        (b"s:trimmed", _stream(120, 150)),  # more added than held: something trimmed it
        (b"s:edge", _stream(100, 100, groups=[1, 2])),
        (b"s:old", _stream(300, None, max_deleted_id=None, first_age_ms=None)),  # Redis < 7
    ]
    assert streamrules.unbounded_stream(states, config) == [
        Finding(
            "unbounded-stream",
            "s:edge",
            "stream s:edge holds 100 entries and was never trimmed",
            {
                "length": 100,
                "entries_added": 100,
                "max_deleted_id": "0-0",
                "trimmed": False,
                "first_entry_age_ms": 5000,
                "groups": 2,
            },
            subject_kind="stream",
            weight=100,
        ),
        Finding(
            "unbounded-stream",
            "s:old",
            "stream s:old holds 300 entries and was not seen trimmed (Redis < 7 cannot tell)",
            {
                "length": 300,
                "entries_added": None,
                "max_deleted_id": None,
                "trimmed": None,
                "first_entry_age_ms": None,
                "groups": 0,
            },
            subject_kind="stream",
            weight=300,
        ),
    ]


def _group(name, lag, lower_bound=False, source="server"):
    return SimpleNamespace(
        name=name,
        lag=lag,
        lag_source=source,
        lag_is_lower_bound=lower_bound,
        consumers=2,
        pending=3,
        last_delivered_id="5-0",
    )


def test_consumer_lag_at_its_threshold_and_as_a_lower_bound():
    from dashboard.inspect.audit import streamrules

    config = config_from_mapping({"rules": {"stream-consumer-lag": {"max_lag": 1000}}})
    stream = _stream(5000, 5000)
    stream.groups = [
        _group("fast", 999),
        _group("unknown", None, source="none"),
        _group("edge", 1000),
        _group("far", 1000, lower_bound=True, source="xrange"),
    ]
    found = streamrules.consumer_lag([(b"jobs", stream)], config)
    assert found[0] == Finding(
        "stream-consumer-lag",
        "jobs (group edge)",
        "group edge of jobs has 1,000 entries not yet delivered (2 consumers)",
        {
            "stream": "jobs",
            "group": "edge",
            "lag": 1000,
            "lag_source": "server",
            "lag_is_lower_bound": False,
            "consumers": 2,
            "pending": 3,
            "last_delivered_id": "5-0",
            "stream_length": 5000,
        },
        subject_kind="consumer-group",
        weight=1000,
    )
    assert [f.message for f in found[1:]] == [
        "group far of jobs has at least 1,000 entries not yet delivered (2 consumers)"
    ]


def _pending_group(name, pending, idle, consumers=()):
    return SimpleNamespace(
        name=name,
        pending=pending,
        oldest_pending_idle_ms=idle,
        oldest_pending_id="1-0",
        max_delivery_count=4,
        pending_sampled=False,
        consumer_list=[SimpleNamespace(name=n, pending=p, idle_ms=i) for n, p, i in consumers],
    )


def test_stuck_pending_at_its_idle_edge_with_the_consumers_holding_entries():
    from dashboard.inspect.audit import streamrules

    config = config_from_mapping({"rules": {"stream-stuck-pending": {"min_idle_ms": 600_000}}})
    stream = _stream(10, 10)
    stream.groups = [
        _pending_group("none", 0, 900_000),  # nothing pending: an old idle means nothing
        _pending_group("unknown", 3, None),
        _pending_group("young", 3, 599_999),
        _pending_group(
            "edge",
            27,
            600_000,
            [("idle", 0, 5), *((f"c{n}", n, 1_000 * n) for n in range(1, 7))],
        ),
    ]
    assert streamrules.stuck_pending([(b"jobs", stream)], config) == [
        Finding(
            "stream-stuck-pending",
            "jobs (group edge)",
            "group edge of jobs has 27 pending entries, idle up to 600 s",
            {
                "stream": "jobs",
                "group": "edge",
                "pending": 27,
                "oldest_pending_id": "1-0",
                "max_idle_ms": 600_000,
                "max_delivery_count": 4,
                "sampled": False,
                "consumers_with_pending": [  # the five holding most, most first
                    {"name": f"c{n}", "pending": n, "idle_ms": 1_000 * n} for n in range(6, 1, -1)
                ],
            },
            subject_kind="consumer-group",
            weight=600_000,
        )
    ]


def test_a_stream_report_notes_at_most_five_refusals():
    from dashboard.inspect.audit import streamrules

    report = streamrules.StreamReport([(b"q", 1)], total=1)
    report.refused = [f"q:{n}: refused" for n in range(6)]
    report.states = [(b"ok", object())]
    notes = []
    report.check(notes)
    assert notes == [f"q:{n}: refused" for n in range(5)]
