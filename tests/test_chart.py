"""The intraday chart PNG: written, phone-sized, robust to awkward titles and story times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from matplotlib import image

from bot.chart import _fonts, _moves, _printable, render_alert_chart, render_chart
from bot.hours import MarketCalendar
from bot.records import Alert, Quote
from bot.replay import ReplaySource
from feeds.records import Item, Verdict

DEMO_PRICES = Path(__file__).resolve().parent.parent / "config" / "demo" / "prices.csv"
STORY = datetime(2025, 7, 15, 3, 5, tzinfo=UTC)  # the AP story, Monday 23:05 New York time


@pytest.fixture(scope="module")
def demo_bars() -> tuple[dict, dict]:
    """Intraday bars and previous closes of the demo recording."""
    import asyncio

    source = ReplaySource.from_file(DEMO_PRICES, MarketCalendar.from_file())
    tickers = ["NVDA", "AMD", "TSM"]
    bars = asyncio.run(source.intraday(tickers))
    quotes = asyncio.run(source.quotes(tickers))
    return bars, {t: q.prev_close for t, q in quotes.items()}


def read_png(path: Path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return image.imread(path)


class TestRenderChart:
    @pytest.mark.parametrize(
        "story",
        [STORY, datetime(2025, 7, 15, 14, 0, tzinfo=UTC), datetime(2025, 7, 15, 20, 0, tzinfo=UTC)],
        ids=["before-the-session", "during", "after-the-last-bar"],
    )
    def test_writes_a_phone_sized_png(self, tmp_path, demo_bars, story):
        """A PNG at least 1000 px wide is written wherever the story falls relative to the bars."""
        bars, closes = demo_bars
        path = render_chart(bars, story, tmp_path / "charts" / "a1.png", "Nvidia H20 licence", baselines=closes)
        assert read_png(path).shape[1] >= 1000

    def test_awkward_titles_render_without_warnings(self, tmp_path, demo_bars):
        """Dollar signs (no mathtext) and scripts without an installed font do not break or warn."""
        bars, _ = demo_bars
        title = "英伟达获准向中国出售H20 — $NVDA up 5% on $10bn China sales; " * 3
        render_chart(bars, STORY, tmp_path / "t.png", title)

    def test_no_bars_still_renders(self, tmp_path):
        """Without any prices the chart says so instead of failing."""
        read_png(render_chart({}, STORY, tmp_path / "empty.png", "no data"))


def make_alert(alert_id: str, tickers: tuple[str, ...]) -> Alert:
    item = Item("k", "ap-de", "https://example.org", "Nvidia: H20-Genehmigung", "", STORY, STORY, "de")
    quotes = tuple(Quote(t, 1.0, 1.0, None, None, None, STORY) for t in tickers)
    return Alert(alert_id, "c", item, Verdict(True, 0.9, tickers=tickers), quotes, STORY)


class TestAlertChart:
    async def test_writes_the_alert_chart_named_by_id(self, tmp_path):
        """The alert's chart lands in the chart directory under a file-safe name of its id."""
        source = ReplaySource.from_file(DEMO_PRICES, MarketCalendar.from_file())
        path = await render_alert_chart(source, make_alert("ap/1:x", ("NVDA", "AMD")), tmp_path)
        assert path == tmp_path / "ap_1_x.png"
        read_png(path)

    async def test_no_bars_no_chart(self, tmp_path):
        """Tickers without any bars give no chart rather than an empty picture."""
        source = ReplaySource.from_file(DEMO_PRICES, MarketCalendar.from_file())
        assert await render_alert_chart(source, make_alert("a2", ("NOSUCH",)), tmp_path) is None


class TestPieces:
    def test_moves_against_baseline_or_first_bar(self):
        """Moves are percentages against the previous close when given, else against the first bar."""
        t0 = STORY
        bars = [(t0, 100.0), (t0 + timedelta(minutes=1), 102.0)]
        assert _moves(bars, None)[1] == [0.0, pytest.approx(2.0)]
        assert _moves(bars, 50.0)[1] == [pytest.approx(100.0), pytest.approx(104.0)]

    def test_printable_drops_glyphs_no_font_has(self):
        """Characters no installed font can draw are removed; a title made mostly of them is replaced."""
        _, files = _fonts()
        assert _printable("Nvidia: Genehmigung für H20", files) == "Nvidia: Genehmigung für H20"
        if not any("CJK" in f or "WenQuanYi" in f for f in files):
            assert _printable("英伟达获准向中国出售芯片", files) == "Price moves around the story"
