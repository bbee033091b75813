"""Market data seen by the rest of the bot: the `PriceSource` Protocol, the setting that picks one, snapshots."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from bot.hours import MarketCalendar
from bot.records import Quote

log = logging.getLogger(__name__)


class PriceSource(Protocol):
    """Quotes and intraday bars for US tickers; implemented by `YFinanceSource` and `ReplaySource`."""

    async def quotes(self, tickers: Sequence[str]) -> dict[str, Quote]:
        """Quotes keyed by the requested spelling; tickers without data are absent."""
        ...

    async def intraday(self, tickers: Sequence[str]) -> dict[str, list[tuple[datetime, float]]]:
        """(UTC time, close) 1-minute bars of the current or last session, pre and post included."""
        ...


def price_source_from_setting(
    value: str, clock: Callable[[], datetime], calendar: MarketCalendar | None = None
) -> PriceSource:
    """Build the source NEWSBOT_MARKET names: `yfinance` or `replay:PATH`; ValueError otherwise."""
    calendar = calendar or MarketCalendar.from_file()
    setting = value.strip()
    if setting == "yfinance":
        from bot.yf import YFinanceSource  # here: keeps pandas/yfinance out of offline runs

        return YFinanceSource(clock, calendar)
    if setting.startswith("replay:") and setting[len("replay:") :].strip():
        from bot.replay import ReplaySource  # here: symmetric with the yfinance branch

        return ReplaySource.from_file(Path(setting[len("replay:") :].strip()), calendar)
    raise ValueError(f"NEWSBOT_MARKET must be 'yfinance' or 'replay:PATH' (a CSV of 1-minute bars), got {value!r}")


async def snapshot(
    source: PriceSource,
    tickers: Sequence[str],
    timeout: float = 2.0,  # noqa: ASYNC109 - the deadline is part of the interface the pipeline calls
) -> tuple[Quote, ...]:
    """Quotes in the order asked, never waiting longer than `timeout`; () when late or unavailable."""
    if not tickers:
        return ()
    try:
        async with asyncio.timeout(timeout):
            quotes = await source.quotes(tickers)
    except TimeoutError:
        log.warning("prices for %s not ready within %.1f s; alert goes out without them", ",".join(tickers), timeout)
        return ()
    except Exception as exc:  # enrichment boundary: any price failure means "unavailable"
        log.warning("prices for %s unavailable (%s: %s)", ",".join(tickers), type(exc).__name__, exc)
        return ()
    found = tuple(quotes[t] for t in tickers if t in quotes)
    if not found:
        log.warning("no prices for %s (no data from the source)", ",".join(tickers))
    return found
