"""Alert text pieces shared by every sink, and the plain-text rendering the console prints.

Sinks with markup (Telegram HTML, Slack mrkdwn) escape each piece themselves; these helpers return plain text.
"""

from __future__ import annotations

from datetime import datetime

from bot.records import Alert, Quote, Reaction

DIRECTION_LABEL = {"tightening": "TIGHTENING ▼", "easing": "EASING ▲", "neutral": "NEUTRAL ■"}
MARKET_STATE_LABEL = {"pre": "pre-market", "regular": "", "post": "after hours", "closed": "market closed",
                      "unknown": ""}


def pct(value: float | None) -> str:
    """+1.23% / -0.40% / n/a."""
    return "n/a" if value is None else f"{value:+.2f}%"


def hhmm(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else "time unknown"


def quote_line(quote: Quote) -> str:
    """NVDA 171.20 +4.52% today · 15m +0.31% · 60m +1.10% (pre-market)."""
    if quote.price is None:
        return f"{quote.ticker} no price"
    state = MARKET_STATE_LABEL.get(quote.market_state, "")
    extras = [state] if state else []
    if quote.stale:
        extras.append("stale")
    tail = f" ({', '.join(extras)})" if extras else ""
    return (f"{quote.ticker} {quote.price:,.2f} {pct(quote.change_1d_pct)} today · 15m {pct(quote.change_15m_pct)}"
            f" · 60m {pct(quote.change_60m_pct)}{tail}")


def quotes_block(alert: Alert) -> list[str]:
    if not alert.quotes:
        return ["prices unavailable right now; they follow in the reaction update"]
    return [quote_line(q) for q in alert.quotes]


def headline(alert: Alert) -> str:
    return alert.item.title or alert.item.summary[:120]


def tag_line(alert: Alert) -> str:
    """EXPORT CONTROL · EASING ▲ · score 0.91 · NVDA AMD · H20."""
    verdict = alert.verdict
    parts = ["EXPORT CONTROL", DIRECTION_LABEL.get(verdict.direction, verdict.direction),
             f"score {verdict.score:.2f}"]
    if verdict.tickers:
        parts.append(" ".join(verdict.tickers))
    if verdict.products:
        parts.append(", ".join(verdict.products))
    if alert.novelty < 0.5:
        parts.append("follow-up story")
    return " · ".join(parts)


def source_line(alert: Alert) -> str:
    item = alert.item
    return f"{item.feed} ({item.lang}) · published {hhmm(item.published_at)}"


def reasons_line(alert: Alert, limit: int = 6) -> str:
    return "; ".join(alert.verdict.reasons[:limit]) or "no reasons recorded"


def render_text(alert: Alert) -> str:
    """The console form of an alert."""
    lines = [f"[ALERT] {tag_line(alert)}", headline(alert), source_line(alert), *quotes_block(alert),
             f"why: {reasons_line(alert)}"]
    if alert.sources:
        lines.append("also: " + ", ".join(s.feed for s in alert.sources))
    if alert.item.url:
        lines.append(alert.item.url)
    return "\n".join(lines)


def reaction_line(reaction: Reaction) -> str:
    """Market reaction +15m to "headline": NVDA +0.80% · AMD -0.20%."""
    moves = " · ".join(f"{t} {pct(m)}" for t, m in reaction.moves) or "no prices"
    return f"Market reaction +{reaction.minutes}m to \"{reaction.title}\": {moves}"


def render_reaction_text(reaction: Reaction) -> str:
    chart = f"\nchart: {reaction.chart_path}" if reaction.chart_path else ""
    return f"[REACTION] {reaction_line(reaction)}{chart}"
