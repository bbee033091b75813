"""Builds the configured sinks (and the background services some of them need) from settings."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TextIO

from bot.console import ConsoleSink
from bot.settings import Settings
from bot.sink import Sink
from bot.store import StateStore


class Service(Protocol):
    """A long-running part started with the service and stopped on shutdown (e.g. the Telegram poller)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass(slots=True)
class Outputs:
    sinks: dict[str, Sink] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)


async def build_outputs(
    settings: Settings,
    store: StateStore,
    stack: AsyncExitStack,
    clock: Callable[[], datetime],
    out: TextIO | None = None,
    wake: Callable[[], None] = lambda: None,
) -> Outputs:
    """Console when enabled; Telegram, Slack and the Redis stream when their settings are present."""
    outputs = Outputs()
    if settings.console:
        outputs.sinks["console"] = ConsoleSink(out)
    if settings.telegram_bot_token:
        from bot.telegram_app import build_telegram

        telegram, service = await build_telegram(settings, store, stack, clock, wake=wake)
        outputs.sinks["telegram"] = telegram
        outputs.services.append(service)
    if settings.slack_webhook_urls:
        outputs.sinks["slack"] = await _slack_sink(settings, stack)
    if settings.redis_url:
        outputs.sinks["stream"] = _stream_sink(settings, stack)
    return outputs


async def _slack_sink(settings: Settings, stack: AsyncExitStack) -> Sink:
    """One shared HTTP client for every webhook, closed with the app."""
    import httpx

    from bot.slack import SlackSink

    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False)
    stack.push_async_callback(client.aclose)
    return SlackSink(settings.slack_webhook_urls, client)


def _stream_sink(settings: Settings, stack: AsyncExitStack) -> Sink:
    """The Redis stream on its own connection, so a slow stream never queues behind the state store."""
    from bot.redis_store import redis_client
    from bot.stream import StreamSink

    client = redis_client(settings.redis_url or "")
    stack.push_async_callback(client.aclose)
    return StreamSink(client, settings.stream, settings.stream_maxlen)
