"""Cancel against dispatch on a real ledger: the compare-and-set lets exactly one of them win."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.ledger import SqliteLedger, Task, TaskKind, TaskParams, TaskState
from bot.lifecycle.events import CancelRequested, Dispatched, Facts
from bot.lifecycle.table import decide
from bot.runner import write_decision

NOW = 1_700_000_000.0
Q = TaskState.QUEUED


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    led = SqliteLedger(tmp_path / "ledger.sqlite3", clock=lambda: NOW)
    await led.open()
    try:
        yield led
    finally:
        await led.close()


async def queued_task(ledger: SqliteLedger) -> Task:
    task = Task(
        id="0123456789ab",
        kind=TaskKind.IMAGINE,
        params=TaskParams(prompt="a lighthouse"),
        requester_id=1,
        guild_id=2,
        channel_id=3,
        application_id=4,
        interaction_id=5,
        interaction_token="tok",
        created_at=NOW,
        updated_at=NOW,
    )
    await ledger.insert(task)
    return task


async def test_a_dispatch_written_first_makes_the_cancel_lose(ledger: SqliteLedger) -> None:
    """Both were decided on the queued task; the dispatch wrote first, so the cancel writes
    nothing and the task stays on its way to KIE."""
    task = await queued_task(ledger)
    cancel = decide(Q, CancelRequested(), NOW, Facts())
    dispatch = decide(Q, Dispatched(), NOW, Facts())
    sent = await write_decision(ledger, task, dispatch, NOW)
    lost = await write_decision(ledger, task, cancel, NOW)
    stored = await ledger.get(task.id)
    assert (sent is not None, lost, stored and stored.state) == (True, None, TaskState.SUBMITTING)


async def test_a_cancel_written_first_makes_the_dispatch_lose(ledger: SqliteLedger) -> None:
    """The other order: the task ends cancelled and the dispatch writes nothing."""
    task = await queued_task(ledger)
    cancel = decide(Q, CancelRequested(), NOW, Facts())
    dispatch = decide(Q, Dispatched(), NOW, Facts())
    cancelled = await write_decision(ledger, task, cancel, NOW)
    lost = await write_decision(ledger, task, dispatch, NOW)
    assert (cancelled and cancelled.state, cancelled and cancelled.error_code, lost) == (
        TaskState.FAILED,
        "cancelled",
        None,
    )
