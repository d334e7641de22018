"""Comparing two stored scans: the properties, on scans made up by the test."""

import time

from dashboard.history import queries, record
from dashboard.history.compare import compare_stored, past_threshold
from dashboard.history.store import Store
from tests.history_support import picture, store_scan

NOW = time.time()


def _store(*pictures):
    store = Store("")
    for p in pictures:
        store_scan(store, p)
    return store


def test_a_scan_compared_with_itself_changes_nothing():
    spaces = {"a": (10, 1000, 5), "a:b": (4, 400, 0), "c": (1, 10, 1)}
    store = _store(picture("1-1", NOW - 10, spaces), picture("2-1", NOW, spaces))
    diff, why = compare_stored(store)
    assert why is None
    assert {r["status"] for r in diff["namespaces"]} == {"unchanged"}
    assert diff["totals"]["keys_delta"] == diff["totals"]["bytes_delta"] == 0
    assert diff["findings"]["appeared"] == diff["findings"]["resolved"] == []


def test_deltas_are_newer_minus_older_whatever_the_order_asked():
    old = picture("1-1", NOW - 60, {"a": (10, 1000, 0), "gone": (3, 30, 0)})
    new = picture("2-1", NOW, {"a": (25, 1500, 25), "new": (7, 70, 0)})
    store = _store(old, new)
    forward, _ = compare_stored(store, "1-1", "2-1")
    backward, _ = compare_stored(store, "2-1", "1-1")
    assert forward == backward
    rows = {r["namespace"]: r for r in forward["namespaces"]}
    assert rows["a"]["keys_delta"] == 15 and rows["a"]["bytes_delta"] == 500
    assert rows["a"]["bytes_percent"] == 50.0
    assert rows["a"]["ttl_coverage_a"] == 0.0 and rows["a"]["ttl_coverage_b"] == 1.0
    assert rows["gone"]["status"] == "vanished" and rows["gone"]["keys_delta"] == -3
    assert rows["new"]["status"] == "appeared" and rows["new"]["bytes_delta"] == 70
    assert forward["totals"]["keys_delta"] == sum(
        r["keys_delta"] for r in forward["namespaces"] if r["depth"] == 1
    )


def test_default_is_the_last_two_scans():
    store = _store(*(picture(f"{i}-1", NOW - 100 + i, {"a": (i + 1, 1, 0)}) for i in range(5)))
    diff, _ = compare_stored(store)
    assert (diff["a"]["id"], diff["b"]["id"]) == ("3-1", "4-1")
    only_b, _ = compare_stored(store, b_id="2-1")
    assert (only_b["a"]["id"], only_b["b"]["id"]) == ("1-1", "2-1")


def test_findings_appear_resolve_and_change_severity():
    a = picture(
        "1-1", NOW - 5, {"x": (1, 1, 0)}, findings=[("r1", "warning", "x"), ("r2", "info", "y")]
    )
    b = picture(
        "2-1", NOW, {"x": (1, 1, 0)}, findings=[("r1", "critical", "x"), ("r3", "info", "z")]
    )
    diff, _ = compare_stored(_store(a, b))
    findings = diff["findings"]
    assert [(f["rule"], f["subject"]) for f in findings["appeared"]] == [("r3", "z")]
    assert [(f["rule"], f["subject"]) for f in findings["resolved"]] == [("r2", "y")]
    assert [(f["rule"], f["severity_a"], f["severity"]) for f in findings["changed"]] == [
        ("r1", "warning", "critical")
    ]


def test_a_namespace_below_the_recording_cap_is_not_called_vanished(monkeypatch):
    monkeypatch.setattr(record, "MAX_NAMESPACES", 2)
    a = picture("1-1", NOW - 5, {"big": (10, 1000, 0), "mid": (5, 500, 0), "tiny": (1, 10, 0)})
    b = picture("2-1", NOW, {"big": (10, 1000, 0), "mid": (5, 500, 0), "tiny": (1, 10, 0)})
    store = _store(a, b)
    assert queries.scan(store, "1-1")["recorded_namespaces"] == 2
    monkeypatch.setattr(record, "MAX_NAMESPACES", 3)
    store_scan(
        store,
        picture("3-1", NOW + 5, {"big": (10, 1000, 0), "tiny": (1, 10, 0), "mid": (5, 500, 0)}),
    )
    diff, _ = compare_stored(store, "1-1", "3-1")
    rows = {r["namespace"]: r["status"] for r in diff["namespaces"]}
    assert rows["tiny"] == "not recorded"


def test_thresholds_pick_the_namespaces_that_grew_too_much():
    a = picture("1-1", NOW - 5, {"a": (10, 4 * 1024**2, 0), "b": (10, 100, 0)})
    b = picture("2-1", NOW, {"a": (12, 8 * 1024**2, 0), "b": (500, 200, 0), "c": (50, 5, 0)})
    diff, _ = compare_stored(_store(a, b))
    assert [e["namespace"] for e in past_threshold(diff, max_keys=40)] == ["b", "c"]
    assert [e["namespace"] for e in past_threshold(diff, max_bytes=1024**2)] == ["a"]
    # b doubled too, but it is under 1 MB: percent growth of tiny namespaces is noise
    assert [e["namespace"] for e in past_threshold(diff, max_percent=50)] == ["a"]
    assert past_threshold(diff) == []


def test_unknown_scan_and_too_few_scans():
    store = _store(picture("1-1", NOW, {"a": (1, 1, 0)}))
    assert compare_stored(store)[0] is None
    assert "fewer than two" in compare_stored(store)[1]
    assert "no stored scan" in compare_stored(store, "nope", "1-1")[1]
