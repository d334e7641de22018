"""Leaderboards on ``redis.asyncio``: the async shell over the same core."""

from __future__ import annotations

import asyncio

from dashboard.patterns.leaderboard import LeaderboardCore
from dashboard.patterns.runtime import awaiting


class AsyncLeaderboard(LeaderboardCore):
    """:class:`dashboard.patterns.leaderboard.Leaderboard` for asyncio (same keys and
    ranks; ``around`` is the same atomic read-only script)."""

    default_sleep = staticmethod(asyncio.sleep)

    add = awaiting(LeaderboardCore._add)
    increment = awaiting(LeaderboardCore._increment)
    remove = awaiting(LeaderboardCore._remove)
    size = awaiting(LeaderboardCore._size)
    score = awaiting(LeaderboardCore._score)
    rank = awaiting(LeaderboardCore._rank)
    top = awaiting(LeaderboardCore._top)
    page = awaiting(LeaderboardCore._page)
    around = awaiting(LeaderboardCore._around)
