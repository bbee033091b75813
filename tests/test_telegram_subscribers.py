"""The SubscriberStore contract, run against SQLite and Redis; filter words and durations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.filters import FilterError, Filters, QuietHours, change, parse_duration, parse_quiet
from bot.subscribers import RedisSubscribers, SqliteSubscribers, Subscriber, SubscriberStore
from tests.factories import T0


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def subs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SubscriberStore]:
    store: SubscriberStore
    if request.param == "sqlite":
        store = SqliteSubscribers(tmp_path / "state.sqlite3")
    else:
        store = RedisSubscribers.from_url(request.getfixturevalue("redis_url"), key="test:subscribers")
    yield store
    await store.close()


def sub(chat_id: str, **kw: object) -> Subscriber:
    return Subscriber(chat_id, "private", T0, **kw)  # type: ignore[arg-type]


class TestContract:
    async def test_add_is_idempotent(self, subs: SubscriberStore) -> None:
        """Subscribing twice keeps one subscription and reports the second as not new."""
        assert await subs.add(sub("1"))
        assert not await subs.add(sub("1", filters=Filters(min_score=0.5)))
        assert await subs.count() == 1
        got = await subs.get("1")
        assert got is not None and got.filters == Filters()

    async def test_filters_round_trip(self, subs: SubscriberStore) -> None:
        """Every filter field and the mute time come back as saved."""
        filters = Filters(("NVDA",), ("easing",), 0.7, ("zh",), ("华为",), ("rumour",), QuietHours(1320, 420))
        saved = sub("1", filters=filters, muted_until=T0 + timedelta(hours=2))
        await subs.add(sub("1"))
        await subs.save(saved)
        assert await subs.get("1") == saved

    async def test_remove_and_all(self, subs: SubscriberStore) -> None:
        """Removed chats disappear from all(); removing twice reports False."""
        for chat in ("1", "2", "3"):
            await subs.add(sub(chat))
        assert await subs.remove("2")
        assert not await subs.remove("2")
        assert {s.chat_id for s in await subs.all()} == {"1", "3"}

    async def test_move_follows_a_migrated_group(self, subs: SubscriberStore) -> None:
        """move() carries the filters to the new chat id and forgets the old one."""
        await subs.add(Subscriber("-5", "group", T0, Filters(tickers=("AMD",))))
        moved = await subs.move("-5", "-1005")
        assert moved is not None and moved.chat_id == "-1005"
        assert await subs.get("-5") is None
        got = await subs.get("-1005")
        assert got is not None and got.filters.tickers == ("AMD",)
        assert await subs.move("-404", "-1404") is None


class TestWords:
    @pytest.mark.parametrize(("words", "expected"), [
        (["tickers", "nvda", "$amd"], Filters(tickers=("NVDA", "AMD"))),
        (["direction", "easing"], Filters(directions=("easing",))),
        (["score", "0.75"], Filters(min_score=0.75)),
        (["lang", "EN", "zh"], Filters(langs=("en", "zh"))),
        (["include", "Huawei", "SMIC"], Filters(include=("huawei", "smic"))),
        (["quiet", "22-7"], Filters(quiet=QuietHours(1320, 420))),
    ], ids=["tickers", "direction", "score", "lang", "include", "quiet"])
    def test_plain_words_set_a_filter(self, words: list[str], expected: Filters) -> None:
        """Each /filter form sets exactly its field."""
        assert change(Filters(), words) == expected

    def test_any_clears_and_reset_clears_all(self) -> None:
        """`FIELD any` clears one filter; `reset` clears them all."""
        full = Filters(tickers=("AMD",), min_score=0.5)
        assert change(full, ["tickers", "any"]) == Filters(min_score=0.5)
        assert change(full, ["reset"]) == Filters()

    @pytest.mark.parametrize("words", [["score", "2"], ["direction", "up"], ["colour", "red"], ["quiet", "25-7"]],
                             ids=["score", "direction", "field", "quiet"])
    def test_nonsense_is_refused(self, words: list[str]) -> None:
        """Values that do not make sense raise FilterError with a hint."""
        with pytest.raises(FilterError):
            change(Filters(), words)

    def test_quiet_hours_wrap_midnight(self) -> None:
        """22:00-07:00 contains 23:30 and 06:59 but not 07:00."""
        quiet = parse_quiet("22:00-07:00")
        assert quiet.contains(T0.replace(hour=23, minute=30)) and quiet.contains(T0.replace(hour=6, minute=59))
        assert not quiet.contains(T0.replace(hour=7, minute=0))

    def test_durations(self) -> None:
        """30m, 2h and 1d parse; more than 30 days does not."""
        assert parse_duration("30m") == timedelta(minutes=30)
        assert parse_duration("2h") == timedelta(hours=2)
        assert parse_duration("1d") == timedelta(days=1)
        with pytest.raises(FilterError):
            parse_duration("90d")
