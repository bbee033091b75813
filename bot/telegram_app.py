"""The Telegram bot front: the python-telegram-bot Application (commands) and the wiring of the sink.

`build_telegram(settings, store, stack, clock)` returns the sink (deliveries through the outbox, a bare Bot)
and the service (the Application: long polling by default, a webhook as an option, and the admin watch on
feed health). Only one instance may poll a token; every instance may deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from telegram import BotCommand
from telegram.error import InvalidToken, NetworkError
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.errors import ConfigError
from bot.ratelimit import BroadcastLimiter, Limits
from bot.settings import Settings, webhook_secrets
from bot.store import StateStore
from bot.subscribers import RedisSubscribers, SqliteSubscribers, SubscriberStore
from bot.telegram import DEFAULT_CONCURRENCY, TelegramSink, make_bot
from bot.telegram_commands import COMMANDS, Commands
from bot.telegram_watch import FeedWatch

log = logging.getLogger("newsbot.telegram")

Clock = Callable[[], datetime]
RETRY_START_S = 5.0


@dataclass(frozen=True, slots=True)
class BotConfig:
    """How the Application reaches Telegram and who may run admin commands. `repr` hides the token."""

    token: str
    base_url: str
    admin_ids: tuple[int, ...] = ()
    mode: str = "polling"  # or "webhook"
    webhook_url: str = ""
    webhook_port: int = 8443
    webhook_listen: str = "0.0.0.0"  # all interfaces in production; tests bind loopback
    poll_timeout: float = 10.0
    watch_interval: float = 60.0

    def __repr__(self) -> str:
        return f"BotConfig(base_url={self.base_url!r}, mode={self.mode!r}, admins={len(self.admin_ids)})"


class TelegramService:
    """Runs the Application (commands) and the feed-health watch for the admins; `start`/`stop` by app.serve."""

    leader_lease = "telegram-poller"  # one getUpdates poller per token: with several instances, one runs this

    def __init__(self, config: BotConfig, commands: Commands, watch: FeedWatch) -> None:
        self._config = config
        self._commands = commands
        self._watch = watch
        self._app: Application | None = None  # type: ignore[type-arg]
        self._retry: asyncio.Task[None] | None = None

    def build(self) -> Application:  # type: ignore[type-arg]
        app = ApplicationBuilder().token(self._config.token).base_url(self._config.base_url).build()
        c = self._commands
        handlers = {"start": c.start, "stop": c.stop, "help": c.help, "filter": c.filter, "latest": c.latest,
                    "status": c.status, "mute": c.mute, "stats": c.stats, "feeds": c.feeds}
        for name, callback in handlers.items():
            app.add_handler(CommandHandler(name, callback))
        app.add_handler(CallbackQueryHandler(c.button, pattern=r"^f:"))
        app.add_error_handler(_on_error)
        return app

    async def start(self) -> None:
        """Answer commands; if the Bot API does not answer now, keep trying in the background."""
        self._watch.start(self._config.watch_interval)
        app = self._app = self.build()
        try:
            await self._run(app)
        except NetworkError as exc:  # TimedOut too; deliveries retry through the outbox meanwhile
            log.warning("telegram: Bot API unreachable (%s); commands start once it answers", exc)
            self._retry = asyncio.create_task(self._run_later(app), name="telegram-start")

    async def _run(self, app: Application) -> None:  # type: ignore[type-arg]
        try:
            await app.initialize()
        except InvalidToken:
            raise ConfigError(["TELEGRAM_BOT_TOKEN: rejected by the Bot API"]) from None
        await app.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
        if app.updater is not None and not app.updater.running:
            if self._config.mode == "webhook":
                await self._start_webhook(app)
            else:
                await app.updater.start_polling(timeout=int(self._config.poll_timeout),
                                                allowed_updates=["message", "callback_query"])
        await app.start()
        log.info("telegram: bot @%s answering commands (%s)", app.bot.username, self._config.mode)

    async def _run_later(self, app: Application) -> None:  # type: ignore[type-arg]
        delay = RETRY_START_S
        while True:
            await asyncio.sleep(delay)
            try:
                await self._run(app)
                return
            except NetworkError as exc:
                delay = min(delay * 2, 300.0)
                log.warning("telegram: Bot API still unreachable (%s); next try in %.0fs", exc, delay)
            except ConfigError as exc:
                log.error("telegram: %s", exc)
                return

    async def _start_webhook(self, app: Application) -> None:  # type: ignore[type-arg]
        """Serve Telegram's posts at a path and secret header derived from the token, and register that URL."""
        if importlib.util.find_spec("tornado") is None:
            raise ConfigError(["telegram_mode: webhook needs python-telegram-bot[webhooks] (tornado) installed"])
        if not self._config.webhook_url:
            raise ConfigError(["TELEGRAM_WEBHOOK_URL: needed in webhook mode (the public address Telegram posts to)"])
        path, secret_token = webhook_secrets(self._config.token)
        public = self._config.webhook_url.rstrip("/")
        assert app.updater is not None  # served at the public URL's path too, as a proxy passes it on unchanged
        await app.updater.start_webhook(listen=self._config.webhook_listen, port=self._config.webhook_port,
                                        url_path=f"{urlsplit(public).path}/{path}", webhook_url=f"{public}/{path}",
                                        secret_token=secret_token, allowed_updates=["message", "callback_query"])

    async def stop(self) -> None:
        await self._watch.stop()
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
            self._retry = None
        app, self._app = self._app, None
        if app is None:
            return
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        await app.bot.shutdown()  # closes the HTTP clients also when initialize() failed half-way


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one error boundary of the command handlers."""
    log.error("telegram: handler failed: %s", context.error, exc_info=context.error)


def limits_from(settings: Settings) -> Limits:
    return Limits(global_rate=max(settings.telegram_rate, 0.1))


async def build_telegram(
    settings: Settings, store: StateStore, stack: AsyncExitStack, clock: Clock,
    subscribers: SubscriberStore | None = None, limiter: BroadcastLimiter | None = None,
    wake: Callable[[], None] = lambda: None,
) -> tuple[TelegramSink, TelegramService]:
    """The sink and the service from settings; the Redis subscriber store when REDIS_URL is set."""
    assert settings.telegram_bot_token, "build_telegram needs TELEGRAM_BOT_TOKEN"
    if subscribers is None:
        subscribers = (RedisSubscribers.from_url(settings.redis_url) if settings.redis_url
                       else SqliteSubscribers(settings.db))
        stack.push_async_callback(subscribers.close)
    bot = make_bot(settings.telegram_bot_token, settings.telegram_api_base_url, DEFAULT_CONCURRENCY)
    stack.push_async_callback(bot.request.shutdown)
    sink = TelegramSink(bot, subscribers, limiter or BroadcastLimiter(limits_from(settings)), clock,
                        settings.telegram_chat_ids, DEFAULT_CONCURRENCY)
    config = BotConfig(settings.telegram_bot_token, settings.telegram_api_base_url, settings.telegram_admin_ids,
                       settings.telegram_mode, settings.telegram_webhook_url, settings.telegram_webhook_port,
                       settings.telegram_webhook_listen)
    commands = Commands(subscribers, store, clock, config.admin_ids, wake=wake)
    watch = FeedWatch(store, sink, config.admin_ids, clock)
    return sink, TelegramService(config, commands, watch)
