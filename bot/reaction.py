"""Market-reaction follow-ups: how each quoted ticker moved since an alert, scheduled at +15 and +60 minutes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.market import PriceSource, snapshot
from bot.quotes import Bar, pct
from bot.records import Alert, Message, Quote, Reaction

log = logging.getLogger(__name__)

Enqueue = Callable[[Message], Awaitable[object]]  # e.g. Outbox.enqueue


def build_reaction(
    alert: Alert,
    now_quotes: Mapping[str, Quote],
    minutes: int,
    now: datetime,
    baselines: Mapping[str, float] | None = None,
) -> Reaction:
    """Move of each ticker since the alert: against the alert's quote, else a baseline price at alert time.

    Tickers are the alert's quoted ones, then any other quoted now (an alert that went out without prices).
    A move is None when either price is unknown or the current quote is stale.
    """
    then = {q.ticker: q.price for q in alert.quotes if q.price is not None}
    then.update({t: p for t, p in (baselines or {}).items() if t not in then})
    order = [q.ticker for q in alert.quotes] + [t for t in now_quotes if t not in {q.ticker for q in alert.quotes}]
    moves = []
    for ticker in order:
        quote = now_quotes.get(ticker)
        fresh = quote.price if quote is not None and not quote.stale else None
        moves.append((ticker, pct(fresh, then.get(ticker))))
    return Reaction(
        alert_id=alert.id,
        minutes=minutes,
        title=alert.item.title or alert.item.summary[:120],
        moves=tuple(moves),
        quotes=tuple(now_quotes[t] for t in order if t in now_quotes),
        as_of=now,
    )


def price_at(bars: Sequence[Bar], when: datetime) -> float | None:
    """The close of the last bar that started at or before `when`."""
    found = None
    for moment, close in bars:
        if moment > when:
            break
        found = close
    return found


class ReactionScheduler:
    """Schedules one APScheduler date job per alert and follow-up delay; each job enqueues a reaction message.

    Satisfies the pipeline's `ReactionPlanner` (`schedule(alert)`); `fire()` is the job body, callable directly.
    """

    def __init__(
        self,
        scheduler: Any,  # apscheduler AsyncIOScheduler (3.11); only add_job is used
        source: PriceSource,
        clock: Callable[[], datetime],
        enqueue: Enqueue,
        *,
        minutes: Sequence[int] = (15, 60),
        tickers: Sequence[str] = ("NVDA", "AMD"),
        quote_timeout: float = 20.0,
        misfire_grace_s: int = 600,
    ):
        self._scheduler = scheduler
        self._source = source
        self._clock = clock
        self._enqueue = enqueue
        self._minutes = tuple(minutes)
        self._tickers = tuple(tickers)
        self._timeout = quote_timeout
        self._grace = misfire_grace_s

    def schedule(self, alert: Alert, only: Sequence[int] | None = None) -> None:
        """Add the follow-up jobs for an alert; scheduling the same alert again replaces, never duplicates."""
        now = self._clock()
        for minutes in self._minutes if only is None else only:
            self._scheduler.add_job(
                self.fire,
                trigger="date",
                run_date=max(alert.detected_at + timedelta(minutes=minutes), now),
                args=(alert, minutes),
                id=f"{alert.id}:r{minutes}",
                name=f"reaction +{minutes}m to {alert.id}",
                replace_existing=True,
                misfire_grace_time=self._grace,
            )

    def tickers_for(self, alert: Alert) -> tuple[str, ...]:
        """The alert's quoted tickers; when it went out without prices, the defaults plus the story's."""
        if alert.quotes:
            return tuple(q.ticker for q in alert.quotes)
        return tuple(dict.fromkeys((*self._tickers, *alert.verdict.tickers)))

    async def fire(self, alert: Alert, minutes: int) -> Message:
        """Build the reaction from fresh quotes and hand the message to the outbox."""
        tickers = self.tickers_for(alert)
        quotes = {q.ticker: q for q in await snapshot(self._source, tickers, timeout=self._timeout)}
        baselines = await self._baselines(alert, [t for t in tickers if t not in {q.ticker for q in alert.quotes}])
        reaction = build_reaction(alert, quotes, minutes, self._clock(), baselines)
        message = Message(
            id=f"{alert.id}:r{minutes}", kind="reaction", alert_id=alert.id, alert=alert, reaction=reaction
        )
        await self._enqueue(message)
        return message

    async def _baselines(self, alert: Alert, tickers: Sequence[str]) -> dict[str, float]:
        """Prices at alert time from intraday bars, for tickers the alert carried no quote for."""
        if not tickers:
            return {}
        try:
            async with asyncio.timeout(self._timeout):
                bars = await self._source.intraday(tickers)
        except TimeoutError:
            log.warning(
                "no intraday bars for %s within %.0f s; reaction without baseline", ",".join(tickers), self._timeout
            )
            return {}
        found = {t: price_at(series, alert.detected_at) for t, series in bars.items()}
        return {t: p for t, p in found.items() if p is not None}
