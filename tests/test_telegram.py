"""The Telegram sink through the outbox, against the stand-in Bot API over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.filters import Filters, QuietHours
from bot.records import Message, Reaction
from feeds.records import Verdict
from tests.factories import T0, make_alert, make_item
from tests.servers.botapi import BotApi
from tests.telegram_kit import Kit, make_kit


@pytest.fixture
async def kit(api: BotApi, tmp_path: Path) -> AsyncIterator[Kit]:
    kit = make_kit(api, tmp_path, chat_ids=("-1001",))
    yield kit
    await kit.close()


def alert_message(ident: str = "a_1", **kw: object) -> Message:
    return Message(ident, "alert", ident, make_alert(ident, **kw))


class TestBroadcast:
    async def test_alert_reaches_configured_chats_and_subscribers_once(self, kit: Kit, api: BotApi) -> None:
        """Every configured chat and every subscriber gets the alert exactly once, even after more drains."""
        await kit.subscribe("42")
        await kit.subscribe("43")
        await kit.outbox.enqueue(alert_message())
        report = await kit.outbox.drain()
        await kit.outbox.drain()
        assert report.delivered == 3
        assert sorted(s.chat_id for s in api.sent) == ["-1001", "42", "43"]

    async def test_muted_subscriber_is_skipped(self, kit: Kit, api: BotApi) -> None:
        """A subscriber muted until later gets nothing; the others still do."""
        await kit.subscribe("42", muted_until=T0.replace(hour=5))
        await kit.outbox.enqueue(alert_message())
        await kit.outbox.drain()
        assert api.to("42") == []
        assert len(api.to("-1001")) == 1


def _verdict(**kw: object) -> Verdict:
    base = Verdict(True, 0.9, "tightening", ("Nvidia",), ("NVDA",), ("H20",), ("control: export licence",))
    return replace(base, **kw)  # type: ignore[arg-type]


FILTER_CASES = [
    pytest.param(Filters(tickers=("AMD",)), {}, False, id="ticker-miss"),
    pytest.param(Filters(tickers=("NVDA",)), {}, True, id="ticker-hit"),
    pytest.param(Filters(directions=("easing",)), {}, False, id="direction-miss"),
    pytest.param(Filters(directions=("tightening",)), {}, True, id="direction-hit"),
    pytest.param(Filters(min_score=0.95), {}, False, id="score-below"),
    pytest.param(Filters(min_score=0.9), {}, True, id="score-equal"),
    pytest.param(Filters(langs=("zh",)), {}, False, id="lang-miss"),
    pytest.param(Filters(langs=("zh",)), {"lang": "zh"}, True, id="lang-hit"),
    pytest.param(Filters(include=("huawei",)), {}, False, id="include-miss"),
    pytest.param(Filters(include=("entity",)), {}, True, id="include-hit"),
    pytest.param(Filters(include=("ent",)), {}, False, id="include-whole-words-only"),
    pytest.param(Filters(exclude=("commerce",)), {}, False, id="exclude-hit"),
    pytest.param(Filters(exclude=("rumour",)), {}, True, id="exclude-miss"),
    pytest.param(Filters(include=("(.*)",)), {}, False, id="user-words-are-not-regexes"),
]


class TestFilters:
    @pytest.mark.parametrize(("filters", "item_kw", "wanted"), FILTER_CASES)
    async def test_filter_decides_delivery(self, kit: Kit, api: BotApi, filters: Filters,
                                           item_kw: dict[str, str], wanted: bool) -> None:
        """A subscriber gets the alert only when their filters admit it."""
        await kit.subscribe("42", filters=filters)
        await kit.outbox.enqueue(alert_message(item=make_item("a_1", **item_kw)))
        await kit.outbox.drain()
        assert len(api.to("42")) == int(wanted)

    @pytest.mark.parametrize(("hour", "silent"), [(23, True), (3, True), (12, False)], ids=["late", "early", "noon"])
    async def test_quiet_hours_arrive_silently(self, kit: Kit, api: BotApi, hour: int, silent: bool) -> None:
        """Inside quiet hours the alert still arrives, with disable_notification set."""
        kit.clock.now = T0.replace(hour=hour)
        await kit.subscribe("42", filters=Filters(quiet=QuietHours(22 * 60, 7 * 60)))
        await kit.outbox.enqueue(alert_message())
        await kit.outbox.drain()
        [sent] = api.to("42")
        assert sent.disable_notification is silent


class TestFailures:
    async def test_429_is_retried_after_retry_after_and_delivered_once(self, kit: Kit, api: BotApi) -> None:
        """A 429 reschedules just that delivery for retry_after; it then arrives once."""
        await kit.subscribe("42")
        await kit.subscribe("43")
        api.fail("42", 429, "Too Many Requests: retry after 3", retry_after=3)
        await kit.outbox.enqueue(alert_message())
        first = await kit.outbox.drain()
        assert (first.delivered, first.retried) == (2, 1)
        assert await kit.outbox.drain() == type(first)()  # not due yet
        kit.clock.advance(3)
        second = await kit.outbox.drain()
        assert second.delivered == 1
        assert len(api.to("42")) == 1

    @pytest.mark.parametrize("status", [500, 502])
    async def test_server_errors_are_retried(self, kit: Kit, api: BotApi, status: int) -> None:
        """5xx answers are retried with back-off, and delivered once the server is back."""
        await kit.subscribe("42")
        api.fail("42", status, "Internal Server Error")
        await kit.outbox.enqueue(alert_message())
        assert (await kit.outbox.drain()).retried == 1
        kit.clock.advance(300)
        assert (await kit.outbox.drain()).delivered == 1
        assert len(api.to("42")) == 1

    async def test_blocked_user_is_unsubscribed(self, kit: Kit, api: BotApi) -> None:
        """A 403 parks the delivery and removes the subscriber, so later alerts skip them."""
        await kit.subscribe("42")
        api.blocked.add("42")
        await kit.outbox.enqueue(alert_message("a_1"))
        assert (await kit.outbox.drain()).parked == 1
        assert await kit.subs.get("42") is None
        await kit.outbox.enqueue(alert_message("a_2"))
        await kit.outbox.drain()
        assert api.calls["sendMessage"] == 3  # a_1: -1001 and the refused 42; a_2: -1001 only

    async def test_migrated_group_is_followed(self, kit: Kit, api: BotApi) -> None:
        """A group that became a supergroup gets the alert at its new id, and keeps its subscription there."""
        await kit.subscribe("-5")
        api.migrated["-5"] = "-1005"
        await kit.outbox.enqueue(alert_message())
        assert (await kit.outbox.drain()).delivered == 2
        assert len(api.to("-1005")) == 1
        assert await kit.subs.get("-5") is None
        assert await kit.subs.get("-1005") is not None


class TestContent:
    async def test_reaction_replies_to_the_alert(self, kit: Kit, api: BotApi) -> None:
        """The +15 min reaction is a reply to the alert message in the same chat."""
        await kit.subscribe("42")
        alert = make_alert("a_1")
        await kit.outbox.enqueue(Message("a_1", "alert", "a_1", alert))
        await kit.outbox.drain()
        reaction = Reaction("a_1", 15, alert.item.title, (("NVDA", 1.25),), (), T0)
        await kit.outbox.enqueue(Message("a_1:r15", "reaction", "a_1", alert, reaction))
        await kit.outbox.drain()
        first, second = api.to("42")
        assert second.reply_to == first.message_id
        assert "NVDA +1.25%" in second.text

    async def test_reaction_chart_is_a_photo_reply_to_the_alert(self, kit: Kit, api: BotApi, tmp_path: Path) -> None:
        """A reaction with a chart is a photo, captioned with the moves, replying to the alert."""
        chart = tmp_path / "a_1-r15.png"
        chart.write_bytes(b"\x89PNG fake")
        await kit.subscribe("42")
        alert = make_alert("a_1")
        await kit.outbox.enqueue(Message("a_1", "alert", "a_1", alert))
        await kit.outbox.drain()
        reaction = Reaction("a_1", 15, alert.item.title, (("NVDA", 1.25),), (), T0, chart_path=str(chart))
        await kit.outbox.enqueue(Message("a_1:r15", "reaction", "a_1", alert, reaction))
        await kit.outbox.drain()
        first, second = api.to("42")
        assert (second.method, second.reply_to) == ("sendPhoto", first.message_id)
        assert "NVDA +1.25%" in second.text

    async def test_chart_is_uploaded_once(self, kit: Kit, api: BotApi, tmp_path: Path) -> None:
        """A reaction's chart is uploaded once; every other chat gets it by file_id."""
        chart = tmp_path / "a_1-r15.png"
        chart.write_bytes(b"\x89PNG fake")
        await kit.subscribe("42")
        alert = make_alert("a_1")
        reaction = Reaction("a_1", 15, alert.item.title, (("NVDA", 1.25),), (), T0, chart_path=str(chart))
        await kit.outbox.enqueue(Message("a_1:r15", "reaction", "a_1", alert, reaction))
        await kit.outbox.drain()
        photos = sorted((s.photo or "") for s in api.sent)
        assert photos == ["photo-1", "upload"]
        assert all(s.method == "sendPhoto" and "NVDA +1.25%" in s.text for s in api.sent)

    async def test_headline_arrives_exactly_as_published(self, kit: Kit, api: BotApi) -> None:
        """A headline with <, &, quotes and emoji reads exactly as published once Telegram parses the HTML."""
        title = 'US & China: "H20 <ban>" isn\'t over 🚫🇨🇳 <b>not bold</b> &amp; more'
        await kit.outbox.enqueue(alert_message(item=make_item("a_1", title=title)))
        await kit.outbox.drain()
        [sent] = api.to("-1001")
        assert title in sent.text.split("\n")
