"""A download streamed straight into discord.py's upload, its last bytes held until a check
passes: what bench/naive_bot.py's ``callback-streamed`` mode uses to measure the delivery
row's bound (bench/README.md). Bench only; the bot does not stream (see the README for why).

discord.py sends a ``discord.File``'s ``fp`` through aiohttp's FormData, which asks aiohttp's
payload registry how to write it: a `StreamedFile` is written by `_StreamedPayload` as its
chunks arrive. Its size is declared up front (the download's Content-Length), so the upload
keeps a Content-Length too. An upload whose check fails, or whose chunks fall short, is left
unfinished: the request body never completes, and Discord discards it.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp.payload
from aiohttp.abc import AbstractStreamWriter

HELD_BACK = 1024  # bytes written only once the check has passed


class UploadAbandoned(Exception):
    """The check failed or the download fell short: the upload is left unfinished."""


class StreamedFile(io.BufferedIOBase):
    """A file of `size` bytes whose chunks are `feed` as they arrive (None: the end)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._check: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._read = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # discord.File requires it; only the start is ever asked for
        return True

    def tell(self) -> int:
        return 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._read:  # a retry would send a truncated file: refuse it
            raise UploadAbandoned("a streamed file can be sent only once")
        return 0

    def feed(self, chunk: bytes | None) -> None:
        self._chunks.put_nowait(chunk)

    def checked(self, ok: bool) -> None:
        """The check is done: `ok` finishes the upload, otherwise it is abandoned."""
        if not self._check.done():
            self._check.set_result(ok)

    async def write_to(self, writer: AbstractStreamWriter) -> None:
        if self._read:
            raise UploadAbandoned("a streamed file can be sent only once")
        self._read = True
        sent, held = 0, bytearray()
        while (chunk := await self._chunks.get()) is not None:
            room = max(0, self.size - HELD_BACK - sent)
            if room:
                await writer.write(chunk[:room])
                sent += min(room, len(chunk))
            held += chunk[room:]
        if sent + len(held) != self.size or not await self._check:
            raise UploadAbandoned("the download fell short or the check failed")
        await writer.write(bytes(held))


class _StreamedPayload(aiohttp.payload.Payload):
    _value: StreamedFile

    def __init__(self, value: StreamedFile, *args: Any, **kwargs: Any) -> None:
        super().__init__(value, *args, **kwargs)
        self._size = value.size

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a streamed upload has no text form")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self._value.write_to(writer)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        await self._value.write_to(writer)


aiohttp.payload.PAYLOAD_REGISTRY.register(
    _StreamedPayload, StreamedFile, order=aiohttp.payload.Order.try_first
)
