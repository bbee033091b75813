"""The `Sink` Protocol every delivery channel implements (console, Telegram, Slack, Redis stream)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.records import Message


class Sink(Protocol):
    """A delivery channel. `deliver` raises `RetryableDelivery` or `PermanentDelivery` on failure."""

    name: str
    max_concurrency: int  # deliveries of this sink in flight at once
    ordered: bool  # deliver each target's messages strictly in order (a failure holds back later ones)

    async def targets(self, message: Message) -> Sequence[str]:
        """Where this message goes (Telegram: the chat ids whose filters admit it; others: one target)."""
        ...

    async def deliver(self, message: Message, target: str, reply_to: str | None) -> str | None:
        """Send one message to one target; returns a reference (e.g. a message id) for later replies."""
        ...
