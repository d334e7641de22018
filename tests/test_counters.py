import datetime as dt
import re

import pytest

from dashboard import gate
from dashboard.patterns import keys
from dashboard.patterns.counters import (
    STANDARD_ERROR,
    UniqueCounter,
    daily_periods,
    hll_state,
)

WEEK = daily_periods(dt.date(2024, 6, 7), 7)


@pytest.fixture(params=["r", "fake"])
def client(request):
    """Counting logic runs on the real server and on fakeredis (which counts exactly)."""
    return request.getfixturevalue(request.param)


def fill_week(counter):
    """Day i has users i*100 .. i*100+299: overlapping days, 900 distinct in the week."""
    for i, day in enumerate(WEEK):
        counter.add(*(f"user{u}" for u in range(i * 100, i * 100 + 300)), period=day)


def within(estimate, exact, sigmas=3):
    return abs(estimate - exact) <= max(1, exact * STANDARD_ERROR * sigmas)


def test_add_reports_change_and_counts(client):
    counter = UniqueCounter(client, "visitors")
    assert counter.add("a", "b") is True
    assert counter.add("a") is False
    assert counter.count() == 2
    assert client.exists("hll:{visitors}") == 1


def test_empty_counter_is_zero(client):
    counter = UniqueCounter(client, "nobody")
    assert counter.count() == 0
    assert counter.count("2024-01-01") == 0
    assert counter.count_union(WEEK) == 0
    with pytest.raises(ValueError, match="at least one item"):
        counter.add()
    with pytest.raises(ValueError, match="no periods"):
        counter.count_union([])


def test_ten_thousand_items_within_standard_error(r):
    counter = UniqueCounter(r, "big")
    for start in range(0, 10_000, 1_000):
        counter.add(*(f"item-{i}" for i in range(start, start + 1_000)))
    counter.add(*(f"item-{i}" for i in range(5_000)))  # repeats do not count twice
    assert within(counter.count(), 10_000)


def test_union_and_merge_across_periods(client):
    counter = UniqueCounter(client, "visitors")
    fill_week(counter)
    assert within(counter.count(WEEK[0]), 300)
    before = sorted(client.scan_iter("hll:*"))
    union = counter.count_union(WEEK)
    assert within(union, 900)
    assert sorted(client.scan_iter("hll:*")) == before  # the union wrote nothing
    assert counter.merge("week-23", WEEK) == counter.count("week-23")
    assert within(counter.count("week-23"), 900)
    assert within(counter.count_union(WEEK[:2]), 400)


def test_merge_replaces_destination_unless_asked(r):
    # real server only: fakeredis's PFMERGE ignores what the destination already holds
    counter = UniqueCounter(r, "visitors")
    fill_week(counter)
    counter.add(*(f"stale{i}" for i in range(500)), period="week")
    assert within(counter.merge("week", WEEK), 900)  # stale content dropped
    counter.add(*(f"extra{i}" for i in range(100)), period="week")
    assert within(counter.merge("week", WEEK, replace=False), 1_000)


def test_all_keys_of_a_counter_share_one_slot():
    counter = UniqueCounter(None, "visitors")
    names = [counter.key(), counter.key("week"), *(counter.key(day) for day in WEEK)]
    assert names[1] == "hll:{visitors}:week"
    assert len({keys.slot(n) for n in names}) == 1
    assert keys.same_slot(*names)
    other = UniqueCounter(None, "buyers")
    assert not keys.same_slot(counter.key("d"), other.key("d"))
    with pytest.raises(ValueError, match="braces"):
        UniqueCounter(None, "a{b}")


def test_period_keys_get_ttl_once(r):
    counter = UniqueCounter(r, "visitors", ttl=60)
    counter.add("a", period="d1")
    name = counter.key("d1")
    assert 0 < r.pttl(name) <= 60_000
    r.pexpire(name, 5_000)
    counter.add("b", period="d1")
    assert r.pttl(name) <= 5_000  # later adds do not extend it
    counter.merge("w", ["d1"])
    assert 0 < r.pttl(counter.key("w")) <= 60_000


def test_daily_periods():
    assert WEEK[0] == "2024-06-01" and WEEK[-1] == "2024-06-07" and len(WEEK) == 7
    with pytest.raises(ValueError):
        daily_periods(dt.date(2024, 1, 1), 0)


# --- read side -------------------------------------------------------------------------


def test_hll_state_sparse_then_dense(r):
    counter = UniqueCounter(r, "visitors")
    counter.add("a", "b", "c")
    small = hll_state(r, counter.key().encode())
    assert small.key == "hll:{visitors}"
    assert small.count == 3
    assert small.encoding == "sparse"
    assert small.bytes == r.strlen(counter.key()) < 12_304
    assert small.standard_error == 0.0081
    assert small.ttl_ms == -1
    for start in range(0, 10_000, 1_000):
        counter.add(*(f"item-{i}" for i in range(start, start + 1_000)))
    big = hll_state(r, counter.key())
    assert big.encoding == "dense"
    assert big.bytes == 16 + 16384 * 6 // 8
    assert within(big.count, 10_003)


def test_hll_state_missing_and_foreign_keys(r):
    assert hll_state(r, "hll:{nope}") is None
    r.set("hll:{str}", "just a string")
    with pytest.raises(ValueError, match="not a HyperLogLog"):
        hll_state(r, "hll:{str}")
    r.rpush("hll:{list}", "x")
    with pytest.raises(ValueError, match=re.escape("hll:{list}")):
        hll_state(r, "hll:{list}")


def test_hll_state_on_fakeredis(fake):
    counter = UniqueCounter(fake, "visitors")
    counter.add("a", "b")
    state = hll_state(fake, counter.key())
    assert state.count == 2
    assert state.bytes is None and state.encoding is None


def test_read_side_passes_the_read_only_gate(r, make_client):
    counter = UniqueCounter(r, "visitors")
    fill_week(counter)
    ro = gate.install(make_client(), allow_writes=False)
    assert hll_state(ro, counter.key(WEEK[0])).encoding == "sparse"
    assert within(UniqueCounter(ro, "visitors").count_union(WEEK), 900)
    with pytest.raises(gate.CommandRefused):
        UniqueCounter(ro, "visitors").merge("w", WEEK)
