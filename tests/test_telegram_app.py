"""The bot's commands through real long polling (and a real webhook) against the stand-in Bot API, and the admin
feed watch."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from bot.app import utc_now
from bot.errors import ConfigError
from bot.outbox import Outbox
from bot.records import Message
from bot.settings import Settings, webhook_secrets
from bot.sinks import build_outputs
from bot.store import SqliteStore
from bot.telegram_app import BotConfig, TelegramService
from bot.telegram_commands import Commands
from bot.telegram_watch import FeedWatch
from feeds.health import FeedHealth, FeedState
from tests.factories import make_alert
from tests.servers.botapi import TOKEN, BotApi, Sent
from tests.telegram_kit import Kit, make_kit

ADMIN = 7


@pytest.fixture
async def kit(api: BotApi, tmp_path: Path) -> AsyncIterator[Kit]:
    kit = make_kit(api, tmp_path)
    yield kit
    await kit.close()


@pytest.fixture
async def service(kit: Kit, api: BotApi) -> AsyncIterator[TelegramService]:
    config = BotConfig(TOKEN, api.base_url, admin_ids=(ADMIN,), poll_timeout=1)
    commands = Commands(kit.subs, kit.store, kit.clock, config.admin_ids)
    service = TelegramService(config, commands, FeedWatch(kit.store, kit.sink, config.admin_ids, kit.clock))
    await service.start()
    yield service
    await service.stop()


async def reply_to(api: BotApi, chat: int, text: str, count: int = 1, user: int | None = None) -> list[Sent]:
    """Send a command as a user and wait (with a deadline) for the bot's replies in that chat."""
    before = len(api.to(chat))
    api.push_command(chat, text, user_id=user)
    async with asyncio.timeout(5):
        while len(api.to(chat)) < before + count:
            await asyncio.to_thread(api.wait_sent, len(api.sent) + 1, 0.2)
    return api.to(chat)[before:]


class TestSubscribe:
    async def test_start_then_an_alert_arrives(self, kit: Kit, api: BotApi, service: TelegramService) -> None:
        """/start subscribes, the latest alert follows at once, and the next alert arrives too."""
        await kit.outbox.enqueue(Message("a_1", "alert", "a_1", make_alert("a_1")))
        [welcome] = await reply_to(api, 42, "/start")
        assert welcome.text.startswith("Subscribed.")
        await kit.outbox.drain()
        await kit.outbox.enqueue(Message("a_2", "alert", "a_2", make_alert("a_2")))
        await kit.outbox.drain()
        alerts = [s for s in api.to(42) if s.text.startswith("🚨")]
        assert len(alerts) == 2

    async def test_stop_unsubscribes(self, kit: Kit, api: BotApi, service: TelegramService) -> None:
        """After /stop no further alert reaches the chat."""
        await reply_to(api, 42, "/start")
        await reply_to(api, 42, "/stop")
        await kit.outbox.enqueue(Message("a_1", "alert", "a_1", make_alert("a_1")))
        await kit.outbox.drain()
        assert not [s for s in api.to(42) if s.text.startswith("🚨")]

    async def test_commands_are_registered(self, api: BotApi, service: TelegramService) -> None:
        """setMyCommands lists the public commands."""
        assert {c["command"] for c in api.commands} >= {"start", "stop", "filter", "latest", "status", "mute"}


class TestFilterCommand:
    async def test_filter_in_plain_words_is_saved(self, kit: Kit, api: BotApi, service: TelegramService) -> None:
        """/filter tickers AMD changes the stored filter and replies with all filters in plain words."""
        await reply_to(api, 42, "/start")
        [answer] = await reply_to(api, 42, "/filter tickers amd")
        assert "tickers: AMD" in answer.text
        sub = await kit.subs.get("42")
        assert sub is not None and sub.filters.tickers == ("AMD",)

    async def test_bad_filter_is_explained(self, api: BotApi, service: TelegramService) -> None:
        """A value that cannot be understood gets an explanation, not a silent change."""
        await reply_to(api, 42, "/start")
        [answer] = await reply_to(api, 42, "/filter score lots")
        assert "between 0 and 1" in answer.text

    async def test_inline_button_changes_direction(self, kit: Kit, api: BotApi, service: TelegramService) -> None:
        """Pressing "Tightening only" saves the filter, answers the button and edits the filter message."""
        await reply_to(api, 42, "/start")
        api.push_callback(42, "f:direction:tightening")
        async with asyncio.timeout(5):
            while api.calls["editMessageText"] < 1:
                await asyncio.to_thread(api.wait_sent, len(api.sent) + 1, 0.05)
        sub = await kit.subs.get("42")
        assert sub is not None and sub.filters.directions == ("tightening",)
        assert api.calls["answerCallbackQuery"] == 1

    async def test_latest_shows_recent_alerts(self, kit: Kit, api: BotApi, service: TelegramService) -> None:
        """/latest replies with the last alert, escaped HTML that reads as published."""
        await kit.outbox.enqueue(Message("a_1", "alert", "a_1", make_alert("a_1")))
        [latest] = await reply_to(api, 42, "/latest")
        assert "US tightens chip export controls" in latest.text

    async def test_mute_holds_alerts(self, kit: Kit, api: BotApi, service: TelegramService) -> None:
        """/mute 2h: an alert in those two hours is not sent to the chat."""
        await reply_to(api, 42, "/start")
        await reply_to(api, 42, "/mute 2h")
        await kit.outbox.enqueue(Message("a_1", "alert", "a_1", make_alert("a_1")))
        await kit.outbox.drain()
        assert not [s for s in api.to(42) if s.text.startswith("🚨")]


class TestStartUp:
    async def test_unreachable_bot_api_does_not_stop_the_service(self, kit: Kit) -> None:
        """With the Bot API down, start() returns (commands come later) and stop() is prompt."""
        with BotApi() as gone:
            url = gone.base_url  # a port that is closed once this block ends
        config = BotConfig(TOKEN, url, poll_timeout=1)
        service = TelegramService(config, Commands(kit.subs, kit.store, kit.clock), FeedWatch(
            kit.store, kit.sink, (), kit.clock))
        async with asyncio.timeout(10):
            await service.start()
            await service.stop()

    async def test_rejected_token_is_a_config_error(self, kit: Kit, api: BotApi) -> None:
        """A token the Bot API rejects stops start-up with a ConfigError that does not show the token."""
        config = BotConfig("999:wrong-token", api.base_url, poll_timeout=1)
        service = TelegramService(config, Commands(kit.subs, kit.store, kit.clock), FeedWatch(
            kit.store, kit.sink, (), kit.clock))
        with pytest.raises(ConfigError) as error:
            await service.start()
        await service.stop()
        assert "wrong-token" not in str(error.value)


class TestAdmin:
    async def test_stats_is_for_admins_only(self, api: BotApi, service: TelegramService) -> None:
        """A non-admin is refused /stats; an admin sees the subscriber count."""
        [refused] = await reply_to(api, 42, "/stats")
        assert "admins" in refused.text
        [stats] = await reply_to(api, ADMIN, "/stats")
        assert "Subscribers:" in stats.text

    async def test_feed_failures_go_to_admins_only(self, kit: Kit, api: BotApi) -> None:
        """A failing feed is reported once to the admins and never to subscribers; recovery is reported too."""
        await kit.subscribe("42")
        watch = FeedWatch(kit.store, kit.sink, (ADMIN,), kit.clock)
        failing = FeedState(health=FeedHealth(failures=3, last_error="HTTP 503 <html>"))
        await kit.store.save_feed_state("reuters", failing)
        assert len(await watch.check()) == 1
        assert await watch.check() == []
        await kit.store.save_feed_state("reuters", replace(failing, health=FeedHealth()))
        assert len(await watch.check()) == 1
        assert [s.text.split("\n")[0] for s in api.to(ADMIN)] == ["Feed failing: reuters", "Feed recovered: reuters"]
        assert api.to(42) == []



def free_port() -> int:
    """A loopback port free just now (PTB registers the webhook URL before it binds, so port 0 cannot be used)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def webhook(kit: Kit, api: BotApi) -> AsyncIterator[TelegramService]:
    port = free_port()
    config = BotConfig(TOKEN, api.base_url, mode="webhook", webhook_url=f"http://127.0.0.1:{port}/tg/",
                       webhook_port=port, webhook_listen="127.0.0.1")
    service = TelegramService(config, Commands(kit.subs, kit.store, kit.clock), FeedWatch(
        kit.store, kit.sink, (), kit.clock))
    await service.start()
    yield service
    await service.stop()


async def post_update(url: str, update: dict[str, object], secret: str | None) -> int:
    """POST an Update to the bot's webhook as Telegram does; the HTTP status."""
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.post(url, json=update, headers=headers)).status_code


class TestWebhook:
    async def test_registered_url_hides_the_token(self, api: BotApi, webhook: TelegramService) -> None:
        """setWebhook gets the public URL plus a path and a secret token derived from the token, neither holding it."""
        path, secret = webhook_secrets(TOKEN)
        assert api.webhook == {"url": f"http://127.0.0.1:{urlsplit(api.webhook['url']).port}/tg/{path}",
                               "secret_token": secret}
        secret_half = TOKEN.partition(":")[2]
        assert secret_half not in api.webhook["url"] and secret_half not in secret and path not in secret

    async def test_start_posted_to_the_webhook_is_answered(self, api: BotApi, webhook: TelegramService) -> None:
        """A /start POSTed with the secret header gets its reply; posts without the header or path get none."""
        url, secret = api.webhook["url"], api.webhook["secret_token"]
        wrong_path = urlunsplit(urlsplit(url)._replace(path="/tg/" + TOKEN))
        refused = [await post_update(url, {"update_id": 1, **api.command_update(42, "/start")}, None),
                   await post_update(url, {"update_id": 2, **api.command_update(42, "/start")}, "wrong"),
                   await post_update(wrong_path, {"update_id": 3, **api.command_update(42, "/start")}, secret)]
        assert refused == [403, 403, 404]
        assert await post_update(url, {"update_id": 4, **api.command_update(42, "/start")}, secret) == 200
        async with asyncio.timeout(5):
            while not api.to(42):
                await asyncio.to_thread(api.wait_sent, len(api.sent) + 1, 0.2)
        [welcome] = api.to(42)  # updates run in order: a refused /start would have answered first
        assert welcome.text.startswith("Subscribed.")

    async def test_stop_closes_the_webhook_server(self, api: BotApi, webhook: TelegramService) -> None:
        """After stop() the webhook port refuses connections."""
        url, secret = api.webhook["url"], api.webhook["secret_token"]
        await webhook.stop()
        with pytest.raises(httpx.ConnectError):
            await post_update(url, {"update_id": 1, **api.command_update(42, "/start")}, secret)

    async def test_webhook_without_public_url_is_a_config_error(self, kit: Kit, api: BotApi) -> None:
        """Webhook mode with no TELEGRAM_WEBHOOK_URL stops start-up with a ConfigError."""
        config = BotConfig(TOKEN, api.base_url, mode="webhook", webhook_listen="127.0.0.1", webhook_port=free_port())
        service = TelegramService(config, Commands(kit.subs, kit.store, kit.clock), FeedWatch(
            kit.store, kit.sink, (), kit.clock))
        with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_URL"):
            await service.start()
        await service.stop()


class TestWiring:
    async def test_token_adds_the_sink_and_the_service(self, settings: Settings, api: BotApi) -> None:
        """With TELEGRAM_BOT_TOKEN set, build_outputs adds the Telegram sink and its service."""
        settings = replace(settings, telegram_bot_token=TOKEN, telegram_api_base_url=api.base_url,
                           telegram_chat_ids=("-1001",))
        async with AsyncExitStack() as stack:
            store = SqliteStore(settings.db)
            stack.push_async_callback(store.close)
            outputs = await build_outputs(settings, store, stack, utc_now)
            assert "telegram" in outputs.sinks
            assert any(isinstance(s, TelegramService) for s in outputs.services)
            message = Message("a_1", "alert", "a_1", make_alert("a_1"))
            assert list(await outputs.sinks["telegram"].targets(message)) == ["-1001"]


async def test_start_wakes_the_running_outbox(kit: Kit, api: BotApi) -> None:
    """/start's latest alert goes out from the running outbox at once, not at its next idle look."""
    wake = asyncio.Event()
    outbox = Outbox(kit.store, {"telegram": kit.sink}, kit.clock, wake=wake)
    await outbox.enqueue(Message("a_1", "alert", "a_1", make_alert("a_1")))
    config = BotConfig(TOKEN, api.base_url, admin_ids=(ADMIN,), poll_timeout=1)
    commands = Commands(kit.subs, kit.store, kit.clock, config.admin_ids, wake=wake.set)
    service = TelegramService(config, commands, FeedWatch(kit.store, kit.sink, config.admin_ids, kit.clock))
    await service.start()
    stop = asyncio.Event()
    runner = asyncio.create_task(outbox.run(stop))
    try:
        await outbox.drain()  # nobody subscribed yet: the outbox goes idle
        replies = await reply_to(api, 42, "/start", count=2)
        assert replies[0].text.startswith("Subscribed.")
        assert replies[1].text.startswith("🚨")
    finally:
        stop.set()
        await runner
        await service.stop()
