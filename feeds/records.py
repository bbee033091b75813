"""Typed records that travel between the ingestion stages (fetch -> parse -> classify -> cluster)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Direction = Literal["tightening", "easing", "neutral"]


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One configured feed."""

    name: str
    url: str
    interval_s: float = 300.0
    lang: str = "en"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Item:
    """One normalised feed entry: plain text, canonical link, UTC times."""

    key: str  # stable identity: guid, else canonical link, else hash of title
    feed: str
    url: str
    title: str
    summary: str
    published_at: datetime | None
    fetched_at: datetime
    lang: str

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.summary}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the classifier decided about one item, and why."""

    flag: bool
    score: float
    direction: Direction = "neutral"
    companies: tuple[str, ...] = ()
    tickers: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    reasons: tuple[str, ...] = field(default=())
