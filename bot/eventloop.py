"""The event loop the service runs on: uvloop where it is installed, asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop when available: on the 1,000-feed bench a warm cycle costs a quarter
    less CPU (bench/README.md); every library newsbot uses (httpx, PTB, APScheduler, redis) runs on both."""
    try:
        import uvloop
    except ImportError:  # optional: Windows, or an install without it
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def settle() -> None:
    """Call once the service is built: what start-up made (modules, lexicons, clients) lives as long as the
    process, so it is frozen out of the collector's full passes (they cost a tenth of a warm poll cycle)."""
    gc.collect()
    gc.freeze()
