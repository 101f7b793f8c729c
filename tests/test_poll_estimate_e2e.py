"""The poll schedule starts warm after a restart: each model's estimate comes from the
ledger's finished tasks of that model (issue 16), not from a guess or from other models."""

from __future__ import annotations

from typing import Any

from ledger.test_sqlite_ledger import make_task

from bot.flux import MAX, PRO
from bot.ledger import Task, TaskParams, TaskState, open_ledger


def finished(task_id: str, model: str, seconds: float) -> Task:
    return make_task(task_id, created=1000.0).with_changes(
        params=TaskParams(prompt="earlier", model=model),
        state=TaskState.DONE,
        submitted_at=1000.0,
        completed_at=1000.0 + seconds,
    )


async def test_a_pro_task_is_polled_around_the_pro_tasks_before_the_restart(
    discord_fake: Any, kie_sim: Any, bot_env: dict[str, str], bot_factory: Any
) -> None:
    """Three Pro tasks took 12 s and three Max tasks 6 s before this bot started. A 12-s Pro
    task is first polled just inside the ±10 % window around 12 s (~11 s) and seen before 14 s.
    Other schedules look earlier: every POLL_INTERVAL_SECONDS (the old one), at 10 s (Pro's
    typical 20 s, a guess), at 6 s (both models mixed: a median of 9 s, the fast tenth 6 s)."""
    ledger = open_ledger(bot_env["DATABASE_URL"])
    await ledger.open()
    for i in range(3):
        await ledger.insert(finished(f"pro{i}", PRO, 12.0))
        await ledger.insert(finished(f"max{i}", MAX, 6.0))
    await ledger.close()
    kie_sim.config.delay = 12.0
    await bot_factory(POLL_INTERVAL_SECONDS="2")
    inter = await discord_fake.slash("imagine", {"prompt": "a lighthouse at dusk"})
    await discord_fake.wait_for_conversation(inter, lambda c: c.files, timeout=60)
    created = next(c.at for c in kie_sim.calls if c.endpoint == "generate")
    polls = [c.at - created for c in kie_sim.calls if c.endpoint == "record-info"]
    assert (polls[0] >= 10.5, polls[-1] < 14.0) == (True, True), polls
