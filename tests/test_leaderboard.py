import datetime as dt
import random
import threading

import pytest

from dashboard import gate
from dashboard.patterns.leaderboard import MAX_READ, Leaderboard, leaderboard_state


@pytest.fixture(params=["r", "fake"])
def client(request):
    """Pure ordering logic runs on the real server and on fakeredis."""
    return request.getfixturevalue(request.param)


def ranks(entries):
    return [(e.rank, e.member, e.score) for e in entries]


def test_top_orders_highest_first(client):
    board = Leaderboard(client, "game")
    for member, score in [("ann", 10), ("bob", 30), ("cy", 20)]:
        assert board.add(member, score) is True
    assert board.add("ann", 11) is False  # existing member: score set, not new
    assert ranks(board.top(3)) == [(1, "bob", 30.0), (2, "cy", 20.0), (3, "ann", 11.0)]
    assert ranks(board.top(2)) == [(1, "bob", 30.0), (2, "cy", 20.0)]
    assert client.type("leaderboard:game") == b"zset"


def test_rank_and_score(client):
    board = Leaderboard(client, "game")
    board.add("ann", 10)
    board.add("bob", 30)
    assert board.rank("bob") == 1
    assert board.rank("ann") == 2
    assert board.rank("nobody") is None
    assert board.score("ann") == 10.0
    assert board.score("nobody") is None


def test_ties_rank_agrees_with_listing_and_shared_rank(client):
    board = Leaderboard(client, "game")
    for member in ["a", "b", "c"]:
        board.add(member, 10)
    board.add("d", 5)
    board.add("z", 20)
    listed = board.top(10)
    assert [e.member for e in listed] == ["z", "c", "b", "a", "d"]
    for entry in listed:
        assert board.rank(entry.member) == entry.rank
    assert [board.rank(m, shared=True) for m in ["z", "a", "b", "c", "d"]] == [1, 2, 2, 2, 5]
    assert board.rank("nobody", shared=True) is None


def test_increment_and_keep_best(client):
    board = Leaderboard(client, "game")
    assert board.increment("ann", 5) == 5.0
    assert board.increment("ann", 2.5) == 7.5
    assert board.increment("ann", -1) == 6.5
    board.add("bob", 10)
    board.add("bob", 5, keep_best=True)
    assert board.score("bob") == 10.0
    board.add("bob", 15, keep_best=True)
    assert board.score("bob") == 15.0


def test_page_bounds(client):
    board = Leaderboard(client, "game")
    for i in range(25):
        board.add(f"m{i:02}", i)
    first = board.page(1, 10)
    assert [e.rank for e in first] == list(range(1, 11))
    assert first[0].member == "m24"
    last = board.page(3, 10)
    assert [e.rank for e in last] == [21, 22, 23, 24, 25]
    assert last[-1].member == "m00"
    assert board.page(4, 10) == []
    with pytest.raises(ValueError, match="start at 1"):
        board.page(0, 10)
    with pytest.raises(ValueError, match="size"):
        board.page(1, MAX_READ + 1)
    with pytest.raises(ValueError, match="size"):
        board.page(1, 0)
    with pytest.raises(ValueError, match="n must"):
        board.top(MAX_READ + 1)


def test_around_clamps_at_both_ends(client):
    board = Leaderboard(client, "game")
    for i in range(10):  # m9 is rank 1, m0 is rank 10
        board.add(f"m{i}", i)
    assert ranks(board.around("m5", 2)) == [
        (3, "m7", 7.0),
        (4, "m6", 6.0),
        (5, "m5", 5.0),
        (6, "m4", 4.0),
        (7, "m3", 3.0),
    ]
    # rank 1: a naive start of -2 would make Redis read from the end of the set
    assert [e.rank for e in board.around("m9", 2)] == [1, 2, 3]
    assert [e.rank for e in board.around("m0", 2)] == [8, 9, 10]
    assert board.around("nobody", 2) == []


def test_empty_board(client):
    board = Leaderboard(client, "empty")
    assert board.size() == 0
    assert board.top(10) == []
    assert board.page(1, 10) == []
    assert board.rank("x") is None
    assert board.around("x", 3) == []
    assert board.remove() == 0
    assert board.remove("x") == 0
    assert leaderboard_state(client, "leaderboard:empty") is None


def test_remove_and_size(client):
    board = Leaderboard(client, "game")
    for member in "abc":
        board.add(member, 1)
    assert board.remove("a", "b", "zz") == 2
    assert board.size() == 1


def test_periodic_board_gets_ttl_once(r):
    board = Leaderboard(r, "game", period="2024-06-01", ttl=60)
    assert board.key == "leaderboard:game:2024-06-01"
    board.increment("ann")  # ZINCRBY alone would leave a board that never expires
    assert 0 < r.pttl(board.key) <= 60_000
    r.pexpire(board.key, 5_000)
    board.add("bob", 3)
    assert r.pttl(board.key) <= 5_000  # later writes do not push the expiry back


def test_daily_board_key(r):
    noon = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC).timestamp()
    board = Leaderboard.daily(r, "game", keep_days=2, clock=lambda: noon)
    assert board.key == "leaderboard:game:2024-06-01"
    board.add("ann", 1)
    assert 2 * 86_400_000 < r.pttl(board.key) <= 3 * 86_400_000


def test_binary_members(r):
    board = Leaderboard(r, "bin")
    board.add(b"\xff\xfe", 2)
    board.add("text", 1)
    assert [e.member for e in board.top(2)] == [b"\xff\xfe", "text"]
    assert [e.member for e in board.around(b"\xff\xfe", 1)] == [b"\xff\xfe", "text"]


# --- read side -------------------------------------------------------------------------


def test_leaderboard_state(r):
    board = Leaderboard(r, "game", period="d1", ttl=60)
    for i in range(30):
        board.add(f"m{i}", i)
    state = leaderboard_state(r, b"leaderboard:game:d1", top=3)
    assert state.key == "leaderboard:game:d1"
    assert state.size == 30
    assert 0 < state.ttl_ms <= 60_000
    assert ranks(state.top) == [(1, "m29", 29.0), (2, "m28", 28.0), (3, "m27", 27.0)]
    assert state.lowest_score == 0.0
    assert state.encoding == "listpack"
    r.set("leaderboard:str", "x")
    with pytest.raises(ValueError, match="leaderboard:str"):
        leaderboard_state(r, "leaderboard:str")


def test_leaderboard_state_on_fakeredis_has_no_encoding(fake):
    Leaderboard(fake, "game").add("a", 1)
    state = leaderboard_state(fake, "leaderboard:game")
    assert state.size == 1 and state.encoding is None


def test_read_side_passes_the_read_only_gate(r, make_client):
    Leaderboard(r, "game").add("a", 1)
    ro = gate.install(make_client(), allow_writes=False)
    assert leaderboard_state(ro, "leaderboard:game").top[0].member == "a"
    assert Leaderboard(ro, "game").around("a", 1)[0].member == "a"  # reads are reads
    with pytest.raises(gate.CommandRefused):
        Leaderboard(ro, "game").add("b", 1)


def test_around_always_holds_the_member_at_its_rank_under_churn(r, make_client):
    """Issue 10: rank and window are read at one instant, however busy the board is."""
    board = Leaderboard(r, "churn")
    members = [f"p{i:03d}" for i in range(60)]
    board.client.zadd(board.key, {m: i for i, m in enumerate(members)})
    stop = threading.Event()

    def churn(seed):
        client, rng = make_client(), random.Random(seed)
        while not stop.is_set():
            pipe = client.pipeline(transaction=False)
            for _ in range(20):
                pipe.zincrby(board.key, rng.randint(-30, 30), rng.choice(members))
            pipe.execute()

    writers = [threading.Thread(target=churn, args=(seed,)) for seed in range(3)]
    for w in writers:
        w.start()
    try:
        broken = []
        for i in range(1500):
            member = members[i % len(members)]
            window = board.around(member, n=2)
            mine = [e for e in window if e.member == member]
            ranks = [e.rank for e in window]
            if (
                len(mine) != 1
                or ranks != list(range(ranks[0], ranks[0] + len(ranks)))
                or not (mine[0].rank - 2 <= ranks[0] and ranks[-1] <= mine[0].rank + 2)
            ):
                broken.append(window)
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert broken == []
