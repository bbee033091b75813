"""The Redis stream sink: one XADD per alert or reaction, exactly once per id, capped with MAXLEN ~.

The write is idempotent: one Lua script checks a per-id marker key and, only when it is absent, XADDs and sets
the marker (with a TTL far beyond any outbox retry), atomically. A crash between XADD and the outbox's
acknowledgement therefore repeats only the script, which answers with the entry id already added.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from bot.codec import stream_entry
from bot.errors import PermanentDelivery, RetryableDelivery
from bot.records import Message

log = logging.getLogger("newsbot.stream")

MARKER_TTL_S = 90 * 24 * 3600  # far longer than any retry: parked deliveries can be requeued weeks later

# KEYS[1] stream, KEYS[2] marker; ARGV[1] maxlen, ARGV[2] kind, ARGV[3] JSON, ARGV[4] marker TTL (s).
# Returns {entry id, 1 if added now / 0 if it was already there}.
ADD_ONCE = """
local existing = redis.call('GET', KEYS[2])
if existing then return {existing, 0} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'kind', ARGV[2], 'alert', ARGV[3])
redis.call('SET', KEYS[2], id, 'EX', ARGV[4])
return {id, 1}
"""


def marker_key(stream: str, entry_id: str) -> str:
    """The per-id marker, in the stream's Redis Cluster slot (same hash tag) so the script may touch both."""
    start = stream.find("{")
    has_tag = start >= 0 and stream.find("}", start + 1) > start + 1
    base = stream if has_tag else "{" + stream + "}"
    return f"{base}:added:{entry_id}"


def entry_json(message: Message) -> str:
    """The entry's `alert` field: compact JSON per docs/alert.schema.json (unknown numbers become null)."""
    return json.dumps(_finite(stream_entry(message)), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class StreamSink:
    """Appends each message to the stream once; ordered, so after an outage the stream catches up in order."""

    name = "stream"
    max_concurrency = 1
    ordered = True

    def __init__(
        self,
        client: Redis,
        stream: str,
        maxlen: int,
        *,
        marker_ttl_s: int = MARKER_TTL_S,
        timeout: float = 3.0,
        after_add: Callable[[str, str], None] | None = None,
    ) -> None:
        self._client = client
        self._stream = stream
        self._maxlen = maxlen
        self._ttl = marker_ttl_s
        self._timeout = timeout  # a hung Redis must not hold a drain (and the other sinks' next one) for long
        self._add_once = client.register_script(ADD_ONCE)
        self._after_add = after_add or (lambda message_id, entry_id: None)  # a test seam: crash right here

    async def targets(self, message: Message) -> Sequence[str]:
        return ("stream",)

    async def deliver(self, message: Message, target: str, reply_to: str | None) -> str | None:
        keys = [self._stream, marker_key(self._stream, message.id)]
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._add_once(keys=keys, args=[self._maxlen, message.kind, entry_json(message),
                                                              self._ttl])
        except TimeoutError:
            raise RetryableDelivery(f"redis stream: no answer within {self._timeout:.0f}s") from None
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise RetryableDelivery(f"redis stream: Redis unreachable ({type(exc).__name__})") from None
        except redis_errors.ResponseError as exc:
            if "WRONGTYPE" in str(exc):
                raise PermanentDelivery(f"redis stream: key {self._stream} is not a stream") from None
            raise RetryableDelivery(f"redis stream: {str(exc)[:200]}") from None
        except redis_errors.RedisError as exc:
            raise RetryableDelivery(f"redis stream: {type(exc).__name__}") from None
        entry_id, added = _text(reply[0]), int(reply[1])
        if not added:
            log.info("stream: %s %s was already added as %s; not added again", message.kind, message.id, entry_id)
        self._after_add(message.id, entry_id)
        return entry_id


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
