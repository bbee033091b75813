"""Rebuilds yfinance.download frames from the recorded CSV fixtures in tests/data/market/ (no pickles)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

DATA = Path(__file__).resolve().parent / "data" / "market"
PRICE_COLUMNS = ["Adj Close", "Close", "High", "Low", "Open", "Volume"]


def yf_frame(name: str, tickers: Sequence[str], until: datetime | None = None, tz: str | None = "keep") -> pd.DataFrame:
    """The frame yfinance.download returns: (Price, Ticker) MultiIndex columns, union index, NaN where absent.

    `tz`: "keep" leaves the recorded exchange-time index, None strips it (ignore_tz=True), else converts.
    """
    long = pd.read_csv(DATA / name)
    daily = "Date" in long.columns
    if daily:
        index = pd.DatetimeIndex(pd.to_datetime(long["Date"]), name="Date")
    else:
        index = pd.DatetimeIndex(pd.to_datetime(long["Datetime"], utc=True), name="Datetime")
        index = index.tz_convert("America/New_York")
    long = long.set_index(index)
    if until is not None:
        limit = pd.Timestamp(until.date()) if daily else pd.Timestamp(until)
        long = long[long.index <= limit]
    if not daily and tz != "keep":
        long.index = long.index.tz_localize(None) if tz is None else long.index.tz_convert(tz)
    per_ticker = {}
    for ticker in (t.upper() for t in tickers):
        rows = long[long["Ticker"] == ticker]
        per_ticker[ticker] = rows[PRICE_COLUMNS] if len(rows) else pd.DataFrame(columns=PRICE_COLUMNS, dtype=float)
    union = None
    for frame in per_ticker.values():
        if len(frame):
            union = frame.index if union is None else union.union(frame.index)
    if union is None:
        return pd.DataFrame()
    frames = {t: f.reindex(union) for t, f in per_ticker.items()}
    data = pd.concat(frames.values(), axis=1, keys=frames.keys(), names=["Ticker", "Price"], sort=True)
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)


class FakeYahoo:
    """Stands in for yfinance.download: serves recorded frames, records calls, can raise or hang on demand."""

    def __init__(self, minute: str, daily: str, until: datetime | None = None, tz: str | None = "keep"):
        self.minute, self.daily, self.until, self.tz = minute, daily, until, tz
        self.calls: list[tuple[tuple[str, ...], str]] = []
        self.kwargs: list[dict[str, Any]] = []
        self.fail: Callable[[], Exception] | None = None
        self.release = threading.Event()
        self.hang = False
        self.empty = False

    def __call__(self, tickers: Sequence[str], **kwargs: Any) -> pd.DataFrame:
        self.calls.append((tuple(tickers), kwargs["interval"]))
        self.kwargs.append(kwargs)
        if self.hang:
            self.release.wait(30)
        if self.fail is not None:
            raise self.fail()
        if self.empty:
            return pd.DataFrame()
        if kwargs["interval"] == "1m":
            assert kwargs["prepost"] is True
            return yf_frame(self.minute, tickers, self.until, self.tz)
        return yf_frame(self.daily, tickers, self.until)


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def utc(text: str) -> datetime:
    """Parse an ISO time into an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)
