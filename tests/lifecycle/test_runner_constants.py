"""The decision table's numbers are the runner's numbers (until the runner reads them from it)."""

from __future__ import annotations

from bot import runner
from bot.lifecycle import table


def test_the_table_uses_the_runners_limits() -> None:
    """Rate-limit pause, attempt limits, not-found grace and status refresh agree."""
    names = (
        "RATE_LIMIT_PAUSE",
        "MAX_SUBMIT_ATTEMPTS",
        "MAX_DELIVERY_ATTEMPTS",
        "NOT_FOUND_GRACE",
        "STATUS_REFRESH",
    )
    assert [getattr(table, n) for n in names] == [getattr(runner, n) for n in names]
