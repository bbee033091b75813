"""Parsing off the event loop: threads for a few bodies, worker processes when parses pile up."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from bot.errors import FeedUnreadable
from feeds.parsepool import ParsePool
from feeds.records import FeedSpec
from tests.servers.feedserver import rss

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FEED = FeedSpec("pool-test", "http://127.0.0.1/feed.xml")
BODY = rss(*({"title": f"Story {n}", "guid": f"g{n}", "description": "Text " * 20} for n in range(5)))
NO_DATES = rss({"title": "Undated story", "guid": "u1"})


async def test_parses_that_pile_up_go_to_worker_processes(caplog: pytest.LogCaptureFixture) -> None:
    """With more parses in flight than `spill_at`, the rest are parsed in processes, with the same items."""
    pool = ParsePool(workers=1, spill_at=1)
    try:
        with caplog.at_level(logging.INFO, logger="newsbot"):
            results = await asyncio.gather(*(pool.parse(b, FEED, NOW, None) for b in (BODY, BODY, NO_DATES)))
    finally:
        pool.close()
    assert [len(r) for r in results] == [5, 5, 1]
    assert results[0] == results[1]
    assert any("without a date" in r.getMessage() for r in caplog.records)  # the worker's log line, replayed


async def test_unreadable_body_raises_the_same_error_from_a_worker() -> None:
    """A body that is not a feed raises FeedUnreadable whether parsed in a thread or a process."""
    pool = ParsePool(workers=1, spill_at=0)
    try:
        with pytest.raises(FeedUnreadable):
            await pool.parse(b"<html><body>not a feed</body></html>", FEED, NOW, "text/html")
    finally:
        pool.close()
