"""Typed records of the service side: quotes, alerts and the messages the outbox delivers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from feeds.records import Item, Verdict

MarketState = Literal["pre", "regular", "post", "closed", "unknown"]
MessageKind = Literal["alert", "reaction"]


@dataclass(frozen=True, slots=True)
class Quote:
    """One ticker's recent move. Percentages are None when unknown; `stale` marks cached data past its time."""

    ticker: str
    price: float | None
    prev_close: float | None
    change_1d_pct: float | None
    change_15m_pct: float | None
    change_60m_pct: float | None
    as_of: datetime | None
    market_state: MarketState = "unknown"
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Source:
    """Another outlet that carried the same story."""

    feed: str
    url: str
    title: str
    lang: str
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class Alert:
    """A flagged story, enriched and ready for delivery. `quotes` is empty when prices were unavailable."""

    id: str
    cluster_id: str
    item: Item
    verdict: Verdict
    quotes: tuple[Quote, ...]
    detected_at: datetime
    novelty: float = 1.0
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True, slots=True)
class Reaction:
    """How the quoted tickers moved since an alert went out (the +15 / +60 minute follow-up)."""

    alert_id: str
    minutes: int
    title: str
    moves: tuple[tuple[str, float | None], ...]  # (ticker, % change since the alert)
    quotes: tuple[Quote, ...]
    as_of: datetime
    chart_path: str | None = None  # PNG of the intraday moves around the story, when one could be drawn


@dataclass(frozen=True, slots=True)
class Message:
    """What the outbox stores and the sinks deliver: an alert or a reaction follow-up."""

    id: str
    kind: MessageKind
    alert_id: str
    alert: Alert
    reaction: Reaction | None = None
