"""Result downloads started on a verified KIE callback, before record-info confirms the result.

A callback's body names the result URL; downloading it while record-info is asked saves the
download's time on the way to Discord. Record-info stays the authority: a prefetch is handed
over only for the URL record-info gave (`take`), anything else is dropped unused. At most
`limit` prefetches are held at once, each for at most `keep_for` seconds, and only from an
origin (scheme, host, port) that record-info has named for a result before, so a callback
cannot make the bot fetch from anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

KNOWN_ORIGINS = 8  # the result origins remembered (KIE serves its files from one or two)


class Timer(Protocol):
    def cancel(self) -> None: ...


# Runs a callable after a delay (the event loop's call_later): tests pass their own.
Schedule = Callable[[float, Callable[[], None]], Timer]


@dataclass
class _Prefetch:
    url: str
    download: asyncio.Task[bytes | None]
    expiry: Timer


def origin_of(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port)
    except ValueError:
        return None


class Prefetches:
    def __init__(
        self,
        fetch: Callable[[str], Awaitable[bytes]],
        *,
        limit: int,
        keep_for: float,
        schedule: Schedule | None = None,
    ) -> None:
        self._fetch = fetch
        self._limit = limit
        self._keep_for = keep_for
        self._schedule = schedule
        self._held: dict[str, _Prefetch] = {}  # by task id
        self._origins: deque[tuple[str, str, int | None]] = deque(maxlen=KNOWN_ORIGINS)

    def __len__(self) -> int:
        return len(self._held)

    def confirmed(self, url: str) -> None:
        """Record-info named `url` as a task's result: its origin may be prefetched from."""
        origin = origin_of(url)
        if origin is not None and origin not in self._origins:
            self._origins.append(origin)

    def start(self, task_id: str, url: str) -> bool:
        """Start downloading `url` for `task_id`; False (nothing started) when one is held for
        the task already, `limit` are held, or record-info never named the URL's origin."""
        if task_id in self._held or len(self._held) >= self._limit:
            return False
        if origin_of(url) not in self._origins:
            return False
        schedule = self._schedule or asyncio.get_running_loop().call_later
        download = asyncio.create_task(self._download(task_id, url))
        expiry = schedule(self._keep_for, lambda: self._expire(task_id, download))
        self._held[task_id] = _Prefetch(url, download, expiry)
        return True

    async def take(self, task_id: str, url: str) -> bytes | None:
        """The bytes prefetched for `task_id` if they are of `url` (record-info's result URL)
        and the download succeeded; None otherwise (the caller downloads it itself)."""
        held = self._held.pop(task_id, None)
        if held is None:
            return None
        held.expiry.cancel()
        if held.url != url:
            held.download.cancel()
            log.warning("task %s: record-info's result URL is not the callback's", task_id)
            return None
        return await held.download

    def drop(self, task_id: str) -> None:
        held = self._held.pop(task_id, None)
        if held is not None:
            held.expiry.cancel()
            held.download.cancel()

    def _expire(self, task_id: str, download: asyncio.Task[bytes | None]) -> None:
        held = self._held.get(task_id)
        if held is not None and held.download is download:
            self.drop(task_id)

    async def _download(self, task_id: str, url: str) -> bytes | None:
        try:
            return await self._fetch(url)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("prefetch of task %s's result failed (%s)", task_id, type(exc).__name__)
            return None
