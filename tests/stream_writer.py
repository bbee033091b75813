"""A delivering process for the crash test: real outbox + StreamSink on a SQLite store.

    python -m tests.stream_writer DB REDIS_URL STREAM COUNT [--kill-after-add N]

Enqueues alerts a_1..a_COUNT (ids already in the outbox are skipped) and drains until nothing is due. With
`--kill-after-add N` the process SIGKILLs itself right after the N-th XADD returns, before the outbox records
the acknowledgement: the crash the idempotent stream write exists for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from datetime import UTC, datetime

from bot.outbox import Outbox
from bot.redis_store import redis_client
from bot.store import SqliteStore
from bot.stream import StreamSink
from tests.factories import make_message


def killer(after: int) -> object:
    added = 0

    def hook(message_id: str, entry_id: str) -> None:
        nonlocal added
        added += 1
        if added == after:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


async def main(args: argparse.Namespace) -> None:
    store = SqliteStore(args.db)
    client = redis_client(args.redis_url)
    hook = killer(args.kill_after_add) if args.kill_after_add else None
    sink = StreamSink(client, args.stream, 1000, after_add=hook)  # type: ignore[arg-type]
    outbox = Outbox(store, {"stream": sink}, lambda: datetime.now(UTC))
    for n in range(1, args.count + 1):
        await outbox.enqueue(make_message(f"a_{n}"))
    while (await outbox.drain()).delivered:
        pass
    print(f"pending={await store.outbox_depth()}", flush=True)
    await client.aclose()
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("redis_url")
    parser.add_argument("stream")
    parser.add_argument("count", type=int)
    parser.add_argument("--kill-after-add", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
