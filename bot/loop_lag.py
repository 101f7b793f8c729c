"""Event-loop lag: how late a timer fires, sampled a few times a second."""

from __future__ import annotations

import asyncio
import time
from collections import deque


class LagMonitor:
    """Run :meth:`run` as a background task; read :attr:`last` and :meth:`percentile`."""

    def __init__(self, interval: float = 0.25, keep: int = 240) -> None:
        self._interval = interval
        self._samples: deque[float] = deque(maxlen=keep)

    async def run(self) -> None:
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
