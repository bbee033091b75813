"""Telegram HTML rendering: escaped feed text, Telegram's length limits, cuts that never break markup."""

from __future__ import annotations

import pytest

from bot.telegram_render import CAPTION_LIMIT, MESSAGE_LIMIT, clip, render_alert, tg_len
from feeds.records import Verdict
from tests.factories import make_alert, make_item
from tests.servers.botapi import visible_text

NASTY = "<&\"'>🚫🇨🇳 &amp; <b>"


def long_alert(title: str, summary: str, reasons: int = 200):  # type: ignore[no-untyped-def]
    verdict = Verdict(True, 0.9, "easing", ("Nvidia",), ("NVDA", "AMD"), ("H20",),
                      tuple(f"reason {i} {NASTY}" for i in range(reasons)))
    return make_alert("a_1", item=make_item("a_1", title=title, summary=summary), verdict=verdict)


CASES = [
    pytest.param("short", "short", 3, id="short"),
    pytest.param(NASTY * 400, "s", 3, id="huge-headline"),
    pytest.param("t", NASTY * 2000, 3, id="huge-summary"),
    pytest.param("t", "s", 2000, id="huge-reasons"),
    pytest.param(NASTY * 400, NASTY * 2000, 2000, id="everything-huge"),
    pytest.param("😀" * 3000, "😀" * 3000, 3, id="emoji-count-twice"),
]


class TestLimits:
    @pytest.mark.parametrize(("title", "summary", "reasons"), CASES)
    def test_message_fits_and_parses(self, title: str, summary: str, reasons: int) -> None:
        """The message is at most 4,096 UTF-16 units and valid Telegram HTML, whatever the feed sent."""
        text = render_alert(long_alert(title, summary, reasons))
        assert tg_len(text) <= MESSAGE_LIMIT
        visible_text(text)

    @pytest.mark.parametrize(("title", "summary", "reasons"), CASES)
    def test_caption_fits_and_parses(self, title: str, summary: str, reasons: int) -> None:
        """Cut to a photo caption, it is at most 1,024 UTF-16 units and valid Telegram HTML."""
        text = render_alert(long_alert(title, summary, reasons), CAPTION_LIMIT)
        assert tg_len(text) <= CAPTION_LIMIT
        visible_text(text)

    def test_long_headline_is_cut_with_an_ellipsis_not_inside_an_entity(self) -> None:
        """A cut lands between characters of the feed text: never inside &amp; or a tag."""
        cut = clip("&" * 100, 22)
        assert cut == "&amp;" * 4 + "…"
        assert visible_text(cut) == "&&&&…"


class TestContent:
    def test_alert_shows_what_a_trader_needs(self) -> None:
        """Headline, source, time, direction, tickers with moves, reasons and the link are all there."""
        text = visible_text(render_alert(make_alert("a_1")))
        for piece in ("US tightens chip export controls", "test-feed (en)", "2025-07-15 03:05 UTC", "TIGHTENING",
                      "NVDA 170.00 +3.03% today", "control: export licence", "Read the story"):
            assert piece in text

    def test_link_is_escaped_in_the_attribute(self) -> None:
        """A URL with quotes and ampersands cannot break out of the href attribute."""
        alert = make_alert("a_1", item=make_item("a_1", url='https://x.example/?a=1&b="><i>'))
        text = render_alert(alert)
        assert 'href="https://x.example/?a=1&amp;b=&quot;&gt;&lt;i&gt;"' in text
        visible_text(text)
