"""Logging set-up: short readable lines (or one JSON object per line) on standard error, secrets redacted.

Feed and alert ids travel as `extra={"feed": ..., "alert": ...}` on a log call, or for everything logged inside
`with log_context(feed=...)` (a context variable: each asyncio task has its own); the JSON format puts them in
their own keys, the text format leaves the message as it is.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

REDACTED = "***"

_context: ContextVar[dict[str, str]] = ContextVar("newsbot_log_context", default={})  # noqa: B039 - never mutated


@contextmanager
def log_context(**ids: str) -> Iterator[None]:
    """Every record logged inside (in this task) carries these ids, unless the call passes its own."""
    token = _context.set({**_context.get(), **ids})
    try:
        yield
    finally:
        _context.reset(token)


class ContextIds(logging.Filter):
    """Copies the ids of the current `log_context` onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class RedactSecrets(logging.Filter):
    """Replaces every secret value in a record's final message (and exception text) with ***."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
            if record.exc_info:
                formatter = logging.Formatter()
                record.exc_text = self.redact(formatter.formatException(record.exc_info))
                record.exc_info = None
        return True


CONTEXT_KEYS = ("feed", "alert", "sink", "lease")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, context ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(
    level: str, secrets: Sequence[str], stream: TextIO | None = None, log_format: str = "text"
) -> None:
    """Root handler with redaction; chatty libraries (whose request logs carry URLs with tokens) quietened."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(ContextIds())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "telegram", "apscheduler", "hpack", "yfinance", "peewee", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
