"""The scanner's bookkeeping at its edges (dashboard/inspect/keyspace/scan.py): how the
next page is sized from the server time the last one took (docs/scan.md, "Adaptive
page size"), at each threshold, and the facts of a page. No Redis (the measured time and
the replies are handed in) except where a test says so."""

from __future__ import annotations

import pytest

from dashboard.inspect.keyspace.scan import NodeScanner, ScanOptions


@pytest.mark.parametrize(
    ("measured_us", "keys", "count"),
    [
        # target 2 ms, aim 60 % of it (1,200 µs); pages of 500 keys unless said
        (2001, 500, 250),  # just over the target: shrink at once, at least halve
        (2100, 500, 250),  # over: 285 would be enough, but halving is the least
        (1100, 500, 500),  # between half the target and the target: keep the size
        (1000, 500, 500),  # exactly half: keep
        (999, 500, 600),  # just under half: grow toward the aim (600 keys)
        (900, 500, 666),  # under half: grow to what fits the aim
        (100, 500, 1000),  # far under: at most double
    ],
)
def test_the_next_page_size_at_each_threshold(measured_us, keys, count):
    scanner = NodeScanner(None, ScanOptions(target_ms=2.0, start_count=500, max_count=5000))
    scanner._adapt(measured_us, keys)
    assert scanner.count == count


@pytest.mark.parametrize("measured_us", [0, 1])
def test_a_sparse_page_measured_at_under_a_microsecond_counts_as_one(measured_us):
    """SCAN COUNT 1000 found one key in 0 or 1 µs: a key costs (at most) 1 µs, so the
    next page aims at 1,200 keys."""
    scanner = NodeScanner(None, ScanOptions(target_ms=2.0, start_count=1000, max_count=5000))
    scanner._adapt(measured_us, 1)
    assert scanner.count == 1200


def test_a_page_with_a_module_type_and_a_refused_key():
    """A module's type is kept by name (not taken for a refused key); a key the ACL
    refused (no reply) is counted as refused, never as vanished or analysed."""
    from dashboard.inspect.keyspace.scan import _facts_of

    keys = [b"a", b"doc", b"secret", b"gone"]
    flat = [
        *(b"string", -1, 10, 1),
        *(b"ReJSON-RL", 5000, 20, None),
        *(None, None, None, None),  # refused
        *(b"none", -2, None, None),  # deleted between SCAN and the facts
    ]
    facts, vanished, refused, moved = _facts_of(keys, flat)
    assert facts == [(b"a", "string", -1, 10, 1), (b"doc", "ReJSON-RL", 5000, 20, None)]
    assert (vanished, refused, moved) == (1, 1, 0)


def test_a_key_type_saw_gone_is_vanished_even_if_it_is_back_for_pttl():
    """Without the script, TYPE and PTTL of a key are two commands of a pipeline: a key
    deleted before TYPE and written again before PTTL reads as type ``none`` with a TTL
    of -1. It was not there when its type was asked: vanished, not analysed."""
    from dashboard.inspect.keyspace.scan import _facts_of

    flat = [*(b"string", 500, 10, 1), *(b"none", -1, None, None)]
    facts, vanished, refused, moved = _facts_of([b"a", b"back"], flat)
    assert facts == [(b"a", "string", 500, 10, 1)]
    assert (vanished, refused, moved) == (1, 0, 0)


def test_a_key_gone_before_pttl_is_vanished_and_one_of_unknown_ttl_is_kept():
    """The other half of the pipeline's gap: a key TYPE found, deleted before PTTL
    (-2), is vanished; a key whose PTTL was refused (an ACL allowing TYPE only) keeps
    its facts with the TTL unknown, and is not taken for a vanished one."""
    from dashboard.inspect.keyspace.scan import _facts_of

    flat = [*(b"string", -2, None, None), *(b"hash", None, 30, 2)]
    facts, vanished, refused, moved = _facts_of([b"gone", b"h"], flat)
    assert facts == [(b"h", "hash", None, 30, 2)]
    assert (vanished, refused, moved) == (1, 0, 0)


def test_scan_keys_come_back_as_the_bytes_the_server_holds():
    """A client with decode_responses=True (and surrogateescape for names that are not
    UTF-8) hands out str: each becomes its original bytes again; bytes stay as they are,
    also in a page that mixes both."""
    from dashboard.inspect.keyspace.scan import _key_list

    raw = [b"raw\xff", "text", b"caf\xe9".decode("utf-8", "surrogateescape")]
    assert _key_list(raw) == [b"raw\xff", b"text", b"caf\xe9"]
    assert _key_list(["caf\xe9"]) == ["caf\xe9".encode()]


def test_a_page_whose_first_key_name_alone_is_over_the_budget_holds_that_key_only():
    """Key names of a page are held to MAX_PAGE_KEY_BYTES; one name over it still makes
    a page, of that key alone; names that add up to exactly the budget all fit."""
    from dashboard.inspect.keyspace.scan import MAX_PAGE_KEY_BYTES, _within_budget

    big = b"k" * (MAX_PAGE_KEY_BYTES + 1)
    assert _within_budget([big, b"a", b"b"]) == [big]
    exact = [b"x" * (MAX_PAGE_KEY_BYTES - 1), b"y"]
    assert _within_budget(exact) == exact
    assert _within_budget([*exact, b"z"]) == exact


def test_a_finished_scanner_refuses_another_page_and_names_its_node():
    named, unnamed = NodeScanner(None, ScanOptions(), name="10.0.0.7:6379"), NodeScanner(None)
    named.done = unnamed.done = True
    with pytest.raises(RuntimeError, match=r"^scan of 10\.0\.0\.7:6379 is already complete$"):
        named.next_batch()
    with pytest.raises(RuntimeError, match=r"^scan of node is already complete$"):
        unnamed.next_batch()


def test_a_scanner_given_a_cursor_goes_on_from_it(r):
    """(On the suite's Redis.) A walk resumed from a SCAN cursor reads what lies after
    it, not the keyspace again: with the page before it, every key exactly once."""
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"c:{i}", i)
    pipe.execute()
    cursor, before = r.scan(0, count=50)
    assert cursor and before
    scanner = NodeScanner(r, ScanOptions(start_count=50, min_count=50, max_count=50), cursor=cursor)
    after: list[bytes] = []
    while not scanner.done:
        after += [fact[0] for fact in scanner.next_batch().facts]
    assert not set(after) & set(before)
    assert set(after) | set(before) == {f"c:{i}".encode() for i in range(500)}


def test_each_page_says_its_server_time_and_the_cursor_it_left(r):
    """(On the suite's Redis.) A page read by the script reports the server's own time
    for it, and the cursor the walk stands at after it: 0 once the walk is over."""
    pipe = r.pipeline(transaction=False)
    for i in range(300):
        pipe.set(f"t:{i}", i)
    pipe.execute()
    scanner = NodeScanner(r, ScanOptions(path="lua", start_count=50, min_count=50, max_count=50))
    while not scanner.done:
        batch = scanner.next_batch()
        assert batch.cursor == scanner.cursor
        if batch.facts:
            assert isinstance(batch.server_us, int) and batch.server_us > 0
    assert batch.cursor == 0
