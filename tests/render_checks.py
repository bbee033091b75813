"""Renders one item through every output (console, Telegram HTML, Slack Block Kit, stream JSON) and checks
what a reader or consumer would receive: within each platform's limits, feed text escaped, schema-valid."""

from __future__ import annotations

import json
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from bot.records import Alert, Message
from bot.render import render_text
from bot.slack import payload
from bot.stream import entry_json
from bot.telegram_render import CAPTION_LIMIT, render_alert, tg_len
from feeds.records import Item, Verdict
from tests.factories import make_alert

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "alert.schema.json"
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a", "blockquote",
                 "tg-spoiler", "span"}


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


class _Tags(HTMLParser):
    """Collects the tags of a Telegram HTML message and checks they nest."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.seen: set[str] = set()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.problems.append(f"unbalanced </{tag}>")


def check_telegram(text: str, limit: int) -> None:
    assert tg_len(text) <= limit, f"Telegram message of {tg_len(text)} units over {limit}"
    tags = _Tags()
    tags.feed(text)
    tags.close()
    assert tags.seen <= TELEGRAM_TAGS, f"tags Telegram refuses (feed markup leaked?): {tags.seen - TELEGRAM_TAGS}"
    assert not tags.problems and not tags.open, (tags.problems, tags.open)


def _texts(node: Any) -> list[tuple[str, str]]:
    """Every (type, text) of a Block Kit tree."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            found.append((str(node.get("type")), node["text"]))
        for value in node.values():
            found += _texts(value)
    elif isinstance(node, list):
        for value in node:
            found += _texts(value)
    return found


def check_slack(body: dict[str, Any]) -> None:
    json.dumps(body)
    assert len(body["blocks"]) <= 50
    assert len(body["text"]) <= 3000 and "<" not in body["text"] and ">" not in body["text"]
    for kind, text in _texts(body["blocks"]):
        assert len(text) <= 3000, f"{kind} text of {len(text)} characters"
        if kind == "mrkdwn":
            assert "<" not in text and ">" not in text, f"unescaped Slack control character in {text[:80]!r}"
    header = body["blocks"][0]
    if header.get("type") == "header":
        assert len(header["text"]["text"]) <= 150


def check_stream(message: Message) -> None:
    entry = json.loads(entry_json(message))
    errors = sorted(_validator().iter_errors(entry), key=str)
    assert not errors, errors[0].message


def check_console(text: str) -> None:
    assert all(ch in "\n" or ch >= " " for ch in text), "control character on the console"


def render_everywhere(item: Item, verdict: Verdict, console: bool = True) -> Alert:
    """Builds an alert of `item` and checks it through every output; returns the alert. The console prints
    text as parse left it (plain, no controls), so `console=False` for raw text that never came through parse."""
    alert = make_alert("a_corpus", item=item, verdict=verdict)
    message = Message(alert.id, "alert", alert.id, alert)
    text = render_text(alert)
    if console:
        check_console(text)
    check_telegram(render_alert(alert), 4096)
    check_telegram(render_alert(alert, CAPTION_LIMIT), CAPTION_LIMIT)
    check_slack(payload(message))
    check_stream(message)
    return alert
