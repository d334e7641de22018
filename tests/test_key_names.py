"""Key names as people type them: readable URLs, redis-cli arguments, literal globs."""

import random
import shutil
import subprocess

import pytest

from dashboard.embedded import in_ci
from dashboard.keyid import (
    display_key,
    glob_escape,
    key_address,
    parse_display,
    readable_name,
    redis_cli_arg,
)

HOSTILE = [
    b"user:42:profile",
    b"a b",
    b"caf\xc3\xa9:1",
    b"\xff\xfe",
    b"<img src=x onerror=alert(1)>",
    b'q"uote\\back',
    b"tab\tnew\nline\r",
    b"a/./b",
    b"../etc",
    b"/lead",
    b"trail/",
    b"x//y",
    b"100%",
    b"q?a=1#frag",
    b"\x00nul",
    b"\xe2\x80\xaeRTL",
    b"",
    b"k" * 1025,
]


def _random_keys(n, seed=7):
    rng = random.Random(seed)
    alphabet = bytes(range(256))
    return [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(n)]


@pytest.mark.parametrize("key", HOSTILE + _random_keys(300))
def test_display_text_reads_back_as_the_same_bytes(key):
    assert parse_display(display_key(key, limit=None)) == key


@pytest.mark.parametrize("key", HOSTILE + _random_keys(300))
def test_a_readable_name_is_the_key_itself_and_safe_in_a_path(key):
    name = readable_name(key)
    if name is None:
        return
    assert name.encode("utf-8") == key  # the URL names exactly this key
    assert name.isprintable() and not name.startswith("/")
    assert "." not in name.split("/") and ".." not in name.split("/")


def test_which_names_are_readable():
    assert readable_name(b"user:42:profile") == "user:42:profile"
    assert readable_name(b"caf\xc3\xa9:1") == "café:1"
    assert readable_name(b"x//y") == "x//y"
    for key in (
        b"\xff\xfe",
        b"tab\tx",
        b"a/./b",
        b"../etc",
        b"/lead",
        b"",
        b"k" * 1025,
        b"\xe2\x80\xaeRTL",
    ):
        assert readable_name(key) is None, key


def _cli_reads_back(server, keys):
    """Feed SET commands with redis-cli's own parser, then read the keys back raw."""
    lines = "".join(f"SET {redis_cli_arg(k)} v{i}\n" for i, k in enumerate(keys))
    done = subprocess.run(
        ["redis-cli", "-p", str(server.port)], input=lines.encode(), capture_output=True, check=True
    )
    assert b"ERR" not in done.stdout, done.stdout


def test_redis_cli_argument_round_trips_through_redis_cli(redis_server, r):
    if shutil.which("redis-cli") is None:
        if in_ci():  # it comes with redis-server, which CI must have
            pytest.fail("CI needs redis-cli (it comes with redis-server)", pytrace=False)
        pytest.skip("redis-cli is not installed")
    keys = [k for k in HOSTILE + _random_keys(200, seed=11) if k]
    keys = list(dict.fromkeys(keys))
    _cli_reads_back(redis_server, keys)
    for i, key in enumerate(keys):
        assert r.get(key) == f"v{i}".encode(), (key, redis_cli_arg(key))


def test_plain_names_stay_bare_and_others_are_quoted():
    assert redis_cli_arg(b"user:42:profile") == "user:42:profile"
    assert redis_cli_arg(b"odd:\xff") == '"odd:\\xff"'
    assert redis_cli_arg(b'a"b') == '"a\\"b"'
    assert redis_cli_arg(b"") == '""'


def test_glob_escape_matches_only_the_literal_name(r):
    special = b"we*ird?[x]\\name"
    r.set(special, 1)
    r.set(b"weXirdY[x]\\name", 1)
    r.set(b"we*ird?x\\name", 1)
    _, found = r.scan(0, match=glob_escape(special), count=1000)
    assert found == [special]
    _, under = r.scan(0, match=glob_escape(b"we*ird?") + b"*", count=1000)
    assert sorted(under) == sorted([special, b"we*ird?x\\name"])


def test_key_address_still_resolves_for_binary_names():
    from dashboard.keyid import resolve_address

    for key in HOSTILE:
        assert resolve_address(key_address(key)) == key
