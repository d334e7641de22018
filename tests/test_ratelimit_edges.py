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
@pytest.mark.parametrize(("limit", "window"), [(3, 2.0), (5000, 1.0)])
def test_the_key_lives_at_most_one_window(r, algorithm, limit, window):
    """5000 per second: a GCRA interval of 200 us, under one ms, still gives the key a
    TTL of at least 1 ms (a TTL of 0 would be refused by Redis)."""
    limiter = RateLimiter(r, "ttl", limit, window, algorithm=algorithm)
    for _ in range(2):
        assert limiter.hit("who").allowed
        pttl = r.pttl(limiter.key_for("who"))
        assert 0 < pttl <= window * 1000


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
