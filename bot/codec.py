"""Records to and from plain JSON-ready dicts: the outbox's storage form and the stream's wire form."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from bot.records import Alert, Message, Quote, Reaction, Source
from feeds.records import Item, Verdict

SCHEMA_VERSION = 1


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def quote_to_dict(quote: Quote) -> dict[str, Any]:
    data = asdict(quote)
    data["as_of"] = _time(quote.as_of)
    return data


def quote_from_dict(data: dict[str, Any]) -> Quote:
    return Quote(**{**data, "as_of": _parse_time(data.get("as_of"))})


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """Full storage form of an alert (round-trips through `alert_from_dict`)."""
    item = asdict(alert.item)
    item["published_at"] = _time(alert.item.published_at)
    item["fetched_at"] = _time(alert.item.fetched_at)
    return {
        "id": alert.id,
        "cluster_id": alert.cluster_id,
        "item": item,
        "verdict": asdict(alert.verdict),
        "quotes": [quote_to_dict(q) for q in alert.quotes],
        "detected_at": _time(alert.detected_at),
        "novelty": alert.novelty,
        "sources": [{**asdict(s), "published_at": _time(s.published_at)} for s in alert.sources],
    }


def alert_from_dict(data: dict[str, Any]) -> Alert:
    item = data["item"]
    verdict = data["verdict"]
    return Alert(
        id=data["id"],
        cluster_id=data["cluster_id"],
        item=Item(**{**item, "published_at": _parse_time(item["published_at"]),
                     "fetched_at": _parse_time(item["fetched_at"])}),
        verdict=Verdict(**_tuples(verdict)),
        quotes=tuple(quote_from_dict(q) for q in data["quotes"]),
        detected_at=_parse_time(data["detected_at"]),  # type: ignore[arg-type]
        novelty=data.get("novelty", 1.0),
        sources=tuple(Source(**{**s, "published_at": _parse_time(s["published_at"])}) for s in data["sources"]),
    )


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to the tuples the frozen records hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def reaction_to_dict(reaction: Reaction) -> dict[str, Any]:
    return {
        "alert_id": reaction.alert_id,
        "minutes": reaction.minutes,
        "title": reaction.title,
        "moves": [list(m) for m in reaction.moves],
        "quotes": [quote_to_dict(q) for q in reaction.quotes],
        "as_of": _time(reaction.as_of),
        "chart_path": reaction.chart_path,
    }


def reaction_from_dict(data: dict[str, Any]) -> Reaction:
    return Reaction(
        alert_id=data["alert_id"],
        minutes=data["minutes"],
        title=data["title"],
        moves=tuple((t, m) for t, m in data["moves"]),
        quotes=tuple(quote_from_dict(q) for q in data["quotes"]),
        as_of=_parse_time(data["as_of"]),  # type: ignore[arg-type]
        chart_path=data.get("chart_path"),
    )


def message_to_dict(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "kind": message.kind,
        "alert_id": message.alert_id,
        "alert": alert_to_dict(message.alert),
        "reaction": reaction_to_dict(message.reaction) if message.reaction else None,
    }


def message_from_dict(data: dict[str, Any]) -> Message:
    return Message(
        id=data["id"],
        kind=data["kind"],
        alert_id=data["alert_id"],
        alert=alert_from_dict(data["alert"]),
        reaction=reaction_from_dict(data["reaction"]) if data.get("reaction") else None,
    )


def stream_alert(alert: Alert) -> dict[str, Any]:
    """The binding stream form of an alert (DESIGN.md, docs/alert.schema.json)."""
    item, verdict = alert.item, alert.verdict
    return {
        "schema": SCHEMA_VERSION,
        "kind": "alert",
        "id": alert.id,
        "cluster_id": alert.cluster_id,
        "detected_at": _time(alert.detected_at),
        "published_at": _time(item.published_at),
        "source": item.feed,
        "url": item.url,
        "title": item.title,
        "summary": item.summary,
        "lang": item.lang,
        "score": round(verdict.score, 4),
        "direction": verdict.direction,
        "novelty": alert.novelty,
        "companies": list(verdict.companies),
        "tickers": list(verdict.tickers),
        "products": list(verdict.products),
        "reasons": list(verdict.reasons),
        "quotes": [_stream_quote(q) for q in alert.quotes],
        "sources": [{"source": s.feed, "url": s.url, "title": s.title, "lang": s.lang} for s in alert.sources],
    }


def stream_reaction(message_id: str, reaction: Reaction) -> dict[str, Any]:
    """The stream form of a market-reaction follow-up (`kind` "reaction", docs/alert.schema.json)."""
    return {
        "schema": SCHEMA_VERSION,
        "kind": "reaction",
        "id": message_id,
        "alert_id": reaction.alert_id,
        "minutes": reaction.minutes,
        "title": reaction.title,
        "moves": [{"ticker": t, "change_pct": m} for t, m in reaction.moves],
        "quotes": [_stream_quote(q) for q in reaction.quotes],
        "as_of": _time(reaction.as_of),
    }


def stream_entry(message: Message) -> dict[str, Any]:
    """What the stream carries for one outbox message: an alert, or a reaction to one."""
    if message.kind == "reaction" and message.reaction is not None:
        return stream_reaction(message.id, message.reaction)
    return stream_alert(message.alert)


def _stream_quote(quote: Quote) -> dict[str, Any]:
    return {
        "ticker": quote.ticker,
        "price": quote.price,
        "change_1d_pct": quote.change_1d_pct,
        "change_15m_pct": quote.change_15m_pct,
        "change_60m_pct": quote.change_60m_pct,
        "as_of": _time(quote.as_of),
        "market_state": quote.market_state,
        "stale": quote.stale,
    }
