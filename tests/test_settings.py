"""Settings and feed-list loading: defaults, environment overrides, one error listing every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import load_feeds, load_settings
from tests.conftest import CONFIG


class TestLoadSettings:
    def test_defaults_load_without_environment(self) -> None:
        """The shipped settings.toml loads with no environment at all."""
        settings = load_settings(CONFIG, {})
        assert settings.tickers == ("NVDA", "AMD")
        assert settings.telegram_bot_token is None and settings.redis_url is None
        assert settings.stream == "newsbot:alerts"

    def test_environment_overrides_file(self) -> None:
        """Each key is overridden by its environment variable."""
        env = {"NEWSBOT_TICKERS": "nvda, amd,tsm", "NEWSBOT_ALERT_THRESHOLD": "0.7", "TELEGRAM_CHAT_IDS": "-100,-200",
               "NEWSBOT_DB": "/tmp/x.sqlite3", "SLACK_WEBHOOK_URLS": "https://hooks.example/a,https://hooks.example/b"}
        settings = load_settings(CONFIG, env)
        assert settings.tickers == ("NVDA", "AMD", "TSM")
        assert settings.alert_threshold == 0.7
        assert settings.telegram_chat_ids == ("-100", "-200")
        assert settings.db == Path("/tmp/x.sqlite3")
        assert len(settings.slack_webhook_urls) == 2

    def test_every_problem_is_listed_at_once(self) -> None:
        """Several bad values produce one error that names each variable."""
        env = {"NEWSBOT_ALERT_THRESHOLD": "2", "NEWSBOT_CONSOLE": "maybe", "NEWSBOT_POLL_INTERVAL": "soon"}
        with pytest.raises(ConfigError) as info:
            load_settings(CONFIG, env)
        text = str(info.value)
        for name in env:
            assert name in text
        assert len(info.value.problems) == 3

    def test_secret_in_file_is_refused(self, tmp_path: Path) -> None:
        """A secret written into settings.toml is an error that says which variable to use."""
        text = (CONFIG / "settings.toml").read_text() + '\ntelegram_bot_token = "123:abc"\nbogus = 1\n'
        (tmp_path / "settings.toml").write_text(text)
        with pytest.raises(ConfigError) as info:
            load_settings(tmp_path, {})
        assert any("TELEGRAM_BOT_TOKEN" in p for p in info.value.problems)
        assert any("bogus: unknown setting" in p for p in info.value.problems)
        assert "123:abc" not in str(info.value)

    def test_repr_hides_secrets(self) -> None:
        """Printing the settings never shows the token, webhook URLs or Redis URL."""
        env = {"TELEGRAM_BOT_TOKEN": "123456:SECRET", "SLACK_WEBHOOK_URLS": "https://hooks.example/SECRET2",
               "REDIS_URL": "redis://:SECRET3@localhost"}
        text = repr(load_settings(CONFIG, env))
        assert "SECRET" not in text


class TestLoadFeeds:
    def test_shipped_feed_list_is_valid(self) -> None:
        """The curated list loads, has at least 30 feeds and covers the required languages."""
        feeds = load_feeds(CONFIG / "feeds.toml", 300)
        assert len(feeds) >= 30
        assert {"en", "de", "zh", "ja", "fr", "ko"} <= {f.lang for f in feeds}
        assert any("gov" in f.tags for f in feeds)

    def test_bad_entries_are_all_reported(self, tmp_path: Path) -> None:
        """Missing names, non-http URLs, tiny intervals and duplicates are reported together."""
        path = tmp_path / "feeds.toml"
        path.write_text(
            '[[feed]]\nname = "a"\nurl = "ftp://x"\n'
            '[[feed]]\nurl = "https://x"\n'
            '[[feed]]\nname = "b"\nurl = "https://x"\ninterval = 1\n'
            '[[feed]]\nname = "c"\nurl = "https://x"\n[[feed]]\nname = "c"\nurl = "https://y"\n'
        )
        with pytest.raises(ConfigError) as info:
            load_feeds(path, 300)
        problems = info.value.problems
        assert len(problems) == 4
        assert any("ftp://x" in p for p in problems) and any("used twice" in p for p in problems)


class TestStoreChoice:
    @pytest.mark.parametrize(
        ("env", "expected"),
        [
            ({}, "SqliteStore"),
            ({"REDIS_URL": "redis://127.0.0.1:6379/9"}, "RedisStore"),
            ({"REDIS_URL": "redis://127.0.0.1:6379/9", "NEWSBOT_STORE": "sqlite"}, "SqliteStore"),
        ],
        ids=["embedded-default", "auto-with-redis", "sqlite-beside-a-redis-stream"],
    )
    async def test_store_follows_the_setting(self, tmp_path: Path, env: dict[str, str], expected: str) -> None:
        """NEWSBOT_STORE=auto uses Redis when REDIS_URL is set; sqlite keeps state local beside a Redis stream."""
        from bot.redis_store import open_store

        store = open_store(load_settings(CONFIG, {"NEWSBOT_DB": str(tmp_path / "s.db"), **env}))
        try:
            assert type(store).__name__ == expected
        finally:
            await store.close()

    def test_redis_store_without_redis_url_is_an_error(self) -> None:
        """Asking for the Redis store without REDIS_URL says what is missing."""
        from bot.redis_store import open_store

        with pytest.raises(ConfigError, match="REDIS_URL"):
            open_store(load_settings(CONFIG, {"NEWSBOT_STORE": "redis"}))
