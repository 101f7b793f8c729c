"""When to ask KIE again about a task that is generating (pure)."""

from __future__ import annotations

from collections import deque

CALLBACK_FALLBACK_INTERVAL = 30.0
MAX_INTERVAL = 30.0
MIN_INTERVAL = 0.25
WINDOW = 0.1  # a task is expected to finish within ±10 % of the estimate
DENSE_SHARE = 0.044  # the gap between polls inside that window, as a share of the estimate
GUESS_MAX_GAPS = 5.0  # on a guessed estimate, no gap longer than 5 base intervals


def next_poll_delay(
    elapsed: float,
    estimate: float | None,
    base: float,
    *,
    callbacks: bool = False,
    guessed: bool = False,
    early: float | None = None,
) -> float:
    """Seconds until the next record-info call for a task submitted `elapsed` seconds ago.

    - With callbacks, polling is only the safety net for a lost callback: slow.
    - With an estimate (the median of the model's recent tasks, or its typical time when
      `guessed`): one look at `early` (the model's fast tasks: their 10th percentile; halfway
      without it) unless that is inside the window, then polls every 4.4 % of the estimate
      (within [base/4, base]) from 10 % before it to 10 % after it, where the finishes land;
      after that the gaps widen by half the time past the estimate, up to half the estimate.
      A 20-s task (± 10 %) costs at most 6 calls and is seen ~0.4 s after it finishes.
    - A guessed estimate is no more than a guess: gaps stay within 5 base intervals, so a
      task far from it (a simulator's 0.3-s task against 20 s) is still seen soon.
    - Without one, poll at the base interval for a minute, then back off.
    """
    if callbacks:
        return max(CALLBACK_FALLBACK_INTERVAL, base * 10)
    if estimate is None or estimate <= 0:
        if elapsed < 60:
            return base
        return min(base * (1 + (elapsed - 60) / 30), MAX_INTERVAL)
    look = estimate / 2 if guessed or early is None else early
    gap = _gap(elapsed, estimate, base, look)
    return min(gap, GUESS_MAX_GAPS * base) if guessed else gap


def _gap(elapsed: float, estimate: float, base: float, look: float) -> float:
    dense = min(max(MIN_INTERVAL, base / 4, estimate * DENSE_SHARE), max(base, MIN_INTERVAL))
    # The first poll inside the window comes half a gap in: the window's edge is its least
    # likely finish, and the last poll then lands on the window's other edge.
    opens, closes = estimate * (1 - WINDOW) + dense / 2, estimate * (1 + WINDOW)
    if elapsed < opens:
        looking = elapsed < look - dense and look < opens - dense  # not one just before it
        target = look if looking else opens
        return max(target - elapsed, MIN_INTERVAL / 5)
    if elapsed < closes:
        return dense
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
