"""`replay:PATH` price source: recorded 1-minute bars from a CSV, served as if now were their last bar."""

from __future__ import annotations

import bisect
import csv
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bot.hours import MarketCalendar
from bot.quotes import Bar, History, build_quote, session_bars
from bot.records import Quote

COLUMNS = ("ticker", "time", "open", "high", "low", "close", "volume")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return moment.astimezone(UTC)


def load_bars(path: Path) -> dict[str, list[Bar]]:
    """Read a bar CSV into {ticker: [(UTC time, close), ...]} sorted by time; ValueError names file and line."""
    bars: dict[str, list[Bar]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"{path}: missing columns {', '.join(missing)} (need {','.join(COLUMNS)})")
            for row in reader:
                try:
                    bar = (_parse_time(row["time"]), float(row["close"]))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{path}:{reader.line_num}: {exc}") from exc
                bars.setdefault(row["ticker"].strip().upper(), []).append(bar)
    except OSError as exc:
        raise ValueError(f"cannot read price replay file {path}: {exc}") from exc
    for series in bars.values():
        series.sort()
    return bars


class ReplaySource:
    """A `PriceSource` over recorded bars; `now()` is the last bar's time unless moved with `at()`."""

    def __init__(self, bars: Mapping[str, Sequence[Bar]], calendar: MarketCalendar, at: datetime | None = None):
        self._bars = {ticker: list(series) for ticker, series in bars.items()}
        self._calendar = calendar
        last = max((series[-1][0] for series in self._bars.values() if series), default=None)
        self._now = at if at is not None else last

    @classmethod
    def from_file(cls, path: Path, calendar: MarketCalendar) -> ReplaySource:
        """Load a replay CSV (see README, "Recorded prices")."""
        bars = load_bars(path)
        if not bars:
            raise ValueError(f"{path}: no bars")
        return cls(bars, calendar)

    def now(self) -> datetime:
        """The replay clock: the time of the last bar served."""
        if self._now is None:
            raise ValueError("replay has no bars")
        return self._now

    def at(self, moment: datetime) -> ReplaySource:
        """The same recording served as if now were `moment` (bars after it are hidden)."""
        return ReplaySource(self._bars, self._calendar, at=moment)

    def _visible(self, ticker: str) -> list[Bar]:
        series = self._bars.get(ticker.upper(), [])
        if self._now is None:
            return []
        return series[: bisect.bisect_right(series, (self._now, float("inf")))]

    async def quotes(self, tickers: Sequence[str]) -> dict[str, Quote]:
        """Quotes for the tickers with bars up to now; others are absent."""
        out: dict[str, Quote] = {}
        for ticker in tickers:
            history = History(ticker=ticker.upper(), minutes=tuple(self._visible(ticker)))
            quote = build_quote(history, self.now(), self._calendar) if history.minutes else None
            if quote is not None:
                out[ticker] = quote
        return out

    async def intraday(self, tickers: Sequence[str]) -> dict[str, list[Bar]]:
        """1-minute closes of the last session up to now, per ticker with data."""
        out: dict[str, list[Bar]] = {}
        for ticker in tickers:
            bars = session_bars(self._visible(ticker), self._calendar)
            if bars:
                out[ticker] = bars
        return out
