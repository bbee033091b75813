"""yfinance price source: batched downloads off the event loop, a short shared cache, backoff when Yahoo balks.

The constructor's `download` (default `yfinance.download`) is the one seam where Yahoo is reached; pandas
frames never leave this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from bot.hours import MarketCalendar
from bot.quotes import Bar, History, build_quote, session_bars
from bot.records import Quote

log = logging.getLogger(__name__)

Download = Callable[..., Any]  # yfinance.download-compatible
Clock = Callable[[], datetime]


def _close_columns(frame: Any, tickers: Sequence[str]) -> dict[str, Any]:
    """The Close column per ticker from a download frame (MultiIndex in either level order)."""
    if frame is None or getattr(frame, "empty", True):
        return {}
    columns = frame.columns
    if isinstance(columns, pd.MultiIndex):
        for level in range(columns.nlevels):
            if "Close" in columns.get_level_values(level):
                closes = frame.xs("Close", axis=1, level=level)
                return {str(name).upper(): closes[name] for name in closes.columns}
        return {}
    if "Close" in columns and len(tickers) == 1:
        return {tickers[0].upper(): frame["Close"]}
    return {}


def minute_bars(frame: Any, tickers: Sequence[str], zone: Any) -> dict[str, tuple[Bar, ...]]:
    """1-minute closes per ticker with a UTC time; a naive index is read as exchange time."""
    out: dict[str, tuple[Bar, ...]] = {}
    for ticker, series in _close_columns(frame, tickers).items():
        series = series.dropna()
        index = pd.DatetimeIndex(series.index)
        index = (index.tz_localize(zone) if index.tz is None else index).tz_convert("UTC")
        bars = sorted((ts.to_pydatetime().astimezone(UTC), float(v)) for ts, v in zip(index, series, strict=True))
        if bars:
            out[ticker] = tuple(bars)
    return out


def daily_closes(frame: Any, tickers: Sequence[str], zone: Any) -> dict[str, tuple[tuple[date, float], ...]]:
    """Official daily closes per ticker, keyed by exchange date."""
    out: dict[str, tuple[tuple[date, float], ...]] = {}
    for ticker, series in _close_columns(frame, tickers).items():
        series = series.dropna()
        index = pd.DatetimeIndex(series.index)
        if index.tz is not None:
            index = index.tz_convert(zone)
        rows = sorted((ts.date(), float(v)) for ts, v in zip(index, series, strict=True))
        if rows:
            out[ticker] = tuple(rows)
    return out


class YFinanceSource:
    """A `PriceSource` on Yahoo: one batched 1-minute and one daily download per refresh, for all tickers."""

    def __init__(
        self,
        clock: Clock,
        calendar: MarketCalendar,
        *,
        download: Download | None = None,
        ttl: float = 45.0,
        timeout: float = 10.0,
        backoff: tuple[float, float] = (5.0, 300.0),
        keep_tickers_for: float = 900.0,
    ):
        if download is None:
            import yfinance  # heavy import, only when Yahoo is actually used

            download = yfinance.download
        self._download = download
        self._clock = clock
        self._calendar = calendar
        self._ttl = timedelta(seconds=ttl)
        self._timeout = timeout
        self._backoff = backoff
        self._keep = timedelta(seconds=keep_tickers_for)
        self._cache: dict[str, tuple[History, datetime]] = {}  # ticker -> (data, when it was downloaded)
        self._tried: dict[str, datetime] = {}  # ticker -> last successful refresh that asked for it (data or not)
        self._asked: dict[str, datetime] = {}  # ticker -> last asked; refreshes batch all recently asked
        self._failures = 0
        self._retry_at: datetime | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._thread: asyncio.Future[Any] | None = None
        self.downloads = 0  # download calls made (observability and tests)

    async def quotes(self, tickers: Sequence[str]) -> dict[str, Quote]:
        """Quotes for the tickers Yahoo knows; cached data past its TTL comes back with `stale=True`."""
        await self._ensure(tickers)
        now = self._clock()
        out: dict[str, Quote] = {}
        for ticker in tickers:
            cached = self._cache.get(ticker.upper())
            if cached is None:
                continue
            history, fetched_at = cached
            quote = build_quote(history, now, self._calendar, stale=now - fetched_at >= self._ttl)
            if quote is not None:
                out[ticker] = quote
        return out

    async def intraday(self, tickers: Sequence[str]) -> dict[str, list[Bar]]:
        """1-minute closes of the current or last session (pre and post included) per known ticker."""
        await self._ensure(tickers)
        out: dict[str, list[Bar]] = {}
        for ticker in tickers:
            cached = self._cache.get(ticker.upper())
            bars = session_bars(cached[0].minutes, self._calendar) if cached else []
            if bars:
                out[ticker] = bars
        return out

    def _missing(self, tickers: Sequence[str], now: datetime) -> set[str]:
        """Tickers not asked of Yahoo within the TTL (a ticker Yahoo had nothing for is not re-asked at once)."""
        return {t.upper() for t in tickers if t.upper() not in self._tried or now - self._tried[t.upper()] >= self._ttl}

    async def _ensure(self, tickers: Sequence[str]) -> None:
        """Refresh when a requested ticker is missing or expired, unless backing off; shares in-flight work."""
        now = self._clock()
        for ticker in tickers:
            self._asked[ticker.upper()] = now
        for _ in range(2):  # at most: join the refresh in flight, then start one for what it lacked
            now = self._clock()
            if not self._missing(tickers, now) or (self._retry_at is not None and now < self._retry_at):
                return
            if self._refresh is None or self._refresh.done():
                batch = sorted(t for t, asked in self._asked.items() if now - asked < self._keep)
                self._refresh = asyncio.create_task(self._fetch(batch))
            await asyncio.shield(self._refresh)  # a caller's time-out must not abort the shared refresh

    async def _fetch(self, tickers: list[str]) -> None:
        """Run both downloads in a worker thread, bounded by the time-out; store or back off."""
        if self._thread is not None and not self._thread.done():
            self._fail("the previous download is still running")
            return
        self._thread = asyncio.ensure_future(asyncio.to_thread(self._download_frames, tickers))
        self._thread.add_done_callback(lambda f: f.cancelled() or f.exception())  # late failures: no warning
        try:
            histories = await asyncio.wait_for(asyncio.shield(self._thread), self._timeout)
        except TimeoutError:
            self._fail(f"no answer within {self._timeout:g} s")
            return
        except Exception as exc:  # yfinance raises assorted types (rate limit, HTTP, parsing)
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        if not histories:
            self._fail("empty frames")
            return
        fetched_at = self._clock()
        self._tried.update(dict.fromkeys(tickers, fetched_at))
        for ticker, history in histories.items():
            self._cache[ticker] = (history, fetched_at)
        self._failures, self._retry_at = 0, None

    def _download_frames(self, tickers: list[str]) -> dict[str, History]:
        """Blocking: the batched 1-minute and daily downloads, converted to plain records."""
        common = {"group_by": "column", "auto_adjust": False, "progress": False, "threads": True}
        self.downloads += 1
        minute = self._download(
            tickers, period="5d", interval="1m", prepost=True, ignore_tz=False, timeout=self._timeout, **common
        )
        bars = minute_bars(minute, tickers, self._calendar.zone)
        if not bars:
            return {}
        self.downloads += 1
        daily = self._download(tickers, period="10d", interval="1d", timeout=self._timeout, **common)
        closes = daily_closes(daily, tickers, self._calendar.zone)
        return {t: History(ticker=t, minutes=b, daily=closes.get(t, ())) for t, b in bars.items()}

    def _fail(self, reason: str) -> None:
        """Count a failed refresh and schedule the next attempt with capped exponential backoff."""
        self._failures += 1
        base, cap = self._backoff
        delay = min(base * 2 ** (self._failures - 1), cap)
        self._retry_at = self._clock() + timedelta(seconds=delay)
        log.warning("prices from Yahoo unavailable (%s); serving cached data, next try in %.0f s", reason, delay)
