"""Load settings: defaults from config/settings.toml, each key overridable by its environment variable.

A pure function of (config directory, environ). Secrets come from the environment only. Every problem is
collected and raised at once as one `ConfigError`.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.errors import ConfigError
from feeds.records import FeedSpec

DEFAULT_CONFIG_DIR = Path("config")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the service; names follow DESIGN.md. `repr` hides the secrets."""

    config_dir: Path
    feeds_file: Path
    db: Path
    store: str
    market: str
    tickers: tuple[str, ...]
    alert_threshold: float
    poll_interval: float
    poll_jitter: float
    min_interval: float
    fetch_timeout: float
    fetch_max_bytes: int
    fetch_max_redirects: int
    backoff_max: float
    user_agent: str
    seen_retention_days: int
    cluster_window_hours: float
    quote_timeout: float
    reaction_minutes: tuple[int, ...]
    chart_dir: Path
    console: bool
    log_level: str
    log_format: str
    metrics_port: int
    telegram_api_base_url: str
    telegram_chat_ids: tuple[str, ...]
    telegram_admin_ids: tuple[int, ...]
    telegram_mode: str
    telegram_webhook_url: str
    telegram_webhook_port: int
    telegram_webhook_listen: str
    telegram_rate: float
    stream: str
    stream_maxlen: int
    telegram_bot_token: str | None = field(default=None, repr=False)
    slack_webhook_urls: tuple[str, ...] = field(default=(), repr=False)
    redis_url: str | None = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, and the parts of it that travel alone, for redaction filters: the token's
        secret half, each webhook's path, the Redis password."""
        whole = [self.telegram_bot_token, self.redis_url, *self.slack_webhook_urls]
        parts: list[str | None] = [urlsplit(url).path for url in self.slack_webhook_urls]
        if self.telegram_bot_token:
            parts.append(self.telegram_bot_token.partition(":")[2])
            parts.extend(webhook_secrets(self.telegram_bot_token))
        if self.redis_url:
            parts.append(_password(self.redis_url))
        return tuple(v for v in whole if v) + tuple(p for p in parts if p and len(p) >= 8)  # short parts: too common


def webhook_secrets(token: str) -> tuple[str, str]:
    """The Telegram webhook's URL path and its secret-token header, derived from the bot token (never the token
    itself, and neither one gives away the other)."""
    key = token.encode()
    return (hmac.new(key, b"newsbot webhook path", hashlib.sha256).hexdigest()[:32],
            hmac.new(key, b"newsbot webhook secret token", hashlib.sha256).hexdigest())


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    env: str
    parse: Callable[[Any], Any]
    secret: bool = False


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def _list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str | int) for v in value):
        raise ValueError(f"expected a list or comma-separated text, got {value!r}")
    return tuple(str(v).strip() for v in value if str(v).strip())


def _ints(value: Any) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _list(value))
    except ValueError:
        raise ValueError(f"expected whole numbers, got {value!r}") from None


def _number(kind: type) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
        if number < 0:
            raise ValueError(f"must not be negative, got {value!r}")
        return number

    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    return parse


def _threshold(value: Any) -> float:
    number = _number(float)(value)
    if number > 1:
        raise ValueError(f"must be between 0 and 1, got {value!r}")
    return float(number)


def _optional(value: Any) -> str | None:
    return _text(value) or None


KEYS: tuple[_Key, ...] = (
    _Key("feeds_file", "NEWSBOT_FEEDS_FILE", _text),
    _Key("db", "NEWSBOT_DB", _text),
    _Key("store", "NEWSBOT_STORE", _choice("auto", "sqlite", "redis")),
    _Key("market", "NEWSBOT_MARKET", _text),
    _Key("tickers", "NEWSBOT_TICKERS", _list),
    _Key("alert_threshold", "NEWSBOT_ALERT_THRESHOLD", _threshold),
    _Key("poll_interval", "NEWSBOT_POLL_INTERVAL", _number(float)),
    _Key("poll_jitter", "NEWSBOT_POLL_JITTER", _number(float)),
    _Key("min_interval", "NEWSBOT_MIN_INTERVAL", _number(float)),
    _Key("fetch_timeout", "NEWSBOT_FETCH_TIMEOUT", _number(float)),
    _Key("fetch_max_bytes", "NEWSBOT_FETCH_MAX_BYTES", _number(int)),
    _Key("fetch_max_redirects", "NEWSBOT_FETCH_MAX_REDIRECTS", _number(int)),
    _Key("backoff_max", "NEWSBOT_BACKOFF_MAX", _number(float)),
    _Key("user_agent", "NEWSBOT_USER_AGENT", _text),
    _Key("seen_retention_days", "NEWSBOT_SEEN_RETENTION_DAYS", _number(int)),
    _Key("cluster_window_hours", "NEWSBOT_CLUSTER_WINDOW_HOURS", _number(float)),
    _Key("quote_timeout", "NEWSBOT_QUOTE_TIMEOUT", _number(float)),
    _Key("reaction_minutes", "NEWSBOT_REACTION_MINUTES", _ints),
    _Key("chart_dir", "NEWSBOT_CHART_DIR", _text),
    _Key("console", "NEWSBOT_CONSOLE", _bool),
    _Key("log_level", "NEWSBOT_LOG_LEVEL", _choice("DEBUG", "INFO", "WARNING", "ERROR")),
    _Key("log_format", "NEWSBOT_LOG_FORMAT", _choice("text", "json")),
    _Key("metrics_port", "NEWSBOT_METRICS_PORT", _number(int)),
    _Key("telegram_api_base_url", "TELEGRAM_API_BASE_URL", _text),
    _Key("telegram_chat_ids", "TELEGRAM_CHAT_IDS", _list),
    _Key("telegram_admin_ids", "TELEGRAM_ADMIN_IDS", _ints),
    _Key("telegram_mode", "TELEGRAM_MODE", _choice("polling", "webhook")),
    _Key("telegram_webhook_url", "TELEGRAM_WEBHOOK_URL", _text),
    _Key("telegram_webhook_port", "TELEGRAM_WEBHOOK_PORT", _number(int)),
    _Key("telegram_webhook_listen", "TELEGRAM_WEBHOOK_LISTEN", _text),
    _Key("telegram_rate", "TELEGRAM_RATE", _number(float)),
    _Key("stream", "NEWSBOT_STREAM", _text),
    _Key("stream_maxlen", "NEWSBOT_STREAM_MAXLEN", _number(int)),
    _Key("telegram_bot_token", "TELEGRAM_BOT_TOKEN", _optional, secret=True),
    _Key("slack_webhook_urls", "SLACK_WEBHOOK_URLS", _list, secret=True),
    _Key("redis_url", "REDIS_URL", _optional, secret=True),
)


def _read_toml(path: Path, missing: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: {missing}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def load_settings(config_dir: Path = DEFAULT_CONFIG_DIR, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `config_dir/settings.toml`, apply environment overrides, validate everything at once."""
    environ = {} if environ is None else environ
    path = config_dir / "settings.toml"
    problems: list[str] = []
    data = _read_toml(path, "not found (pass --config DIR with a settings.toml in it)")
    known = {k.name: k for k in KEYS}
    problems += [f"{path}: {name}: unknown setting" for name in data if name not in known]
    values: dict[str, Any] = {}
    for key in KEYS:
        raw, origin = _raw_value(key, data, environ, path, problems)
        if key.name == "feeds_file" and isinstance(raw, str) and not origin.startswith("environment"):
            raw = str(config_dir / raw)  # paths in settings.toml are relative to the config directory
        try:
            values[key.name] = key.parse(raw) if raw is not None else None
        except ValueError as exc:
            problems.append(f"{origin}: {exc}")
            values[key.name] = exc
    _require_defaults(values, path, problems)
    if problems:
        raise ConfigError(problems)
    return _build(config_dir, values)


def _raw_value(
    key: _Key, data: dict[str, Any], environ: Mapping[str, str], path: Path, problems: list[str]
) -> tuple[Any, str]:
    if key.secret and key.name in data:
        problems.append(f"{path}: {key.name}: secrets come from the environment only; set {key.env}")
    if key.env in environ:
        return environ[key.env], f"environment: {key.env}"
    if key.secret:
        return None, f"environment: {key.env}"
    return data.get(key.name), f"{path}: {key.name}"


def _require_defaults(values: dict[str, Any], path: Path, problems: list[str]) -> None:
    for key in KEYS:
        if not key.secret and values.get(key.name) is None:
            problems.append(f"{path}: {key.name}: missing (or set {key.env})")


def _build(config_dir: Path, values: dict[str, Any]) -> Settings:
    names = {f.name for f in fields(Settings)}
    kwargs = {k: v for k, v in values.items() if k in names and v is not None}
    kwargs.update(
        config_dir=config_dir,
        feeds_file=Path(values["feeds_file"]),
        db=Path(values["db"]),
        chart_dir=Path(values["chart_dir"]),
        tickers=tuple(t.upper() for t in values["tickers"]),
    )
    return Settings(**kwargs)


def load_feeds(path: Path, default_interval: float, min_interval: float = 10.0) -> tuple[FeedSpec, ...]:
    """The `[[feed]]` tables of a feed list; one `ConfigError` names every bad entry."""
    data = _read_toml(path, "feed list not found (set NEWSBOT_FEEDS_FILE)")
    problems: list[str] = []
    feeds: list[FeedSpec] = []
    names: set[str] = set()
    for index, entry in enumerate(data.get("feed", []), start=1):
        where = f"{path}: feed #{index}"
        feed = _feed(entry, default_interval, where, problems, min_interval)
        if feed is None:
            continue
        if feed.name in names:
            problems.append(f"{where}: name {feed.name!r} is used twice")
        names.add(feed.name)
        feeds.append(feed)
    if problems:
        raise ConfigError(problems)
    return tuple(feeds)


def _feed(
    entry: dict[str, Any], default_interval: float, where: str, problems: list[str], min_interval: float = 10.0
) -> FeedSpec | None:
    unknown = set(entry) - {"name", "url", "interval", "lang", "tags"}
    problems += [f"{where}: {key}: unknown key" for key in sorted(unknown)]
    name, url = entry.get("name"), entry.get("url")
    interval = entry.get("interval", default_interval)
    bad = []
    if not isinstance(name, str) or not name.strip():
        bad.append("name: missing")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        bad.append(f"url: must be an http(s) URL, got {url!r}")
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < min_interval:
        bad.append(f"interval: must be at least {min_interval:g} seconds, got {interval!r}")
    problems += [f"{where}: {b}" for b in bad]
    if bad:
        return None
    tags = entry.get("tags", [])
    return FeedSpec(name=str(name), url=str(url), interval_s=float(interval), lang=str(entry.get("lang", "en")),
                    tags=tuple(str(t) for t in tags) if isinstance(tags, list) else ())
