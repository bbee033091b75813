"""The console sink: alerts and reactions as readable text on a stream (standard output by default)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from bot.records import Message
from bot.render import render_reaction_text, render_text


class ConsoleSink:
    name = "console"
    max_concurrency = 1
    ordered = True

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    async def targets(self, message: Message) -> Sequence[str]:
        return ("stdout",)

    async def deliver(self, message: Message, target: str, reply_to: str | None) -> str | None:
        out = self._out or sys.stdout
        if message.kind == "reaction" and message.reaction is not None:
            text = render_reaction_text(message.reaction)
        else:
            text = render_text(message.alert)
        out.write(text + "\n\n")
        out.flush()
        return None
