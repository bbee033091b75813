"""The spine end to end against a real loopback feed server: poll, classify, alert once, back off."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.app import App, build_app, poll_all
from bot.pipeline import poll_once
from bot.settings import Settings
from feeds.records import FeedSpec
from tests.servers.feedserver import FeedServer, Route, rss

NOW = datetime.now(UTC).replace(microsecond=0)
FLAGGED = {
    "title": "US adds Chinese chipmaker SMIC to Entity List, tightening export controls on chips",
    "guid": "story-smic-entity-list",
    "link": "https://news.example/smic-entity-list?utm_source=rss",
    "description": "The Commerce Department's Bureau of Industry and Security added SMIC to the Entity List, "
                   "requiring export licences for US chipmaking tools.",
    "pubDate": format_datetime(NOW - timedelta(minutes=5)),
}
PLAIN = {
    "title": "Nvidia shares rise ahead of quarterly earnings",
    "guid": "story-nvda-earnings",
    "link": "https://news.example/nvda-earnings",
    "description": "Investors expect strong data-centre revenue.",
    "pubDate": format_datetime(NOW - timedelta(minutes=7)),
}

MakeApp = Callable[..., Awaitable[tuple[App, io.StringIO]]]


@pytest.fixture
async def make_app(settings: Settings) -> AsyncIterator[MakeApp]:
    """Builds apps on the test's settings; every one is closed at the end."""
    stacks: list[AsyncExitStack] = []

    async def factory(feeds: list[FeedSpec], clock: Callable[[], datetime] = lambda: NOW) -> tuple[App, io.StringIO]:
        stack = AsyncExitStack()
        stacks.append(stack)
        out = io.StringIO()
        return await build_app(settings, feeds, stack, out=out, clock=clock), out

    yield factory
    for stack in stacks:
        await stack.aclose()


def feed(server: FeedServer, path: str, route: Route, name: str | None = None) -> FeedSpec:
    return FeedSpec(name=name or path.strip("/"), url=server.route(path, route), interval_s=60)


async def test_new_flagged_story_alerts_once(feed_server: FeedServer, make_app: MakeApp) -> None:
    """A new export-control story produces exactly one alert, printed with NVDA and AMD."""
    spec = feed(feed_server, "/a.xml", Route(rss(FLAGGED, PLAIN)))
    app, out = await make_app([spec])
    report = await poll_once(app.deps, spec)
    await app.outbox.drain()
    assert report.items == 2
    assert len(report.alerts) == 1
    text = out.getvalue()
    assert text.count("[ALERT]") == 1
    assert FLAGGED["title"] in text
    assert "NVDA" in text and "AMD" in text
    assert "https://news.example/smic-entity-list" in text and "utm_source" not in text


async def test_second_poll_does_not_alert_again(feed_server: FeedServer, make_app: MakeApp) -> None:
    """Polling the same feed again neither re-parses nor re-alerts."""
    spec = feed(feed_server, "/a.xml", Route(rss(FLAGGED)))
    app, out = await make_app([spec])
    first = await poll_once(app.deps, spec)
    second = await poll_once(app.deps, spec)
    await app.outbox.drain()
    assert (len(first.alerts), len(second.alerts)) == (1, 0)
    assert second.status == "unchanged" and not second.parsed
    assert out.getvalue().count("[ALERT]") == 1


async def test_restart_does_not_alert_again(feed_server: FeedServer, make_app: MakeApp) -> None:
    """A new process on the same state file remembers what it alerted, even when the feed body changed."""
    spec = feed(feed_server, "/a.xml", Route(rss(FLAGGED)))
    app, _ = await make_app([spec])
    assert len((await poll_once(app.deps, spec)).alerts) == 1
    await app.outbox.drain()
    feed_server.route("/a.xml", Route(rss(PLAIN, FLAGGED)))  # changed body: parsed again
    again, out = await make_app([spec])
    report = await poll_once(again.deps, spec)
    await again.outbox.drain()
    assert report.parsed and report.alerts == []
    assert "[ALERT]" not in out.getvalue()


@pytest.mark.parametrize("conditional", [True, False], ids=["server-answers-304", "same-body-hash"])
async def test_unchanged_feed_is_not_parsed_again(
    feed_server: FeedServer, make_app: MakeApp, conditional: bool
) -> None:
    """An unchanged feed stops at fetch: by a 304, or by the same body hash when the server ignores validators."""
    spec = feed(feed_server, "/a.xml", Route(rss(FLAGGED, PLAIN), conditional=conditional))
    app, _ = await make_app([spec])
    reports = [await poll_once(app.deps, spec) for _ in range(3)]
    assert [r.parsed for r in reports] == [True, False, False]
    assert feed_server.not_modified["/a.xml"] == (2 if conditional else 0)


async def test_failing_feeds_are_reported_and_backed_off(
    feed_server: FeedServer, make_app: MakeApp, settings: Settings
) -> None:
    """A 404, a time-out and garbage are reported and backed off; the good feed still alerts."""
    good = feed(feed_server, "/good.xml", Route(rss(FLAGGED)))
    missing = feed(feed_server, "/missing.xml", Route(b"gone", status=404, content_type="text/plain"))
    slow = feed(feed_server, "/slow.xml", Route(rss(PLAIN), delay=settings.fetch_timeout + 5))
    garbage = feed(feed_server, "/garbage.xml", Route(b"\x00\xff<<not xml at all", content_type="text/html"))
    app, _ = await make_app([good, missing, slow, garbage])
    first = {r.feed: r for r in await poll_all(app)}
    assert len(first["good.xml"].alerts) == 1
    assert first["missing.xml"].error == "HTTP 404"
    assert "slow server" in (first["slow.xml"].error or "") or "timed out" in (first["slow.xml"].error or "")
    assert "not a" in (first["garbage.xml"].error or "")
    requests_before = dict(feed_server.requests)
    second = {r.feed: r for r in await poll_all(app)}
    for name in ("missing.xml", "slow.xml", "garbage.xml"):
        assert second[name].status == "backing off"
    assert feed_server.requests["/missing.xml"] == requests_before["/missing.xml"]
    health = (await app.store.feed_state("missing.xml")).health
    assert health.failures == 1 and health.next_attempt_at is not None and health.next_attempt_at > NOW


async def test_retry_after_holds_back_that_feed_only(feed_server: FeedServer, make_app: MakeApp) -> None:
    """A 429 with Retry-After backs off the one feed for that long; another feed on the same host is polled."""
    limited = feed(feed_server, "/limited.xml", Route(b"", status=429, headers={"Retry-After": "900"}))
    other = feed(feed_server, "/other.xml", Route(rss(PLAIN)))
    app, _ = await make_app([limited, other])
    await poll_all(app)
    health = (await app.store.feed_state("limited.xml")).health
    assert health.next_attempt_at is not None
    assert health.next_attempt_at - NOW >= timedelta(seconds=900)
    other_report = await poll_once(app.deps, other)
    assert other_report.status == "unchanged"


async def test_updated_article_is_not_alerted_again(feed_server: FeedServer, make_app: MakeApp) -> None:
    """An alerted article that the feed later updates (same guid, new text) does not alert again."""
    spec = feed(feed_server, "/a.xml", Route(rss(FLAGGED)))
    app, _ = await make_app([spec])
    assert len((await poll_once(app.deps, spec)).alerts) == 1
    updated = {**FLAGGED, "description": FLAGGED["description"] + " Updated with comment from SMIC."}
    feed_server.route("/a.xml", Route(rss(updated)))
    report = await poll_once(app.deps, spec)
    assert report.parsed and report.alerts == []


async def test_update_that_makes_a_story_flagged_alerts(feed_server: FeedServer, make_app: MakeApp) -> None:
    """A story first seen without export controls alerts once an update adds them."""
    spec = feed(feed_server, "/a.xml", Route(rss(PLAIN)))
    app, _ = await make_app([spec])
    assert (await poll_once(app.deps, spec)).alerts == []
    turned = {**PLAIN, "title": "Nvidia says US bars H20 chip exports to China without a licence",
              "description": "The Commerce Department told Nvidia it needs an export licence to sell H20 chips "
                             "to China, a new restriction that will cost it billions."}
    feed_server.route("/a.xml", Route(rss(turned)))
    report = await poll_once(app.deps, spec)
    assert len(report.alerts) == 1


async def test_old_stories_are_recorded_not_alerted(feed_server: FeedServer, make_app: MakeApp) -> None:
    """On a first start, a flagged story published days ago is remembered but not alerted."""
    old = {**FLAGGED, "pubDate": format_datetime(NOW - timedelta(days=5))}
    spec = feed(feed_server, "/a.xml", Route(rss(old)))
    app, _ = await make_app([spec])
    report = await poll_once(app.deps, spec)
    assert report.flagged == 0 and report.alerts == []


async def test_fetch_sends_an_honest_user_agent(feed_server: FeedServer, make_app: MakeApp) -> None:
    """Every request names newsbot in its User-Agent."""
    spec = feed(feed_server, "/a.xml", Route(rss(PLAIN)))
    app, _ = await make_app([spec])
    await poll_once(app.deps, spec)
    assert feed_server.user_agents and all(ua.startswith("newsbot/") for ua in feed_server.user_agents)


async def test_same_story_from_a_second_outlet_is_attached(feed_server: FeedServer, make_app: MakeApp) -> None:
    """The same story from another outlet within the window becomes a source of the first alert."""
    first = feed(feed_server, "/one.xml", Route(rss(FLAGGED)))
    copy = {**FLAGGED, "guid": "other-outlet-smic", "link": "https://other.example/smic",
            "title": "SMIC added to US Entity List as Commerce tightens chip export controls"}
    second = feed(feed_server, "/two.xml", Route(rss(copy)))
    app, _ = await make_app([first, second])
    reports = [await poll_once(app.deps, first), await poll_once(app.deps, second)]
    assert [len(r.alerts) for r in reports] == [1, 0]
    assert reports[1].attached == 1


async def test_prune_forgets_items_after_retention(
    feed_server: FeedServer, make_app: MakeApp, settings: Settings
) -> None:
    """Seen items older than the retention period are removed from the store."""
    spec = feed(feed_server, "/a.xml", Route(rss(PLAIN)))
    app, _ = await make_app([spec])
    await poll_once(app.deps, spec)
    removed = await app.store.prune_seen(NOW + timedelta(days=settings.seen_retention_days + 1))
    assert removed == 1
