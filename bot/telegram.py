"""The Telegram sink: one outbox delivery per (message, chat), sent with a bare `telegram.Bot`.

Targets are the configured channels/groups (TELEGRAM_CHAT_IDS, every alert) and the subscribers whose
filters admit the alert and who are not muted. Sends go through the broadcast limiter (global + per chat).
Failures are translated for the outbox:

    RetryAfter (429)          → the chat pauses (and the global bucket, on a global flood); RetryableDelivery
    TimedOut, NetworkError    → RetryableDelivery (5xx, time-outs, connection lost)
    Forbidden (403)           → PermanentDelivery(unsubscribe=True); the subscriber is removed
    ChatMigrated              → the subscription follows to the new id and the message is sent there
    BadRequest "chat not found" → as Forbidden; other BadRequests → PermanentDelivery (a bug to look at)

An alert with a chart is one photo with the alert as its caption (one message per chat keeps a broadcast
fast); the uploaded file is reused by its file_id for every further chat.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from telegram import Bot, LinkPreviewOptions, ReplyParameters
from telegram import Message as TgMessage
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from bot.errors import PermanentDelivery, RetryableDelivery
from bot.filters import admits
from bot.ratelimit import BroadcastLimiter, ChatBusy
from bot.records import Message
from bot.subscribers import SubscriberStore
from bot.telegram_render import CAPTION_LIMIT, render_alert, render_reaction

log = logging.getLogger("newsbot.telegram")

Clock = Callable[[], datetime]
DEFAULT_CONCURRENCY = 32
BAD_TOKEN_RETRY_S = 300.0


def make_bot(token: str, base_url: str, pool_size: int = DEFAULT_CONCURRENCY) -> Bot:
    """A bare Bot for sending: its HTTP pool is as large as the sink's concurrency (PTB #3950)."""
    request = HTTPXRequest(connection_pool_size=pool_size, pool_timeout=10.0, read_timeout=15.0,
                           media_write_timeout=30.0)
    return Bot(token, base_url=base_url, request=request, get_updates_request=request)  # it never polls: one client


def retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after is a timedelta from PTB 22.2 (an int, with a deprecation warning, before opt-in)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def message_id_of(ref: str | None) -> int | None:
    """Refs are "chat:message_id"; the message id is what a reply needs."""
    if not ref:
        return None
    tail = ref.rpartition(":")[2]
    return int(tail) if tail.lstrip("-").isdigit() else None


class TelegramSink:
    """Delivers alerts and reactions to Telegram chats through the outbox."""

    name = "telegram"
    ordered = False  # chats are independent; the limiter keeps each chat's pace

    def __init__(self, bot: Bot, subscribers: SubscriberStore, limiter: BroadcastLimiter, clock: Clock,
                 chat_ids: Sequence[str] = (), max_concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self._bot = bot
        self._subscribers = subscribers
        self._limiter = limiter
        self._clock = clock
        self._chat_ids = tuple(dict.fromkeys(str(c) for c in chat_ids))
        self._moved: dict[str, str] = {}  # configured chats that became supergroups
        self._photo_ids: dict[str, str] = {}
        self._upload_lock = asyncio.Lock()
        self.max_concurrency = max_concurrency

    async def targets(self, message: Message) -> Sequence[str]:
        """The configured chats, then every subscriber (not muted) whose filters admit the alert."""
        now = self._clock()
        chosen = dict.fromkeys(self._chat_ids)
        for sub in await self._subscribers.all():
            if not sub.muted(now) and admits(sub.filters, message.alert):
                chosen.setdefault(sub.chat_id)
        return list(chosen)

    async def deliver(self, message: Message, target: str, reply_to: str | None) -> str | None:
        chat = self._moved.get(target, target)
        return await self._attempt(message, chat, reply_to, await self._silent(chat), may_follow=True)

    async def _silent(self, chat: str) -> bool:
        """Quiet hours: the alert arrives without a notification sound."""
        sub = await self._subscribers.get(chat)
        quiet = sub.filters.quiet if sub else None
        return quiet is not None and quiet.contains(self._clock())

    async def _attempt(self, message: Message, chat: str, reply_to: str | None, silent: bool,
                       may_follow: bool) -> str:
        try:
            await self._limiter.acquire(chat)
        except ChatBusy as exc:
            raise RetryableDelivery("chat rate limit", retry_after=exc.retry_after) from exc
        try:
            sent = await self._post(message, chat, reply_to, silent)
        except RetryAfter as exc:
            seconds = retry_seconds(exc)
            scope = "global" if self._limiter.flooded(chat, seconds) else "chat"
            raise RetryableDelivery(f"telegram flood control ({scope})", retry_after=seconds) from exc
        except ChatMigrated as exc:
            if not may_follow:
                raise PermanentDelivery(f"telegram: {chat} migrated twice") from exc
            new_chat = str(exc.new_chat_id)
            await self._follow(chat, new_chat)
            return await self._attempt(message, new_chat, reply_to, silent, may_follow=False)
        except (Forbidden, BadRequest, InvalidToken) as exc:
            raise await self._refusal(chat, exc) from exc
        except TelegramError as exc:  # NetworkError: time-outs, 5xx, connection errors; anything else new
            raise RetryableDelivery(f"telegram: {exc}") from exc
        return f"{chat}:{sent.message_id}"

    async def _refusal(self, chat: str, exc: TelegramError) -> RetryableDelivery | PermanentDelivery:
        """Translate a refusal; blocked users and vanished chats are unsubscribed."""
        if isinstance(exc, InvalidToken):
            log.error("telegram: the bot token was rejected; check TELEGRAM_BOT_TOKEN")
            return RetryableDelivery("telegram: token rejected", retry_after=BAD_TOKEN_RETRY_S)
        text = str(exc)
        gone = isinstance(exc, Forbidden) or "chat not found" in text.lower()
        if gone and chat in self._chat_ids:
            log.error("telegram: configured chat %s refuses messages (%s); fix TELEGRAM_CHAT_IDS", chat, text)
        elif gone and await self._subscribers.remove(chat):
            log.info("telegram: unsubscribed %s (%s)", chat, text)
        return PermanentDelivery(f"telegram: {text}", unsubscribe=gone)

    async def _follow(self, old: str, new: str) -> None:
        """A group became a supergroup: the subscription (or the configured chat) moves to the new id."""
        if await self._subscribers.move(old, new) is not None:
            log.info("telegram: subscriber %s migrated to %s", old, new)
        configured = old in self._chat_ids or old in self._moved.values()
        if configured:
            for key in [k for k, v in self._moved.items() if v == old] or [old]:
                self._moved[key] = new
            log.warning("telegram: chat %s migrated to %s; update TELEGRAM_CHAT_IDS", old, new)

    async def _post(self, message: Message, chat: str, reply_to: str | None, silent: bool) -> TgMessage:
        common: dict[str, Any] = {"chat_id": chat, "parse_mode": ParseMode.HTML, "disable_notification": silent}
        if message.kind == "reaction" and message.reaction is not None:
            reply_id = message_id_of(reply_to)
            reply = ReplyParameters(reply_id, allow_sending_without_reply=True) if reply_id else None
            chart = message.reaction.chart_path
            if chart:  # the chart of the moves around the story, as a reply to the alert
                caption = render_reaction(message.reaction, CAPTION_LIMIT)
                sent = await self._send_photo(chart, caption, {**common, "reply_parameters": reply})
                if sent is not None:
                    return sent
            return await self._bot.send_message(text=render_reaction(message.reaction), reply_parameters=reply,
                                                **common)
        return await self._bot.send_message(text=render_alert(message.alert), **common,
                                            link_preview_options=LinkPreviewOptions(is_disabled=True))

    async def _send_photo(self, chart: str, caption: str, common: dict[str, Any]) -> TgMessage | None:
        """Upload the chart once (the others wait for it), then send its file_id; None if there is no file."""
        file_id = self._photo_ids.get(chart)
        if file_id is None:
            async with self._upload_lock:
                file_id = self._photo_ids.get(chart)
                if file_id is None:
                    data = await asyncio.to_thread(_read_chart, chart)
                    if data is None:
                        return None
                    sent = await self._bot.send_photo(photo=data, caption=caption, **common)
                    if sent.photo:
                        self._photo_ids[chart] = sent.photo[-1].file_id
                    return sent
        return await self._bot.send_photo(photo=file_id, caption=caption, **common)

    async def notify(self, chat: str, html_text: str) -> bool:
        """Send one message directly (admin notices); False, logged, when it could not be sent."""
        try:
            await self._limiter.acquire(chat)
            await self._bot.send_message(chat_id=chat, text=html_text, parse_mode=ParseMode.HTML)
        except (TelegramError, ChatBusy) as exc:
            log.warning("telegram: notice to %s not sent: %s", chat, exc)
            return False
        return True


def _read_chart(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None
