"""Logging set-up: short readable lines on standard error, with every secret redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TextIO

REDACTED = "***"


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


def configure_logging(level: str, secrets: Sequence[str], stream: TextIO | None = None) -> None:
    """Root handler with redaction; chatty libraries (whose request logs carry URLs with tokens) quietened."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "telegram", "apscheduler", "hpack", "yfinance", "peewee", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
