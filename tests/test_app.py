"""The running service: scheduled polls deliver, shutdown is prompt, follow-ups survive a restart."""

from __future__ import annotations

import asyncio
import io
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from bot.app import build_app, reschedule_reactions, serve
from bot.pipeline import poll_once
from bot.settings import Settings
from feeds.records import FeedSpec
from tests.servers.feedserver import FeedServer, Route, rss
from tests.test_pipeline import FLAGGED


class Stream(io.StringIO):
    """A console stream that signals when an alert is written."""

    def __init__(self) -> None:
        super().__init__()
        self.alerted = asyncio.Event()

    def write(self, text: str) -> int:
        if "[ALERT]" in text:
            self.alerted.set()
        return super().write(text)


async def test_serve_polls_on_schedule_delivers_and_stops_promptly(feed_server: FeedServer, settings: Settings) -> None:
    """The scheduler polls the feed, the outbox prints the alert, and stop ends the service within 2 s."""
    now = datetime.now(UTC)
    story = {**FLAGGED, "pubDate": format_datetime(now - timedelta(minutes=1))}
    spec = FeedSpec("a", feed_server.route("/a.xml", Route(rss(story))), interval_s=60)
    out = Stream()
    async with AsyncExitStack() as stack:
        app = await build_app(settings, [spec], stack, out=out)
        stop = asyncio.Event()
        service = asyncio.create_task(serve(app, stop))
        async with asyncio.timeout(15):
            await out.alerted.wait()
        stop.set()
        async with asyncio.timeout(2):
            await service
    assert out.getvalue().count("[ALERT]") == 1


async def test_follow_ups_are_planned_again_after_a_restart(feed_server: FeedServer, settings: Settings) -> None:
    """Alerts whose reaction follow-ups had not gone out get them planned again by the next process."""
    now = datetime.now(UTC)
    story = {**FLAGGED, "pubDate": format_datetime(now - timedelta(minutes=1))}
    spec = FeedSpec("a", feed_server.route("/a.xml", Route(rss(story))), interval_s=60)
    async with AsyncExitStack() as stack:
        app = await build_app(settings, [spec], stack, out=io.StringIO(), clock=lambda: now)
        report = await poll_once(app.deps, spec)
    async with AsyncExitStack() as stack:
        again = await build_app(settings, [spec], stack, out=io.StringIO(), clock=lambda: now + timedelta(minutes=3))
        assert await reschedule_reactions(again) == 1
        ids = {job.id for job in again.scheduler.get_jobs()}
        assert ids == {f"{report.alerts[0]}:r15", f"{report.alerts[0]}:r60"}
