"""Rate limiter edges the ordinary tests pass by: a burst of the whole limit at once,
and how long the key lives."""

import pytest

from dashboard.patterns.ratelimit import RateLimiter

ALGORITHMS = ["fixed", "sliding", "gcra"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("limit", [1, 4])
def test_the_whole_limit_at_once_passes_then_nothing(r, algorithm, limit):
    limiter = RateLimiter(r, "whole", limit, 60, algorithm=algorithm)
    first = limiter.hit("burst", cost=limit)
    assert first.allowed and first.remaining == 0
    assert not limiter.hit("burst").allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_key_lives_at_most_one_window(r, algorithm):
    limiter = RateLimiter(r, "ttl", 3, 2.0, algorithm=algorithm)
    for _ in range(2):
        assert limiter.hit("who").allowed
        assert 0 < r.pttl(limiter.key_for("who")) <= 2000


def test_a_gcra_interval_under_one_ms_still_gives_the_key_a_ttl(r):
    """5000 per second: 200 us per unit. One unit's TTL rounds up to 1 ms (0 would be
    refused by Redis); the whole burst's is the whole window."""
    limiter = RateLimiter(r, "fast", 5000, 1.0, algorithm="gcra")
    assert limiter.hit("who").allowed  # no error: the TTL was not rounded down to 0
    assert r.pttl(limiter.key_for("who")) in (-2, 0, 1)  # 1 ms, or already gone
    assert limiter.hit("burst", cost=5000).allowed
    assert 0 < r.pttl(limiter.key_for("burst")) <= 1000


@pytest.mark.parametrize("algorithm", ["fixed", "sliding"])
def test_a_key_that_lost_its_ttl_gets_one_back(r, algorithm):
    """PERSIST, or a restore without TTL: a limiter key must not block (or live) forever."""
    limiter = RateLimiter(r, "persist", 2, 5, algorithm=algorithm)
    for _ in range(2):
        assert limiter.hit("who").allowed
    key = limiter.key_for("who")
    r.persist(key)
    assert r.pttl(key) == -1
    assert not limiter.hit("who").allowed  # still blocked: the entries are young
    assert 0 < r.pttl(key) <= 5000
