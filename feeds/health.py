"""Per-feed conditional-GET validators and health, and the back-off rule after failures."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

BASE_BACKOFF_S = 60.0


@dataclass(frozen=True, slots=True)
class Validators:
    """What the last good response told us, for the next conditional GET."""

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """How a feed has been doing; kept in the state store."""

    failures: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    last_status: int | None = None
    last_ok_at: datetime | None = None
    last_polled_at: datetime | None = None
    items: int = 0
    latency_ms: float | None = None

    def due(self, now: datetime) -> bool:
        return self.next_attempt_at is None or now >= self.next_attempt_at


@dataclass(frozen=True, slots=True)
class FeedState:
    validators: Validators = Validators()
    health: FeedHealth = FeedHealth()


def backoff_delay(failures: int, cap: float, rng: random.Random | None = None) -> float:
    """Exponential back-off from one minute, doubled per failure, capped, with up to 10% jitter."""
    delay = min(cap, BASE_BACKOFF_S * 2 ** max(0, failures - 1))
    return delay * (1 + 0.1 * (rng or random).random()) if delay < cap else cap


def after_success(health: FeedHealth, now: datetime, items: int, latency_ms: float, status: int) -> FeedHealth:
    """A good poll clears the failure count; the feed is due again on its normal schedule."""
    return replace(
        health,
        failures=0,
        next_attempt_at=None,
        last_error=None,
        last_status=status,
        last_ok_at=now,
        last_polled_at=now,
        items=items,
        latency_ms=latency_ms,
    )


def after_failure(
    health: FeedHealth, now: datetime, error: str, cap: float, retry_after: float | None = None,
    status: int | None = None,
) -> FeedHealth:
    """A failed poll backs this feed off (never its host): Retry-After if the server gave one, else exponential."""
    failures = health.failures + 1
    delay = max(retry_after or 0.0, backoff_delay(failures, cap))
    delay = min(delay, max(cap, retry_after or 0.0), 24 * 3600.0)
    return replace(
        health,
        failures=failures,
        next_attempt_at=now + timedelta(seconds=delay),
        last_error=error,
        last_status=status,
        last_polled_at=now,
    )
