"""Pure quote arithmetic shared by every price source: bars in, `Quote` out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.hours import MarketCalendar
from bot.records import Quote

Bar = tuple[datetime, float]  # (UTC start of the minute, close)


@dataclass(frozen=True, slots=True)
class History:
    """What a source knows about one ticker: 1-minute closes (UTC, ascending) and official daily closes."""

    ticker: str
    minutes: tuple[Bar, ...]
    daily: tuple[tuple[date, float], ...] = ()  # (exchange date, close), ascending; empty → derive from bars


def pct(price: float | None, ref: float | None) -> float | None:
    """Percentage change from `ref` to `price`, None when either is unknown or `ref` is zero."""
    if price is None or ref is None or ref == 0:
        return None
    return 100.0 * (price / ref - 1.0)


def session_bars(minutes: Sequence[Bar], calendar: MarketCalendar) -> list[Bar]:
    """The bars of the last session present (same exchange date as the last bar, pre and post included)."""
    if not minutes:
        return []
    day = calendar.local_date(minutes[-1][0])
    start = len(minutes)
    while start > 0 and calendar.local_date(minutes[start - 1][0]) == day:
        start -= 1
    return list(minutes[start:])


def previous_close(history: History, calendar: MarketCalendar) -> float | None:
    """Close of the session before the last one: the daily bar if known, else the last regular-hours bar."""
    if not history.minutes:
        return None
    day = calendar.local_date(history.minutes[-1][0])
    earlier = [close for d, close in history.daily if d < day]
    if history.daily:
        return earlier[-1] if earlier else None
    for moment, close in reversed(history.minutes):
        bar_day = calendar.local_date(moment)
        if bar_day < day and moment < calendar.close_at(bar_day):
            return close
    return None


def change_over(bars: Sequence[Bar], minutes: int) -> float | None:
    """Move of the last close against the last bar at least `minutes` older, within `bars`."""
    if not bars:
        return None
    last_time, last_close = bars[-1]
    cutoff = last_time - timedelta(minutes=minutes)
    for moment, close in reversed(bars):
        if moment <= cutoff:
            return pct(last_close, close)
    return None


def build_quote(history: History, now: datetime, calendar: MarketCalendar, stale: bool = False) -> Quote | None:
    """The quote for one ticker as of its last bar; None when there are no bars at all."""
    if not history.minutes:
        return None
    bars = session_bars(history.minutes, calendar)
    as_of, price = bars[-1]
    prev = previous_close(history, calendar)
    return Quote(
        ticker=history.ticker,
        price=price,
        prev_close=prev,
        change_1d_pct=pct(price, prev),
        change_15m_pct=change_over(bars, 15),
        change_60m_pct=change_over(bars, 60),
        as_of=as_of,
        market_state=calendar.state(now),
        stale=stale,
    )
