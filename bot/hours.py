"""NYSE trading hours: which session a moment falls in, from a small holiday table in config/."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.records import MarketState

DEFAULT_CALENDAR_FILE = Path(__file__).resolve().parent.parent / "config" / "nyse_calendar.toml"


@dataclass(frozen=True, slots=True)
class MarketCalendar:
    """US equity sessions: pre-market, regular, post-market; weekends and listed holidays closed."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/New_York"))
    holidays: frozenset[date] = frozenset()
    early_closes: frozenset[date] = frozenset()
    pre_open: time = time(4, 0)
    regular_open: time = time(9, 30)
    regular_close: time = time(16, 0)
    early_close: time = time(13, 0)
    post_minutes: int = 240

    @classmethod
    def from_file(cls, path: Path = DEFAULT_CALENDAR_FILE) -> MarketCalendar:
        """Load the calendar TOML; raises ValueError naming the file when it is malformed."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            return cls(
                zone=ZoneInfo(data.get("timezone", "America/New_York")),
                holidays=frozenset(data.get("holidays", ())),
                early_closes=frozenset(data.get("early_closes", ())),
                pre_open=time.fromisoformat(data.get("pre_open", "04:00")),
                regular_open=time.fromisoformat(data.get("regular_open", "09:30")),
                regular_close=time.fromisoformat(data.get("regular_close", "16:00")),
                early_close=time.fromisoformat(data.get("early_close", "13:00")),
                post_minutes=int(data.get("post_minutes", 240)),
            )
        except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: bad market calendar: {exc}") from exc

    def local_date(self, moment: datetime) -> date:
        """The exchange-local calendar date of a UTC moment."""
        return moment.astimezone(self.zone).date()

    def is_trading_day(self, day: date) -> bool:
        """True on weekdays that are not exchange holidays."""
        return day.weekday() < 5 and day not in self.holidays

    def close_time(self, day: date) -> time:
        """The regular-session close of a trading day (13:00 on early-close days)."""
        return self.early_close if day in self.early_closes else self.regular_close

    def close_at(self, day: date) -> datetime:
        """The regular-session close of `day` as an aware datetime."""
        return datetime.combine(day, self.close_time(day), self.zone)

    def state(self, now: datetime) -> MarketState:
        """The session `now` falls in: pre, regular, post or closed."""
        local = now.astimezone(self.zone)
        day = local.date()
        if not self.is_trading_day(day):
            return "closed"
        close = self.close_at(day)
        if local < datetime.combine(day, self.pre_open, self.zone):
            return "closed"
        if local < datetime.combine(day, self.regular_open, self.zone):
            return "pre"
        if local < close:
            return "regular"
        if local < close + timedelta(minutes=self.post_minutes):
            return "post"
        return "closed"
