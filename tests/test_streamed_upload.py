"""bench/streamed_upload.py: the delivery bound's streamed upload sends every byte once its
check passes, and leaves the upload unfinished (its last bytes unsent) when it fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bench.streamed_upload import HELD_BACK, StreamedFile, UploadAbandoned

DATA = bytes(range(256)) * 40  # 10,240 bytes


class Collecting:
    """A stream writer that keeps what it is given; `all_but_held` is set once everything
    but the held-back bytes has been written."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.all_but_held = asyncio.Event()

    async def write(self, chunk: Any) -> None:
        self.written += chunk
        if len(self.written) >= len(DATA) - HELD_BACK:
            self.all_but_held.set()


async def stream(ok: bool) -> tuple[Collecting, asyncio.Task[None]]:
    file, writer = StreamedFile(len(DATA)), Collecting()
    upload = asyncio.create_task(file.write_to(writer))  # type: ignore[arg-type]
    for start in range(0, len(DATA), 3000):
        file.feed(DATA[start : start + 3000])
    file.feed(None)
    await writer.all_but_held.wait()
    assert len(writer.written) == len(DATA) - HELD_BACK  # the rest waits for the check
    file.checked(ok)
    return writer, upload


async def test_a_passed_check_sends_the_whole_file() -> None:
    writer, upload = await stream(ok=True)
    await upload
    assert bytes(writer.written) == DATA


async def test_a_failed_check_leaves_the_last_bytes_unsent() -> None:
    writer, upload = await stream(ok=False)
    with pytest.raises(UploadAbandoned):
        await upload
    assert bytes(writer.written) == DATA[: len(DATA) - HELD_BACK]
