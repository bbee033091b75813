"""The bot's commands: one small handler each. Replies are plain words; feed text is escaped."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.filters import FilterError, change, describe, parse_duration
from bot.store import StateStore
from bot.subscribers import Subscriber, SubscriberStore
from bot.telegram_render import esc, render_alert

log = logging.getLogger("newsbot.telegram")

Clock = Callable[[], datetime]
Context = ContextTypes.DEFAULT_TYPE
LATEST_WINDOW = timedelta(days=7)

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "subscribe to export-control alerts"),
    ("stop", "unsubscribe"),
    ("filter", "show or change your filters"),
    ("latest", "the last alerts"),
    ("status", "feed health and your subscription"),
    ("mute", "pause alerts, e.g. /mute 2h (/mute off)"),
    ("help", "how this bot works"),
)

HELP = """I send alerts on export-control news about chipmakers (Nvidia, AMD, ASML...), with NVDA/AMD moves.

/start subscribe · /stop unsubscribe
/filter show your filters; change them with plain words:
  /filter tickers NVDA AMD
  /filter direction tightening (or easing, neutral)
  /filter score 0.7
  /filter lang en zh
  /filter include huawei · /filter exclude rumour
  /filter quiet 22:00-07:00 (UTC; alerts then arrive silently)
  /filter tickers any (clears one) · /filter reset (clears all)
/latest the last alerts · /status feed health · /mute 2h (/mute off)"""

BUTTONS = InlineKeyboardMarkup([
    [InlineKeyboardButton("Tightening only", callback_data="f:direction:tightening"),
     InlineKeyboardButton("Easing only", callback_data="f:direction:easing"),
     InlineKeyboardButton("Any direction", callback_data="f:direction:any")],
    [InlineKeyboardButton("Score ≥ 0.5", callback_data="f:score:0.5"),
     InlineKeyboardButton("Score ≥ 0.8", callback_data="f:score:0.8"),
     InlineKeyboardButton("Reset all", callback_data="f:reset")],
])


def _chat_id(update: Update) -> str:
    assert update.effective_chat is not None
    return str(update.effective_chat.id)


async def _reply(update: Update, text: str, html: bool = False, **kw: object) -> None:
    if update.effective_message is not None:
        await update.effective_message.reply_text(text, parse_mode=ParseMode.HTML if html else None,
                                                  **kw)  # type: ignore[arg-type]


class Commands:
    """Handlers over the subscriber store and the state store."""

    def __init__(self, subscribers: SubscriberStore, store: StateStore, clock: Clock,
                 admin_ids: Sequence[int] = (), sink_name: str = "telegram",
                 wake: Callable[[], None] = lambda: None) -> None:
        self._subs = subscribers
        self._store = store
        self._clock = clock
        self._admins = frozenset(admin_ids)
        self._sink = sink_name
        self._wake = wake  # the outbox delivers the new subscriber's latest alert now, not at its next look

    async def start(self, update: Update, context: Context) -> None:
        """Subscribe this chat; the latest alert follows at once through the outbox."""
        chat, now = _chat_id(update), self._clock()
        kind = update.effective_chat.type if update.effective_chat else "private"
        added = await self._subs.add(Subscriber(chat, str(kind), now))
        latest = await self._store.recent_alerts(now - LATEST_WINDOW, limit=1)
        if latest:
            await self._store.add_targets(latest[0].id, [(self._sink, chat)], now)
            self._wake()
        await _reply(update, ("Subscribed. " if added else "You are already subscribed. ") + HELP)

    async def stop(self, update: Update, context: Context) -> None:
        """Unsubscribe this chat."""
        removed = await self._subs.remove(_chat_id(update))
        await _reply(update, "Unsubscribed. /start to come back." if removed else "You were not subscribed.")

    async def help(self, update: Update, context: Context) -> None:
        """What the bot does and how to filter."""
        await _reply(update, HELP)

    async def filter(self, update: Update, context: Context) -> None:
        """Show the filters (with buttons), or change one: /filter FIELD VALUES."""
        sub = await self._subs.get(_chat_id(update))
        if sub is None:
            await _reply(update, "Subscribe first with /start.")
            return
        args = list(context.args or [])
        if args:
            try:
                sub = replace(sub, filters=change(sub.filters, args))
            except FilterError as exc:
                await _reply(update, f"{exc}. /help shows examples.")
                return
            await self._subs.save(sub)
        await _reply(update, "Your filters:\n" + describe(sub.filters), reply_markup=BUTTONS)

    async def button(self, update: Update, context: Context) -> None:
        """An inline filter button: f:FIELD:VALUE."""
        query = update.callback_query
        if query is None or not query.data or query.message is None:
            return
        sub = await self._subs.get(str(query.message.chat.id))
        if sub is None:
            await query.answer("Subscribe first with /start.")
            return
        sub = replace(sub, filters=change(sub.filters, query.data.split(":")[1:]))
        await self._subs.save(sub)
        await query.answer("Filters saved")
        await query.edit_message_text("Your filters:\n" + describe(sub.filters), reply_markup=BUTTONS)

    async def latest(self, update: Update, context: Context) -> None:
        """The last three alerts."""
        alerts = await self._store.recent_alerts(self._clock() - LATEST_WINDOW, limit=3)
        if not alerts:
            await _reply(update, "No alerts in the last 7 days.")
        for alert in reversed(alerts):
            await _reply(update, render_alert(alert), html=True)

    async def status(self, update: Update, context: Context) -> None:
        """Feed health, last poll, alerts today, and this chat's subscription."""
        now = self._clock()
        states = await self._store.feed_states()
        failing = sum(1 for s in states.values() if s.health.failures)
        polled = [s.health.last_polled_at for s in states.values() if s.health.last_polled_at]
        today = await self._store.recent_alerts(now.replace(hour=0, minute=0, second=0, microsecond=0))
        sub = await self._subs.get(_chat_id(update))
        mine = "not subscribed (/start)" if sub is None else (
            f"muted until {sub.muted_until:%Y-%m-%d %H:%M} UTC" if sub.muted(now) else "subscribed")
        last = f"{max(polled):%H:%M:%S} UTC" if polled else "never"
        await _reply(update, f"Feeds: {len(states)} ({failing} failing) · last poll {last}\n"
                             f"Alerts today: {len(today)}\nYou: {mine}")

    async def mute(self, update: Update, context: Context) -> None:
        """/mute 2h: no alerts for that long; /mute off."""
        sub = await self._subs.get(_chat_id(update))
        if sub is None:
            await _reply(update, "Subscribe first with /start.")
            return
        arg = (context.args or ["1h"])[0]
        if arg.lower() in {"off", "0"}:
            await self._subs.save(replace(sub, muted_until=None))
            await _reply(update, "Alerts are back on.")
            return
        try:
            until = self._clock() + parse_duration(arg)
        except FilterError as exc:
            await _reply(update, str(exc))
            return
        await self._subs.save(replace(sub, muted_until=until))
        await _reply(update, f"Muted until {until:%Y-%m-%d %H:%M} UTC. /mute off to resume.")

    def _admin(self, update: Update) -> bool:
        return update.effective_user is not None and update.effective_user.id in self._admins

    async def stats(self, update: Update, context: Context) -> None:
        """Admins: subscribers, outbox depth, parked deliveries, alerts today."""
        if not self._admin(update):
            await _reply(update, "That command is for admins.")
            return
        now = self._clock()
        today = await self._store.recent_alerts(now.replace(hour=0, minute=0, second=0, microsecond=0))
        parked = await self._store.deliveries("parked")
        await _reply(update, f"Subscribers: {await self._subs.count()}\nOutbox pending: "
                             f"{await self._store.outbox_depth()} · parked: {len(parked)}\nAlerts today: {len(today)}")

    async def feeds(self, update: Update, context: Context) -> None:
        """Admins: every feed's health."""
        if not self._admin(update):
            await _reply(update, "That command is for admins.")
            return
        states = await self._store.feed_states()
        lines = [f"{'FAIL' if s.health.failures else 'ok'} <b>{esc(name)}</b> · {s.health.items} items"
                 + (f" · {esc((s.health.last_error or '')[:80])}" if s.health.failures else "")
                 for name, s in sorted(states.items())]
        await _reply(update, "\n".join(lines[:25]) or "No feeds polled yet.", html=True)
