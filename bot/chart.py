"""Intraday chart PNG for an alert: % moves of the quoted tickers, the story's time marked, sized for a phone."""

from __future__ import annotations

import asyncio
import logging
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from matplotlib import dates as mdates
from matplotlib import font_manager
from matplotlib import ticker as mticker
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.hours import MarketCalendar
from bot.market import PriceSource
from bot.records import Alert

log = logging.getLogger(__name__)

Bars = Sequence[tuple[datetime, float]]
COLOURS = ("#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#4e342e", "#ad1457")
NEW_YORK = ZoneInfo("America/New_York")
FONT = 17
# first installed family wins per glyph (matplotlib font fallback); CJK faces cover Chinese/Japanese/Korean titles
FAMILIES = ("DejaVu Sans", "Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK KR", "WenQuanYi Zen Hei")


def _fonts() -> tuple[list[str], list[str]]:
    """The preferred families that are installed, and their files."""
    installed = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    names = [name for name in FAMILIES if name in installed] or ["sans-serif"]
    return names, [installed[name] for name in names if name in installed]


def _printable(title: str, files: Sequence[str]) -> str:
    """The title without characters no installed font can draw (no tofu boxes); a generic one if little is left."""
    faces = [font_manager.get_font(path) for path in files]
    kept = "".join(c for c in title if c.isspace() or any(face.get_char_index(ord(c)) for face in faces))
    kept = " ".join(kept.split())
    return kept if len(kept) >= 0.6 * len(title.strip()) else "Price moves around the story"


def _x(moment: datetime) -> float:
    """Matplotlib's date number for a moment (typed plotting without datetime converters)."""
    return float(mdates.date2num(moment))


def _moves(bars: Bars, baseline: float | None) -> tuple[list[datetime], list[float]]:
    """Percent moves of each close against the baseline (the first bar's close when none is given)."""
    ref = baseline or bars[0][1]
    return [t for t, _ in bars], [100.0 * (close / ref - 1.0) for _, close in bars]


def _shade_extended_hours(ax: Axes, first: datetime, last: datetime, calendar: MarketCalendar) -> None:
    """Grey bands over pre- and post-market time, so the regular session stands out."""
    day = first.astimezone(NEW_YORK).date()
    while day <= last.astimezone(NEW_YORK).date():
        if calendar.is_trading_day(day):
            open_at = datetime.combine(day, calendar.regular_open, NEW_YORK)
            close_at = calendar.close_at(day)
            pre = datetime.combine(day, calendar.pre_open, NEW_YORK)
            post_end = close_at + timedelta(minutes=calendar.post_minutes)
            for start, end, name in ((pre, open_at, "pre-market"), (close_at, post_end, "after hours")):
                ax.axvspan(_x(start), _x(end), color="#eeeeee", zorder=0, linewidth=0)
                shown_from, shown_to = max(start, first), min(end, last)
                if shown_to - shown_from > timedelta(minutes=45):
                    ax.text(_x(shown_from + timedelta(minutes=6)), 0.02, name, transform=ax.get_xaxis_transform(),
                            fontsize=FONT - 3, color="#757575", va="bottom")  # fmt: skip
        day += timedelta(days=1)


def _mark_story(ax: Axes, story_time: datetime, first: datetime, last: datetime) -> None:
    """A dashed line at the story's time, labelled; pinned to the edge with an arrow when off the chart."""
    local = story_time.astimezone(NEW_YORK)
    label = f"story {local:%H:%M} {local.tzname()}"
    where, align = story_time, "left"
    if story_time < first:
        where, align, label = first, "left", f"◀ {label} {local:%a}"
    elif story_time > last:
        where, align, label = last, "right", f"{label} ▶"
    ax.axvline(_x(where), color="black", linestyle="--", linewidth=2.2, zorder=3)
    ax.annotate(
        label, xy=(_x(where), 1.0), xycoords=("data", "axes fraction"), xytext=(6 if align == "left" else -6, -8),
        textcoords="offset points", ha=align, va="top", fontsize=FONT - 1, fontweight="bold",
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "#fff59d", "edgecolor": "black"}, zorder=4,
    )  # fmt: skip


def _draw(ax: Axes, bars: Mapping[str, Bars], baselines: Mapping[str, float]) -> tuple[datetime, datetime]:
    """One thick line per ticker, its latest move in the legend; returns the time span drawn."""
    first, last = min(b[0][0] for b in bars.values()), max(b[-1][0] for b in bars.values())
    for i, (ticker, series) in enumerate(bars.items()):
        times, moves = _moves(series, baselines.get(ticker))
        colour = COLOURS[i % len(COLOURS)]
        label = f"{ticker} {moves[-1]:+.1f}%"
        ax.plot([_x(t) for t in times], moves, color=colour, linewidth=2.8, label=label, zorder=2)
        ax.plot([_x(times[-1])], [moves[-1]], "o", color=colour, markersize=8, zorder=2)
    ax.axhline(0.0, color="#444444", linewidth=1.4, zorder=1)
    return first, last


def _style(ax: Axes, first: datetime, against: str) -> None:
    zone = first.astimezone(NEW_YORK).tzname()
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=NEW_YORK, minticks=4, maxticks=7))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=NEW_YORK))
    ax.yaxis.set_major_locator(mticker.MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10]))
    ticks = ax.yaxis.get_major_locator().tick_values(*ax.get_ylim())
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = 0 if step >= 1 else 1 if step >= 0.1 else 2
    ax.yaxis.set_major_formatter(lambda value, _pos: f"{value:+.{decimals}f}%" if abs(value) > 1e-9 else "0%")
    ax.set_xlabel(f"{first.astimezone(NEW_YORK):%a %d %b %Y}, New York time ({zone})", fontsize=FONT)
    ax.set_ylabel(f"% vs {against}", fontsize=FONT)
    ax.tick_params(labelsize=FONT - 1)
    ax.grid(True, axis="y", color="#dddddd", linewidth=1)
    columns = 3 if len(ax.get_lines()) > 4 else 2
    ax.figure.legend(fontsize=FONT, loc="outside lower center", ncols=columns, frameon=False, handlelength=1.2)


def render_chart(
    bars: Mapping[str, Bars],
    story_time: datetime,
    path: Path,
    title: str,
    *,
    baselines: Mapping[str, float] | None = None,
    calendar: MarketCalendar | None = None,
) -> Path:
    """Write a PNG of % moves per ticker (vs `baselines`, e.g. previous closes, else vs first bar) to `path`."""
    calendar = calendar or MarketCalendar()
    drawn = {ticker: list(series) for ticker, series in bars.items() if series}
    if not baselines or any(not baselines.get(t) for t in drawn):
        baselines = {}  # one reference for every line, else the chart would mix two meanings of 0%
    families, files = _fonts()
    fig = Figure(figsize=(8, 7), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    heading = textwrap.fill(_printable(title, files), 44, max_lines=2, placeholder=" …")
    fig.suptitle(heading, fontsize=FONT + 2, parse_math=False, fontfamily=families)
    if drawn:
        first, last = _draw(ax, drawn, baselines)
        _shade_extended_hours(ax, first, last, calendar)
        ax.set_xlim(_x(first - timedelta(minutes=5)), _x(last + timedelta(minutes=5)))
        _mark_story(ax, story_time, first, last)
        _style(ax, first, "previous close" if baselines else "first bar")
    else:
        ax.text(0.5, 0.5, "no intraday prices", ha="center", va="center", fontsize=FONT + 2, transform=ax.transAxes)
        ax.set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.savefig(path, format="png")
    return path


async def render_alert_chart(
    source: PriceSource, alert: Alert, directory: Path, wait_s: float = 5.0, calendar: MarketCalendar | None = None,
    suffix: str = "",
) -> Path | None:
    """Chart the alert's quoted tickers to DIRECTORY/<alert id><suffix>.png off the event loop; None when no bars."""
    tickers = [q.ticker for q in alert.quotes] or list(alert.verdict.tickers)
    try:
        async with asyncio.timeout(wait_s):
            bars = await source.intraday(tickers)
    except TimeoutError:
        log.warning("no intraday bars for the chart of %s within %.0f s", alert.id, wait_s)
        return None
    if not bars:
        return None
    closes = {q.ticker: q.prev_close for q in alert.quotes if q.prev_close}
    story_time = alert.item.published_at or alert.detected_at
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in alert.id + suffix) + ".png"
    return await asyncio.to_thread(
        render_chart, bars, story_time, directory / name, alert.item.title, baselines=closes, calendar=calendar
    )
