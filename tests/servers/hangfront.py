"""A TCP front that hangs the first connections and pipes the rest to a real server: a peer that times out."""

from __future__ import annotations

import asyncio


class HangFirst:
    """A TCP front for the Bot API stand-in: the first `hang` connections are accepted and never answered,
    later ones are piped through."""

    def __init__(self, target_port: int, hang: int = 1) -> None:
        self.target_port = target_port
        self.hang = hang
        self.hung = 0
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> HangFirst:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self.server is not None
        self.server.close()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/bot"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.hung < self.hang:
            self.hung += 1
            await self.release.wait()
        else:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
