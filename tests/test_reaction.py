"""Reaction follow-ups: moves since the alert, and the +15/+60 minute jobs that enqueue them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.hours import MarketCalendar
from bot.quotes import pct
from bot.reaction import ReactionScheduler, build_reaction, price_at
from bot.records import Alert, Message, Quote
from bot.replay import ReplaySource
from feeds.records import Item, Verdict

ALERT_AT = datetime(2025, 7, 15, 11, 45, tzinfo=UTC)  # 07:45 New York, pre-market


def quote(ticker: str, price: float | None, at: datetime = ALERT_AT, stale: bool = False) -> Quote:
    return Quote(ticker, price, 100.0, None, None, None, at, "pre", stale)


def make_alert(quotes: tuple[Quote, ...] = (), tickers: tuple[str, ...] = ("NVDA",)) -> Alert:
    item = Item("k1", "ap-de", "https://example.org/h20", "Nvidia darf H20 wieder nach China liefern", "",
                ALERT_AT - timedelta(hours=8), ALERT_AT, "de")  # fmt: skip
    verdict = Verdict(True, 0.9, "easing", ("Nvidia",), tickers, ("H20",), ("licence granted",))
    return Alert("a1", "c1", item, verdict, quotes, ALERT_AT)


def replay(calendar: MarketCalendar, **series: list[tuple[int, float]]) -> ReplaySource:
    """A replay over bars given as (minutes after the alert, close)."""
    bars = {t: [(ALERT_AT + timedelta(minutes=m), c) for m, c in rows] for t, rows in series.items()}
    return ReplaySource(bars, calendar)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def calendar() -> MarketCalendar:
    return MarketCalendar.from_file()


class TestBuildReaction:
    def test_moves_since_the_alert_quotes(self):
        """Each quoted ticker's move is measured from its price in the alert."""
        alert = make_alert((quote("NVDA", 170.0), quote("AMD", 150.0)))
        now = {"NVDA": quote("NVDA", 171.7), "AMD": quote("AMD", 148.5)}
        reaction = build_reaction(alert, now, 15, ALERT_AT + timedelta(minutes=15))
        assert reaction.moves == (("NVDA", pct(171.7, 170.0)), ("AMD", pct(148.5, 150.0)))
        assert (reaction.alert_id, reaction.minutes, reaction.title) == ("a1", 15, alert.item.title)
        assert reaction.quotes == (now["NVDA"], now["AMD"])

    def test_unknown_or_stale_price_gives_no_move(self):
        """A ticker without a current price, or with a stale one, has move None rather than a wrong number."""
        alert = make_alert((quote("NVDA", 170.0), quote("AMD", 150.0)))
        reaction = build_reaction(alert, {"AMD": quote("AMD", 151.0, stale=True)}, 60, ALERT_AT)
        assert reaction.moves == (("NVDA", None), ("AMD", None))

    def test_alert_without_prices_uses_baselines(self):
        """When the alert went out without quotes, the move is taken from the price at alert time."""
        reaction = build_reaction(make_alert(), {"NVDA": quote("NVDA", 101.0)}, 15, ALERT_AT, {"NVDA": 100.0})
        assert reaction.moves == (("NVDA", pct(101.0, 100.0)),)

    def test_price_at_takes_last_bar_not_after(self):
        """The baseline is the close of the last bar that started at or before the moment."""
        bars = [(ALERT_AT - timedelta(minutes=1), 1.0), (ALERT_AT, 2.0), (ALERT_AT + timedelta(minutes=1), 3.0)]
        assert price_at(bars, ALERT_AT + timedelta(seconds=30)) == 2.0
        assert price_at(bars, ALERT_AT - timedelta(minutes=5)) is None


class TestReactionScheduler:
    async def test_schedules_one_date_job_per_delay(self, calendar):
        """An alert gets jobs at +15 and +60 minutes; scheduling it again replaces them."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        planner = ReactionScheduler(scheduler, replay(calendar, NVDA=[(0, 1.0)]), Clock(ALERT_AT), _collect([]))
        planner.schedule(make_alert())
        planner.schedule(make_alert())
        jobs = {job.id: job.trigger.run_date for job in scheduler.get_jobs()}
        assert jobs == {"a1:r15": ALERT_AT + timedelta(minutes=15), "a1:r60": ALERT_AT + timedelta(minutes=60)}

    async def test_delays_are_configurable_and_late_jobs_run_now(self, calendar):
        """Configured delays are honoured; a delay already past (late alert) runs at once, not never."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        clock = Clock(ALERT_AT + timedelta(minutes=10))
        planner = ReactionScheduler(scheduler, replay(calendar, NVDA=[(0, 1.0)]), clock, _collect([]), minutes=(5, 30))
        planner.schedule(make_alert())
        jobs = {job.id: job.trigger.run_date for job in scheduler.get_jobs()}
        assert jobs == {"a1:r5": clock.now, "a1:r30": ALERT_AT + timedelta(minutes=30)}

    async def test_job_enqueues_the_reaction_message(self, calendar):
        """Running the scheduled job builds the reaction from fresh quotes and enqueues it once."""
        source = replay(calendar, NVDA=[(0, 170.0), (15, 172.0)], AMD=[(0, 150.0), (15, 149.0)])
        alert = make_alert((quote("NVDA", 170.0), quote("AMD", 150.0)))
        sent: list[Message] = []
        scheduler = AsyncIOScheduler(timezone=UTC)
        planner = ReactionScheduler(scheduler, source, Clock(ALERT_AT + timedelta(minutes=15)), _collect(sent))
        planner.schedule(alert)
        job = scheduler.get_job("a1:r15")
        await job.func(*job.args)
        assert [(m.id, m.kind, m.alert_id, m.alert) for m in sent] == [("a1:r15", "reaction", "a1", alert)]
        assert sent[0].reaction.moves == (("NVDA", pct(172.0, 170.0)), ("AMD", pct(149.0, 150.0)))

    async def test_alert_without_prices_gets_them_in_the_reaction(self, calendar):
        """An alert that went out without quotes gets defaults and story tickers, moved from the alert-time bar."""
        source = replay(calendar, NVDA=[(-2, 99.0), (0, 100.0), (15, 103.0)], AMD=[(0, 50.0), (15, 49.0)])
        planner = ReactionScheduler(
            AsyncIOScheduler(timezone=UTC), source, Clock(ALERT_AT + timedelta(minutes=15)), _collect([])
        )
        message = await planner.fire(make_alert(tickers=("NVDA", "TSM")), 15)
        assert message.reaction.moves == (("NVDA", pct(103.0, 100.0)), ("AMD", pct(49.0, 50.0)))
        assert [q.ticker for q in message.reaction.quotes] == ["NVDA", "AMD"]

    async def test_unavailable_prices_still_enqueue(self, calendar):
        """With no prices at all the follow-up still goes out, saying the moves are unknown."""
        sent: list[Message] = []
        planner = ReactionScheduler(AsyncIOScheduler(timezone=UTC), replay(calendar), Clock(ALERT_AT), _collect(sent))
        await planner.fire(make_alert((quote("NVDA", 170.0),)), 60)
        assert sent[0].reaction.moves == (("NVDA", None),)


def _collect(sink: list[Message]):
    async def enqueue(message: Message) -> None:
        sink.append(message)

    return enqueue
