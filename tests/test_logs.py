"""Log output: the JSON format carries context ids, and secrets are redacted in every format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure_logging, log_context

SECRET = "123456:ABC-telegram-token"


@pytest.fixture
def restore_root() -> Iterator[None]:
    """configure_logging replaces the root handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_root")
class TestJsonFormat:
    def test_one_object_per_line_with_context_ids(self) -> None:
        """Each record is one JSON object with time, level, logger, message and the feed and alert ids."""
        out = io.StringIO()
        configure_logging("INFO", [], out, log_format="json")
        logging.getLogger("newsbot.poll").info("feed %s: %d new", "wire", 2, extra={"feed": "wire", "alert": "a_1"})
        (entry,) = lines(out)
        assert entry["level"] == "INFO" and entry["logger"] == "newsbot.poll"
        assert entry["message"] == "feed wire: 2 new"
        assert entry["feed"] == "wire" and entry["alert"] == "a_1"
        assert str(entry["time"]).endswith("+00:00")

    def test_ids_absent_when_not_given(self) -> None:
        """A record without context has no feed or alert keys at all."""
        out = io.StringIO()
        configure_logging("INFO", [], out, log_format="json")
        logging.getLogger("newsbot").info("started")
        assert set(lines(out)[0]) == {"time", "level", "logger", "message"}

    def test_log_context_tags_everything_inside(self) -> None:
        """Inside `log_context(feed=...)` every record carries the feed; an explicit extra wins; outside none."""
        out = io.StringIO()
        configure_logging("INFO", [], out, log_format="json")
        with log_context(feed="wire"):
            logging.getLogger("feeds.fetch").warning("slow")
            logging.getLogger("newsbot.poll").info("alert", extra={"feed": "other", "alert": "a_1"})
        logging.getLogger("newsbot").info("after")
        first, second, third = lines(out)
        assert first["feed"] == "wire"
        assert second["feed"] == "other" and second["alert"] == "a_1"
        assert "feed" not in third

    def test_secrets_are_redacted_in_message_and_exception(self) -> None:
        """A token in the message or in a traceback never reaches the JSON output."""
        out = io.StringIO()
        configure_logging("INFO", [SECRET], out, log_format="json")
        try:
            raise RuntimeError(f"POST https://api.telegram.org/bot{SECRET}/sendMessage failed")
        except RuntimeError:
            logging.getLogger("newsbot").exception("send to bot%s failed", SECRET, extra={"alert": "a_1"})
        text = out.getvalue()
        assert SECRET not in text
        (entry,) = lines(out)
        assert "***" in str(entry["message"]) and "***" in str(entry["exception"])
        assert entry["alert"] == "a_1"

    def test_exception_without_secrets_is_included(self) -> None:
        """With no secrets configured the traceback is still written, as one JSON string."""
        out = io.StringIO()
        configure_logging("INFO", [], out, log_format="json")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("newsbot").exception("failed")
        assert "ValueError: boom" in str(lines(out)[0]["exception"])


@pytest.mark.usefixtures("restore_root")
def test_text_format_is_the_default() -> None:
    """Without a format the output is readable text, redacted too."""
    out = io.StringIO()
    configure_logging("INFO", [SECRET], out)
    logging.getLogger("newsbot").warning("token %s", SECRET)
    assert out.getvalue().rstrip().endswith("WARNING newsbot: token ***")
