"""Record factories shared by the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.records import Alert, Message, Quote
from feeds.records import Item, Verdict

T0 = datetime(2025, 7, 15, 3, 10, tzinfo=UTC)


def make_item(key: str = "k1", title: str = "US tightens chip export controls", **kw: object) -> Item:
    fields: dict[str, object] = dict(key=key, feed="test-feed", url=f"https://news.example/{key}", title=title,
                                     summary="The Commerce Department added chipmakers to the Entity List.",
                                     published_at=T0 - timedelta(minutes=5), fetched_at=T0, lang="en")
    fields.update(kw)
    return Item(**fields)  # type: ignore[arg-type]


def make_alert(ident: str = "a_1", **kw: object) -> Alert:
    item = kw.pop("item", None) or make_item(ident)
    verdict = Verdict(True, 0.9, "tightening", ("Nvidia",), ("NVDA",), ("H20",), ("control: export licence",))
    quotes = (Quote("NVDA", 170.0, 165.0, 3.03, 0.1, 0.5, T0, "pre"),)
    fields: dict[str, object] = dict(id=ident, cluster_id=ident, item=item, verdict=verdict, quotes=quotes,
                                     detected_at=T0)
    fields.update(kw)
    return Alert(**fields)  # type: ignore[arg-type]


def make_message(ident: str = "a_1") -> Message:
    return Message(ident, "alert", ident, make_alert(ident))
