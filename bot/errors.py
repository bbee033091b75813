"""The one exception hierarchy of newsbot.

    NewsbotError
    ├── ConfigError              settings or data files are wrong (lists every problem)
    ├── FeedError                one feed could not be fetched or parsed
    │   ├── FeedHTTPError        the server answered an error status (carries status, retry_after)
    │   ├── FeedTooLarge         body or decompressed body over the limit
    │   └── FeedUnreadable       the body is not a feed
    ├── StoreError               the state store failed (SQLite locked, Redis unreachable)
    ├── UrlRefused               a feed URL given at run time is not allowed (scheme, internal address)
    └── DeliveryError            a sink could not deliver one message to one target
        ├── RetryableDelivery    try again later (429, 5xx, time-out, connection lost); carries retry_after
        └── PermanentDelivery    never going to work (blocked, no_service, archived); parked for an operator

Adapters translate library exceptions into these with ``raise ... from exc``. Messages never carry secrets.
"""

from __future__ import annotations


class NewsbotError(Exception):
    """Base class of every error newsbot raises on purpose."""


class ConfigError(NewsbotError):
    """Settings or data files are wrong; `problems` lists every one as "file: key: what"."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class FeedError(NewsbotError):
    """One feed could not be fetched or parsed."""

    retry_after: float | None = None


class FeedHTTPError(FeedError):
    """The feed's server answered an error status."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}" + (f" (retry after {retry_after:.0f}s)" if retry_after else ""))


class FeedTooLarge(FeedError):
    """The body (or its decompressed form) is over the size limit."""


class FeedUnreadable(FeedError):
    """The body is not a feed we can read."""


class StoreError(NewsbotError):
    """The state store failed."""


class UrlRefused(NewsbotError):
    """A feed URL given at run time is not one the bot may fetch; the message says why."""


class DeliveryError(NewsbotError):
    """A sink could not deliver one message to one target."""


class RetryableDelivery(DeliveryError):
    """Try again later; `retry_after` seconds if the peer said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class PermanentDelivery(DeliveryError):
    """Will never work for this target; the delivery is parked for an operator."""

    def __init__(self, message: str, *, unsubscribe: bool = False, moved_to: str | None = None) -> None:
        self.unsubscribe = unsubscribe
        self.moved_to = moved_to
        super().__init__(message)
