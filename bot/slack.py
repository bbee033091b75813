"""The Slack sink: alerts as Block Kit messages to incoming webhooks, one target per webhook.

A webhook URL is a secret: targets are a short hash of the URL, and no URL ever reaches a log line, an error
or the outbox. Each webhook gets at most one message per second; a 429 holds that webhook for its Retry-After.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from bot.errors import PermanentDelivery, RetryableDelivery
from bot.records import Alert, Message, Reaction
from bot.render import (
    DIRECTION_LABEL,
    headline,
    pct,
    quote_line,
    reaction_line,
    reasons_line,
    render_text,
    source_line,
)

TEXT_LIMIT = 3000
HEADER_LIMIT = 150
FIELD_LIMIT = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
_SLACK_CODE = re.compile(r"[a-z_]{1,60}")
PERMANENT = {400: "invalid payload", 403: "action prohibited", 404: "webhook or channel not found",
             410: "channel archived"}


def escape(text: str) -> str:
    """Slack's three control characters, as its docs require for any text we did not write."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in … when cut; never cuts an escape such as &amp; in half."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def webhook_target(url: str) -> str:
    """A stable, non-secret name for a webhook: `webhook-` and 12 hex digits of its SHA-256."""
    return "webhook-" + hashlib.sha256(url.encode()).hexdigest()[:12]


def _mrkdwn(text: str, limit: int = TEXT_LIMIT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(text)]}


def alert_blocks(alert: Alert) -> list[dict[str, Any]]:
    """Header, summary, fields for tickers and moves, a context line with source and reasons, a story button."""
    verdict = alert.verdict
    label = DIRECTION_LABEL.get(verdict.direction, verdict.direction)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": clip(escape(headline(alert) or "Export-control news"), HEADER_LIMIT)}},
        _section(f"*Export control · {escape(label)}* · score {verdict.score:.2f}\n{escape(alert.item.summary)}"),
    ]
    fields = [_mrkdwn(f"*Tickers*\n{escape(' '.join(verdict.tickers) or 'none named')}", FIELD_LIMIT)]
    if verdict.products:
        fields.append(_mrkdwn(f"*Products*\n{escape(', '.join(verdict.products))}", FIELD_LIMIT))
    if alert.quotes:
        fields += [_mrkdwn(f"*{escape(q.ticker)}*\n{escape(quote_line(q))}", FIELD_LIMIT) for q in alert.quotes]
    else:
        fields.append(_mrkdwn("*Prices*\nunavailable right now; they follow in the reaction update", FIELD_LIMIT))
    blocks.append({"type": "section", "fields": fields[:MAX_FIELDS]})
    also = f" · also: {', '.join(s.feed for s in alert.sources)}" if alert.sources else ""
    blocks.append(_context(escape(f"{source_line(alert)}{also} · why: {reasons_line(alert)}")))
    if alert.item.url.startswith(("http://", "https://")) and len(alert.item.url) <= TEXT_LIMIT:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open the story"}, "url": alert.item.url}]})
    return blocks[:MAX_BLOCKS]


def reaction_blocks(reaction: Reaction) -> list[dict[str, Any]]:
    """A short follow-up: what moved since the alert, one field per ticker."""
    fields = [_mrkdwn(f"*{escape(t)}*\n{pct(m)}", FIELD_LIMIT) for t, m in reaction.moves] or [_mrkdwn("no prices")]
    return [
        _section(f"*Market reaction +{reaction.minutes}m* to “{escape(clip(reaction.title, 500))}”"),
        {"type": "section", "fields": fields[:MAX_FIELDS]},
    ]


def payload(message: Message) -> dict[str, Any]:
    """The webhook body: Block Kit blocks and the plain-text fallback Slack shows in notifications."""
    if message.kind == "reaction" and message.reaction is not None:
        return {"text": clip(escape(reaction_line(message.reaction)), TEXT_LIMIT),
                "blocks": reaction_blocks(message.reaction)}
    return {"text": clip(escape(render_text(message.alert)), TEXT_LIMIT), "blocks": alert_blocks(message.alert)}


class SlackSink:
    """Posts each message to every configured webhook, paced at `pace` seconds per webhook."""

    name = "slack"
    ordered = False

    def __init__(
        self,
        urls: Sequence[str],
        client: httpx.AsyncClient,
        *,
        pace: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._urls = {webhook_target(u): u for u in urls}
        self._client = client
        self._pace = pace
        self._monotonic = monotonic
        self._sleep = sleep
        self._locks = {t: asyncio.Lock() for t in self._urls}
        self._next_free = dict.fromkeys(self._urls, 0.0)
        self.max_concurrency = max(1, len(self._urls))

    async def targets(self, message: Message) -> Sequence[str]:
        return tuple(self._urls)

    async def deliver(self, message: Message, target: str, reply_to: str | None) -> str | None:
        url = self._urls.get(target)
        if url is None:
            raise PermanentDelivery(f"slack {target}: this webhook is no longer configured")
        async with self._locks[target]:
            wait = self._next_free[target] - self._monotonic()
            if wait > self._pace:  # held by a 429: let the outbox retry later instead of blocking the drain
                raise RetryableDelivery(f"slack {target}: rate limited", retry_after=wait)
            if wait > 0:
                await self._sleep(wait)
            try:
                await self._post(url, target, payload(message))
            finally:
                self._next_free[target] = max(self._next_free[target], self._monotonic() + self._pace)
        return None

    async def _post(self, url: str, target: str, body: dict[str, Any]) -> None:
        try:
            response = await self._client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise RetryableDelivery(f"slack {target}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:  # the library's message may carry the URL: name the error type only
            raise RetryableDelivery(f"slack {target}: connection failed ({type(exc).__name__})") from None
        self._check(response, target)

    def _check(self, response: httpx.Response, target: str) -> None:
        text = response.text.strip()
        # Slack answers with short codes (invalid_payload, no_service); anything else, say a proxy echoing the
        # request path with the webhook's secret in it, is not repeated into logs or the outbox.
        answer = text if _SLACK_CODE.fullmatch(text) else ""
        status = response.status_code
        if status == 429:
            retry_after = _seconds(response.headers.get("retry-after"))
            self._next_free[target] = self._monotonic() + (retry_after or self._pace)
            raise RetryableDelivery(f"slack {target}: 429 rate limited", retry_after=retry_after)
        if status >= 500:
            raise RetryableDelivery(f"slack {target}: server error {status} {answer}".rstrip())
        if status >= 400:
            meaning = PERMANENT.get(status, "rejected")
            raise PermanentDelivery(f"slack {target}: {status} {answer or meaning} ({meaning}); "
                                    "fix the webhook in SLACK_WEBHOOK_URLS")


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
