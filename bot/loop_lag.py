"""Event-loop lag: how late a timer fires, sampled a few times a second."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque


class LagMonitor:
    def __init__(self, interval: float = 0.25, keep: int = 240) -> None:
        self._interval = interval
        self._samples: deque[float] = deque(maxlen=keep)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kontext-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(self._interval)
            self._samples.append(max(0.0, time.monotonic() - start - self._interval))

    @property
    def last(self) -> float:
        return self._samples[-1] if self._samples else 0.0

    def percentile(self, q: float) -> float:
        if not self._samples:
            return 0.0
        ordered = sorted(self._samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
