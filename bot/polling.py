"""When to ask KIE again about a task that is generating (pure)."""

from __future__ import annotations

CALLBACK_FALLBACK_INTERVAL = 30.0
MAX_INTERVAL = 30.0
MIN_INTERVAL = 0.25


def next_poll_delay(
    elapsed: float, estimate: float | None, base: float, *, callbacks: bool = False
) -> float:
    """Seconds until the next record-info call for a task submitted `elapsed` seconds ago.

    - With callbacks, polling is only the safety net for a lost callback: slow.
    - With an estimate (the median of recent tasks), sleep until shortly before the likely
      finish, poll densely around it, then back off for the long tail.
    - Without one (a cold start), poll at the base interval for a minute, then back off.
    """
    if callbacks:
        return max(CALLBACK_FALLBACK_INTERVAL, base * 10)
    if estimate is None or estimate <= 0:
        if elapsed < 60:
            return base
        return min(base * (1 + (elapsed - 60) / 30), MAX_INTERVAL)
    dense = max(MIN_INTERVAL, base / 2)
    approach = estimate * 0.9
    if elapsed < approach - dense:
        # One long sleep to just before the likely finish, in at most two hops.
        return max(dense, min(approach - elapsed, max(base, approach / 2)))
    if elapsed < estimate * 1.5:
        return dense
    return min(max(base, base * (elapsed - estimate) / estimate), MAX_INTERVAL)
