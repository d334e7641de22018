"""Invariants as properties (Hypothesis): key ids round-trip for any bytes, mask_url
never shows any part of a password, and rate limiters never let more through than
their limit allows in any window (on the suite's real redis-server: the limiters'
clock is the server's TIME)."""

from __future__ import annotations

import string
import time
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dashboard.connection import mask_url
from dashboard.keyid import (
    MAX_URL_KEY_BYTES,
    decode_key,
    display_key,
    encode_key,
    glob_escape,
    key_address,
    parse_display,
    readable_name,
    resolve_address,
)
from dashboard.patterns.ratelimit import RateLimiter

KEYS = st.binary(max_size=64) | st.text(max_size=32).map(lambda t: t.encode("utf-8"))

# --- key ids --------------------------------------------------------------------------


@given(KEYS)
def test_encoded_keys_round_trip_and_stay_url_safe(key):
    text = encode_key(key)
    assert set(text) <= set(string.ascii_letters + string.digits + "-_")
    assert decode_key(text) == key
    assert resolve_address(key_address(key)) == key


@given(st.binary(min_size=MAX_URL_KEY_BYTES - 2, max_size=MAX_URL_KEY_BYTES + 600))
@settings(max_examples=40)
def test_long_keys_round_trip_through_their_reference(key):
    address = key_address(key)
    assert address.startswith("~") == (len(key) > MAX_URL_KEY_BYTES)
    assert len(address) <= 4 * MAX_URL_KEY_BYTES // 3 + 4
    assert resolve_address(address) == key


@given(KEYS)
def test_display_text_has_no_control_characters_and_parses_back(key):
    shown = display_key(key, limit=None)
    for ch in shown:  # no control, surrogate, line/paragraph separator, bidi override
        assert unicodedata.category(ch) not in ("Cc", "Cs", "Zl", "Zp"), repr(shown)
        assert not (0x202A <= ord(ch) <= 0x202E or 0x2066 <= ord(ch) <= 0x2069), repr(shown)
    assert parse_display(shown) == key


@given(KEYS, KEYS)
def test_distinct_keys_never_share_an_id_or_a_display(a, b):
    assume(a != b)
    assert encode_key(a) != encode_key(b)
    assert display_key(a, limit=None) != display_key(b, limit=None)


@given(KEYS)
def test_a_readable_name_is_the_key_itself(key):
    name = readable_name(key)
    if name is not None:
        assert name.encode("utf-8") == key and name.isprintable()
        assert "." not in name.split("/") and ".." not in name.split("/")


@given(st.text(alphabet="ab*?[]\\^-!", max_size=12), st.text(alphabet="ab*?[]\\", max_size=12))
def test_an_escaped_glob_matches_only_its_own_key(key, other):
    """Checked against Redis's own glob rules (stringmatchlen) as a small model: after
    escaping, every character is literal."""
    pattern = glob_escape(key.encode())
    assert _redis_glob_literal(pattern) == key.encode()
    if other != key:
        assert _redis_glob_literal(pattern) != other.encode()


def _redis_glob_literal(pattern: bytes) -> bytes:
    """The one string an escaped pattern matches: fails on an unescaped special."""
    out, i = bytearray(), 0
    while i < len(pattern):
        ch = pattern[i : i + 1]
        if ch == b"\\":
            out += pattern[i + 1 : i + 2]
            i += 2
            continue
        assert ch not in (b"*", b"?", b"["), f"unescaped {ch!r} in {pattern!r}"
        out += ch
        i += 1
    return bytes(out)


# --- mask_url -------------------------------------------------------------------------

# Passwords use upper-case letters (and URL punctuation); everything else in the
# generated URLs is lower case, so any upper-case letter in the output is a leak.
SECRET_CHARS = string.ascii_uppercase + "@:/?#%!=;&"
QUERY_SECRET_CHARS = string.ascii_uppercase + "@:/?%!="  # & ; # end a query value
PASSWORD = st.text(SECRET_CHARS, min_size=1, max_size=16).filter(
    lambda p: any(c.isupper() for c in p)
)
QUERY_PASSWORD = st.text(QUERY_SECRET_CHARS, min_size=1, max_size=16).filter(
    lambda p: any(c.isupper() for c in p)
)
WORD = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
SCHEME = st.sampled_from(
    ["redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "unix"]
)


@st.composite
def urls_with_passwords(draw) -> str:
    scheme, host = draw(SCHEME), draw(WORD)
    port = draw(st.integers(1, 65535))
    path = draw(st.sampled_from(["", "/0", "/3", "/mymaster/1"]))
    user = draw(st.sampled_from(["", "u"]) | WORD)
    userinfo = ""
    if draw(st.booleans()):
        userinfo = f"{user}:{draw(PASSWORD)}@"
    params = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["password", "sentinel_password", "db", "x", "my_password"]))
        value = draw(QUERY_PASSWORD) if "password" in name else draw(WORD)
        params.append(f"{name}={value}")
    assume(userinfo or any(p.split("=")[0].endswith("password") for p in params))
    query = ("?" + draw(st.sampled_from(["&", ";"])).join(params)) if params else ""
    fragment = draw(st.sampled_from(["", "#frag"]))
    return f"{scheme}://{userinfo}{host}:{port}{path}{query}{fragment}"


@given(urls_with_passwords())
@settings(max_examples=400)
def test_mask_url_never_shows_any_part_of_a_password(url):
    masked = mask_url(url)
    assert not any(c.isupper() for c in masked), (url, masked)
    assert "***" in masked
    assert masked.startswith(url.split("://", 1)[0] + "://")


@given(WORD, st.integers(1, 65535), st.sampled_from(["", "/0", "/2"]))
def test_mask_url_leaves_a_url_without_secrets_alone(host, port, path):
    url = f"redis://{host}:{port}{path}?db=1&x=y"
    assert mask_url(url) == url


# --- rate limiters --------------------------------------------------------------------

LIMITER = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HITS = st.lists(st.tuples(st.integers(1, 3), st.integers(0, 25)), min_size=5, max_size=25)


def _server_us(client) -> int:
    seconds, micros = client.time()
    return seconds * 1_000_000 + micros


def _run_hits(client, limiter, hits):
    """Each hit with the server's time just before and just after it: (before, after,
    cost, decision)."""
    out = []
    for cost, pause_ms in hits:
        cost = min(cost, limiter.limit)
        if pause_ms:
            time.sleep(pause_ms / 1000)
        before = _server_us(client)
        decision = limiter.hit("who", cost)
        out.append((before, _server_us(client), cost, decision))
    return out


@LIMITER
@given(limit=st.integers(1, 6), hits=HITS)
def test_sliding_log_never_allows_more_than_limit_in_any_window(r, limit, hits):
    r.flushdb()
    window_us = 120_000
    limiter = RateLimiter(r, "prop", limit, window_us / 1e6, algorithm="sliding")
    allowed = [h for h in _run_hits(r, limiter, hits) if h[3].allowed]
    for i, (before_i, _, _, _) in enumerate(allowed):
        # hits that surely fell within one window of hit i's server time
        inside = [h for h in allowed[i:] if h[1] - before_i < window_us]
        assert sum(h[2] for h in inside) <= limit


@LIMITER
@given(limit=st.integers(1, 6), hits=HITS)
def test_fixed_window_never_allows_more_than_limit_per_window(r, limit, hits):
    r.flushdb()
    window_us = 120_000
    limiter = RateLimiter(r, "prop", limit, window_us / 1e6, algorithm="fixed")
    results = _run_hits(r, limiter, hits)
    window_start = None
    spent = 0
    for before, after, cost, decision in results:
        if window_start is None or before - window_start[1] > window_us + 5_000:
            window_start, spent = (before, after), 0  # surely a new window by now
        if decision.allowed:
            spent += cost
        # a window can only have restarted if a whole window surely passed
        if spent > limit:
            assert after - window_start[0] >= window_us, results
            window_start, spent = (before, after), cost
        assert 0 <= decision.remaining <= limit


@LIMITER
@given(limit=st.integers(1, 6), hits=HITS)
def test_gcra_never_allows_more_than_burst_plus_rate(r, limit, hits):
    r.flushdb()
    window_us = 120_000
    limiter = RateLimiter(r, "prop", limit, window_us / 1e6, algorithm="gcra")
    interval_us = -(-window_us // limit)
    allowed = [h for h in _run_hits(r, limiter, hits) if h[3].allowed]
    for i, (before_i, _, _, _) in enumerate(allowed):
        for j in range(i, len(allowed)):
            elapsed = allowed[j][1] - before_i  # at most this much server time passed
            spent = sum(h[2] for h in allowed[i : j + 1])
            assert spent <= limit + elapsed // interval_us + 1, (limit, allowed)


@pytest.mark.parametrize("algorithm", ["fixed", "sliding", "gcra"])
def test_a_burst_gets_exactly_the_limit(r, algorithm):
    """The properties above are upper bounds; this is the matching lower bound."""
    limiter = RateLimiter(r, "burst", 5, 60, algorithm=algorithm)
    decisions = [limiter.hit("one").allowed for _ in range(8)]
    assert decisions == [True] * 5 + [False] * 3
