"""Price sources: quotes from recorded yfinance frames, the replay file, snapshots and the calendar."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yfinance
from yfinance.exceptions import YFRateLimitError

from bot.hours import MarketCalendar
from bot.market import PriceSource, price_source_from_setting, snapshot
from bot.quotes import pct
from bot.records import Quote
from bot.replay import ReplaySource, load_bars
from bot.yf import YFinanceSource
from tests.market_frames import Clock, FakeYahoo, utc

ROOT = Path(__file__).resolve().parent.parent
DEMO_PRICES = ROOT / "config" / "demo" / "prices.csv"
TUE, FRI = ("yf_1m_2025-07-15.csv", "yf_1d_2025-07-15.csv"), ("yf_1m_2025-07-11.csv", "yf_1d_2025-07-11.csv")


@pytest.fixture(scope="module")
def calendar() -> MarketCalendar:
    return MarketCalendar.from_file()


def yahoo_source(files: tuple[str, str], now: str, calendar: MarketCalendar, **kwargs) -> tuple:
    clock = Clock(utc(now))
    fake = FakeYahoo(*files, until=clock.now, tz=kwargs.pop("tz", "keep"))
    return YFinanceSource(clock, calendar, download=fake, **kwargs), fake, clock


def expected(ticker, price, prev, ref15, ref60, as_of, state) -> Quote:
    return Quote(ticker, price, prev, pct(price, prev), pct(price, ref15), pct(price, ref60), utc(as_of), state)


CASES = [
    pytest.param(
        TUE,
        "2025-07-15T10:30:20-04:00",
        [
            expected("NVDA", 171.80, 164.07, 172.05, 171.60, "2025-07-15T10:29-04:00", "regular"),
            expected("AMD", 154.60, 146.24, 154.20, 152.10, "2025-07-15T10:29-04:00", "regular"),
        ],
        id="regular-hours",
    ),
    pytest.param(
        TUE,
        "2025-07-15T07:45:40-04:00",
        [
            expected("NVDA", 171.52, 164.07, 171.35, 170.90, "2025-07-15T07:45-04:00", "pre"),
            expected("AMD", 151.75, 146.24, 151.90, 151.40, "2025-07-15T07:45-04:00", "pre"),
        ],
        id="pre-market",
    ),
    pytest.param(
        FRI,
        "2025-07-11T17:45:40-04:00",
        [
            expected("NVDA", 165.31, 164.10, 165.08, 165.20, "2025-07-11T17:45-04:00", "post"),
            expected("AMD", 146.21, 144.16, 146.30, 146.10, "2025-07-11T17:45-04:00", "post"),
        ],
        id="after-the-close",
    ),
    pytest.param(
        FRI,
        "2025-07-12T12:00:00-04:00",
        [
            expected("NVDA", 165.06, 164.10, 165.00, 165.12, "2025-07-11T19:59-04:00", "closed"),
            expected("AMD", 146.55, 144.16, 146.61, 146.50, "2025-07-11T19:59-04:00", "closed"),
        ],
        id="weekend",
    ),
]


class TestYahooQuotes:
    @pytest.mark.parametrize(("files", "now", "quotes"), CASES)
    async def test_quotes_from_recorded_frames(self, calendar, files, now, quotes):
        """Price, previous close, 1-day / 15-minute / 60-minute moves, as-of and session come out exactly."""
        source, _, _ = yahoo_source(files, now, calendar)
        got = await source.quotes(["NVDA", "AMD"])
        assert got == {q.ticker: q for q in quotes}

    @pytest.mark.parametrize("tz", ["keep", "UTC", None], ids=["exchange-tz", "utc-index", "naive-index"])
    async def test_index_timezone_is_normalised(self, calendar, tz):
        """Whatever timezone contract the index follows, the quote is the same."""
        source, _, _ = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar, tz=tz)
        got = await source.quotes(["NVDA"])
        assert got["NVDA"].as_of == utc("2025-07-15T10:29-04:00")
        assert got["NVDA"].price == 171.80

    async def test_early_pre_market_has_no_60_minute_move(self, calendar):
        """Twenty minutes into pre-market there is no bar an hour back in the session: the 60-minute move is None."""
        source, _, _ = yahoo_source(TUE, "2025-07-15T04:19:40-04:00", calendar)
        quote = (await source.quotes(["AMD"]))["AMD"]
        assert quote.change_60m_pct is None
        assert quote.change_15m_pct == pct(150.93, 150.40)

    async def test_ticker_without_data_is_absent(self, calendar):
        """A ticker Yahoo has nothing for is left out; the others are quoted."""
        source, fake, _ = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar)
        got = await source.quotes(["NVDA", "NOSUCH"])
        again = await source.quotes(["NOSUCH"])
        assert set(got) == {"NVDA"}
        assert again == {}
        assert len(fake.calls) == 2  # one batched refresh; the empty ticker is not re-asked within the TTL

    async def test_one_batched_download_per_refresh(self, calendar):
        """All tickers go in one 1-minute and one daily call; concurrent and repeated asks reuse them."""
        source, fake, clock = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar, ttl=45)
        await asyncio.gather(source.quotes(["NVDA", "AMD"]), source.quotes(["AMD", "NVDA"]), source.intraday(["NVDA"]))
        clock.now = utc("2025-07-15T10:31:00-04:00")
        await source.quotes(["NVDA"])
        assert fake.calls == [(("AMD", "NVDA"), "1m"), (("AMD", "NVDA"), "1d")]

    async def test_cache_expires_after_ttl(self, calendar):
        """Past the TTL the next ask downloads again, batching every recently asked ticker."""
        source, fake, clock = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar, ttl=45)
        await source.quotes(["NVDA", "AMD"])
        clock.now = utc("2025-07-15T10:31:10-04:00")
        await source.quotes(["NVDA"])
        assert fake.calls[2:] == [(("AMD", "NVDA"), "1m"), (("AMD", "NVDA"), "1d")]

    async def test_calls_match_the_real_download_signature(self, calendar):
        """Every argument passed at the seam is one yfinance.download accepts, never `.info`-style calls."""
        source, fake, _ = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar)
        await source.quotes(["NVDA"])
        signature = inspect.signature(yfinance.download)
        for kwargs in fake.kwargs:
            signature.bind(["NVDA"], **kwargs)
        assert [k["interval"] for k in fake.kwargs] == ["1m", "1d"]


class TestYahooFailures:
    @pytest.mark.parametrize(
        "breakage",
        [lambda fake: setattr(fake, "fail", YFRateLimitError), lambda fake: setattr(fake, "empty", True)],
        ids=["rate-limited", "empty-frames"],
    )
    async def test_cached_quotes_come_back_stale_with_backoff(self, calendar, breakage):
        """When Yahoo fails after a success, the cached quote is served marked stale and retries back off."""
        source, fake, clock = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar, backoff=(5, 60))
        fresh = await source.quotes(["NVDA"])
        breakage(fake)
        clock.now = utc("2025-07-15T10:31:10-04:00")
        stale = await source.quotes(["NVDA"])
        calls = len(fake.calls)
        clock.now = utc("2025-07-15T10:31:14-04:00")  # inside the 5 s backoff: no new call
        await source.quotes(["NVDA"])
        assert stale["NVDA"].stale
        assert stale["NVDA"].price == fresh["NVDA"].price
        assert not fresh["NVDA"].stale
        assert len(fake.calls) == calls

    async def test_backoff_doubles_and_is_capped(self, calendar):
        """Consecutive failures wait 5, 10, 20 s ... up to the cap before the next try."""
        source, fake, clock = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar, backoff=(5, 12))
        fake.fail = YFRateLimitError
        start = clock.now
        attempts = []
        for second in range(60):
            clock.now = start + timedelta(seconds=second)
            before = len(fake.calls)
            await source.quotes(["NVDA"])
            if len(fake.calls) > before:
                attempts.append(second)
        assert attempts == [0, 5, 15, 27, 39, 51]

    async def test_raising_download_gives_no_quote(self, calendar):
        """With nothing cached and Yahoo raising, the ticker is simply absent."""
        source, fake, _ = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar)
        fake.fail = lambda: ConnectionError("boom")
        assert await source.quotes(["NVDA"]) == {}
        assert await snapshot(source, ["NVDA"]) == ()

    async def test_hanging_download_is_cut_by_snapshot_timeout(self, calendar):
        """A hung yfinance call never holds an alert longer than the snapshot time-out."""
        source, fake, _ = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar, timeout=30)
        fake.hang = True
        loop = asyncio.get_running_loop()
        try:
            started = loop.time()
            got = await snapshot(source, ["NVDA", "AMD"], timeout=0.2)
            elapsed = loop.time() - started
        finally:
            fake.release.set()
        assert got == ()
        assert elapsed < 1.0

    async def test_hanging_download_is_cut_by_source_timeout(self, calendar):
        """The source's own time-out bounds a hung download too, and the hung thread is not piled on."""
        source, fake, _ = yahoo_source(TUE, "2025-07-15T10:30:20-04:00", calendar, timeout=0.1, backoff=(0, 0))
        fake.hang = True
        try:
            first = await source.quotes(["NVDA"])
            second = await source.quotes(["NVDA"])
        finally:
            fake.release.set()
        assert first == second == {}
        assert len(fake.calls) == 1


class TestReplay:
    async def test_replay_clock_is_the_last_bar(self, calendar):
        """The demo recording is served as of its last bar, in regular hours, previous close from Monday."""
        source = ReplaySource.from_file(DEMO_PRICES, calendar)
        quote = (await source.quotes(["NVDA"]))["NVDA"]
        assert source.now() == datetime(2025, 7, 15, 14, 29, tzinfo=UTC)
        assert (quote.price, quote.prev_close, quote.market_state) == (171.80, 164.07, "regular")
        assert quote.change_60m_pct == pct(171.80, 171.60)

    async def test_previous_close_is_the_last_regular_bar(self, calendar):
        """Monday's post-market bars do not count as Monday's close."""
        source = ReplaySource.from_file(DEMO_PRICES, calendar)
        monday = [bar for bar in load_bars(DEMO_PRICES)["AMD"] if calendar.local_date(bar[0]).day == 14]
        quote = (await source.quotes(["AMD"]))["AMD"]
        assert monday[-1] == (utc("2025-07-14T19:59-04:00"), 146.40)
        assert quote.prev_close == 146.24

    async def test_at_hides_later_bars(self, calendar):
        """`at()` replays the recording as if now were an earlier moment."""
        source = ReplaySource.from_file(DEMO_PRICES, calendar).at(utc("2025-07-15T07:45:40-04:00"))
        quote = (await source.quotes(["NVDA"]))["NVDA"]
        bars = (await source.intraday(["NVDA"]))["NVDA"]
        assert (quote.price, quote.market_state) == (171.52, "pre")
        assert bars[0][0] >= utc("2025-07-15T04:00-04:00")
        assert bars[-1][0] == utc("2025-07-15T07:45-04:00")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("ticker,time,close\n", "missing columns"),
            ("ticker,time,open,high,low,close,volume\nNVDA,x,1,1,1,1,1\n", ":2:"),
        ],
        ids=["missing-columns", "bad-time"],
    )
    def test_bad_file_names_the_problem(self, tmp_path, calendar, text, message):
        """A malformed replay file fails with the file (and line) in the message."""
        path = tmp_path / "bars.csv"
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            ReplaySource.from_file(path, calendar)


class TestSetting:
    def test_replay_setting(self, calendar):
        """`replay:PATH` builds a replay source over that file."""
        source = price_source_from_setting(f"replay:{DEMO_PRICES}", Clock(utc("2026-01-01T00:00Z")), calendar)
        assert isinstance(source, ReplaySource)

    def test_yfinance_setting(self, calendar):
        """`yfinance` builds the Yahoo source (no network until asked)."""
        source = price_source_from_setting("yfinance", Clock(utc("2026-01-01T00:00Z")), calendar)
        assert isinstance(source, YFinanceSource)

    @pytest.mark.parametrize("value", ["", "yahoo", "replay:", "replay:/no/such/file.csv"])
    def test_bad_setting_is_a_clear_error(self, value, calendar):
        """Anything else is refused with a message naming the accepted forms or the file."""
        with pytest.raises(ValueError, match=r"NEWSBOT_MARKET|replay file"):
            price_source_from_setting(value, Clock(utc("2026-01-01T00:00Z")), calendar)


@pytest.fixture(params=["replay", "yfinance"])
def any_source(request, calendar) -> PriceSource:
    now = "2025-07-15T10:30:20-04:00"
    if request.param == "replay":
        return ReplaySource.from_file(DEMO_PRICES, calendar)
    return yahoo_source(TUE, now, calendar)[0]


class TestContract:
    async def test_quotes_keyed_as_asked_and_unknown_absent(self, any_source):
        """Both sources key quotes by the requested spelling and leave unknown tickers out."""
        got = await any_source.quotes(["nvda", "NOSUCH"])
        assert set(got) == {"nvda"}
        assert got["nvda"].ticker == "NVDA"

    async def test_intraday_is_one_session_of_utc_bars_ending_at_the_quote(self, any_source, calendar):
        """Intraday bars are UTC, ascending, from one exchange day, and end at the quote's as-of time."""
        bars = (await any_source.intraday(["NVDA"]))["NVDA"]
        quote = (await any_source.quotes(["NVDA"]))["NVDA"]
        times = [t for t, _ in bars]
        assert times == sorted(times)
        assert all(t.tzinfo == UTC for t in times)
        assert {calendar.local_date(t) for t in times} == {calendar.local_date(quote.as_of)}
        assert times[-1] == quote.as_of

    async def test_snapshot_keeps_order(self, any_source):
        """A snapshot lists quotes in the order the tickers were asked."""
        got = await snapshot(any_source, ["AMD", "NOSUCH", "NVDA"])
        assert [q.ticker for q in got] == ["AMD", "NVDA"]


class TestCalendar:
    @pytest.mark.parametrize(
        ("moment", "state"),
        [
            ("2025-07-15T03:59-04:00", "closed"),
            ("2025-07-15T04:00-04:00", "pre"),
            ("2025-07-15T09:30-04:00", "regular"),
            ("2025-07-15T16:00-04:00", "post"),
            ("2025-07-15T20:00-04:00", "closed"),
            ("2025-07-12T12:00-04:00", "closed"),
            ("2025-07-04T11:00-04:00", "closed"),
            ("2025-07-03T13:30-04:00", "post"),
            ("2025-11-28T12:59-05:00", "regular"),
            ("2026-12-25T11:00-05:00", "closed"),
            ("2027-03-26T11:00-04:00", "closed"),
        ],
        ids=[
            "before-pre",
            "pre-open",
            "open",
            "close",
            "post-end",
            "saturday",
            "independence-day",
            "early-close-post",
            "black-friday-before-early-close",
            "christmas-2026",
            "good-friday-2027",
        ],
    )
    def test_market_state(self, calendar, moment, state):
        """Sessions follow NYSE hours in New York time, with holidays and early closes from the table."""
        assert calendar.state(utc(moment)) == state
