"""Alerts and reactions as Telegram HTML: every piece of feed text escaped, cut to Telegram's limits.

Lengths are counted in UTF-16 code units (how Telegram counts). Text is cut before it is escaped and marked
up, one piece at a time, so a cut never splits a tag or an entity: the summary gives way first, then the
reasons, then the headline; last, whole optional lines are dropped.
"""

from __future__ import annotations

import html

from bot.records import Alert, Reaction
from bot.render import DIRECTION_LABEL, headline, hhmm, pct, quote_line

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
ELLIPSIS = "…"


def tg_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def clip(text: str, budget: int) -> str:
    """The escaped form of the longest prefix of `text` whose escaped length fits `budget` (with "…")."""
    escaped = esc(text)
    if tg_len(escaped) <= budget:
        return escaped
    out: list[str] = []
    used = tg_len(ELLIPSIS)
    for char in text:
        piece = esc(char)
        size = tg_len(piece)
        if used + size > budget:
            break
        out.append(piece)
        used += size
    return "".join(out).rstrip() + ELLIPSIS


def _direction_line(alert: Alert) -> str:
    verdict = alert.verdict
    label = DIRECTION_LABEL.get(verdict.direction, verdict.direction)
    extras = [f"score {verdict.score:.2f}"]
    if verdict.products:
        extras.append(", ".join(verdict.products))
    if alert.novelty < 0.5:
        extras.append("follow-up story")
    return f"🚨 <b>Export control · {esc(label)}</b> · {esc(' · '.join(extras))}"


def _quote_lines(alert: Alert) -> list[str]:
    if not alert.quotes:
        return ["<i>prices unavailable right now; they follow in the reaction update</i>"]
    return [f"<code>{esc(quote_line(q))}</code>" for q in alert.quotes]


def _source_line(alert: Alert) -> str:
    item = alert.item
    also = f" · also {', '.join(s.feed for s in alert.sources[:5])}" if alert.sources else ""
    return f"<i>{esc(item.feed)} ({esc(item.lang)}) · {esc(hhmm(item.published_at))}{esc(also)}</i>"


def _link_line(alert: Alert) -> str:
    url = alert.item.url
    if not url.startswith(("http://", "https://")):
        return ""
    return f'<a href="{esc(url)}">Read the story</a>'


def _alert_lines(alert: Alert, budgets: dict[str, int]) -> list[str]:
    tickers = " ".join(alert.verdict.tickers)
    summary = clip(alert.item.summary, budgets["summary"]) if alert.item.summary and budgets["summary"] else ""
    reasons = "; ".join(alert.verdict.reasons) or "no reasons recorded"
    lines = [
        _direction_line(alert),
        f"<b>{clip(headline(alert), budgets['headline'])}</b>",
        _source_line(alert),
        summary,
        f"Tickers: {esc(tickers)}" if tickers else "",
        *_quote_lines(alert),
        f"<i>Why:</i> {clip(reasons, budgets['reasons'])}",
        _link_line(alert),
    ]
    return [line for line in lines if line]


def render_alert(alert: Alert, limit: int = MESSAGE_LIMIT) -> str:
    """The alert message in HTML parse mode, at most `limit` UTF-16 units long."""
    budgets = {"headline": 400, "summary": 600 if limit > CAPTION_LIMIT else 200, "reasons": 800}
    lines: list[str] = []
    for shrink in ("summary", "reasons", "headline", "summary", "reasons", "headline"):
        lines = _alert_lines(alert, budgets)
        text = "\n".join(lines)
        if tg_len(text) <= limit:
            return text
        budgets[shrink] //= 4
    return _drop_lines(alert, lines, limit)


def _drop_lines(alert: Alert, lines: list[str], limit: int) -> str:
    """Last resort: drop whole lines from the end (never the first two) until it fits."""
    while len(lines) > 2 and tg_len("\n".join(lines)) > limit:
        lines.pop()
    text = "\n".join(lines)
    return text if tg_len(text) <= limit else clip(headline(alert), limit)


def render_reaction(reaction: Reaction, limit: int = MESSAGE_LIMIT) -> str:
    """The +15/+60 minute follow-up, sent as a reply to the alert."""
    moves = " · ".join(f"{t} {pct(m)}" for t, m in reaction.moves) or "no prices"
    head = f"📈 <b>Market reaction +{reaction.minutes}m</b>\n<code>{esc(moves)}</code>\n"
    return head + clip(reaction.title, max(0, limit - tg_len(head)))


def render_notice(title: str, lines: list[str], limit: int = MESSAGE_LIMIT) -> str:
    """An admin notice (feed failures) or a command reply: a bold title and plain lines."""
    head = f"<b>{esc(title)}</b>"
    body = "\n".join(lines)
    return head + ("\n" + clip(body, limit - tg_len(head) - 1) if body else "")

