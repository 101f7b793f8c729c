"""When to ask KIE again about a task that is generating (pure)."""

from __future__ import annotations

from collections import deque

CALLBACK_FALLBACK_INTERVAL = 30.0
MAX_INTERVAL = 30.0
MIN_INTERVAL = 0.25


def next_poll_delay(
    elapsed: float, estimate: float | None, base: float, *, callbacks: bool = False
) -> float:
    """Seconds until the next record-info call for a task submitted `elapsed` seconds ago.

    - With callbacks, polling is only the safety net for a lost callback: slow.
    - With an estimate (the median of recent tasks), halve the distance to the likely finish
      at each poll (a few long sleeps, then dense polls right around it); after it, widen
      the gaps the same way for the long tail. A 20-s task costs about 7 calls and is seen
      within a quarter of the base interval of finishing near the estimate.
    - Without one (a cold start), poll at the base interval for a minute, then back off.
    """
    if callbacks:
        return max(CALLBACK_FALLBACK_INTERVAL, base * 10)
    if estimate is None or estimate <= 0:
        if elapsed < 60:
            return base
        return min(base * (1 + (elapsed - 60) / 30), MAX_INTERVAL)
    dense = max(MIN_INTERVAL, base / 4)
    if elapsed < estimate:
        return max(dense, (estimate - elapsed) / 2)
    # Past the estimate the gaps grow by half each time, up to half the estimate.
    return max(dense, min((elapsed - estimate) / 2, max(base, estimate / 2), MAX_INTERVAL))


class PollPacer:
    """At most `per_second` record-info calls start in any one second (the account's poll rate).

    Times are monotonic seconds, passed in.
    """

    def __init__(self, per_second: int) -> None:
        self._per_second = per_second
        self._starts: deque[float] = deque()  # record-info starts in the last second

    def budget(self, now: float) -> int:
        """How many polls may start at `now`."""
        while self._starts and now - self._starts[0] >= 1.0:
            self._starts.popleft()
        return self._per_second - len(self._starts)

    def started(self, now: float) -> None:
        self._starts.append(now)

    def frees_at(self) -> float:
        """When the budget grows again (call it when `budget` is spent)."""
        return self._starts[0] + 1.0
