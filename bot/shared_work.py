"""This process's part of the work when several processes share one ledger (issue 15).

- Leases: the tasks this process creates are written leased to it; it renews its leases while
  it lives, takes over tasks whose lease ran out (their owner died), and gives its own back on
  a clean stop. A task that reaches KIE is still sent once: a takeover resumes it as a restart
  does (bot.lifecycle.table's Restarted rules).
- The KIE budget: each create and each record-info poll first takes a slot of the account's
  shared window (the ledger's `take_rate_slot`), one asked for at a time per process; a create
  slot is asked for the member this process's fair scheduler serves next, and the ledger gives
  it to the member served longest ago, so members take turns across processes.

On the SQLite ledger (one process) every call answers at once and nothing is shared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from bot.config import Settings
from bot.ledger import CoordinationStore, Task

log = logging.getLogger(__name__)

CREATE_BUDGET: Final = "kie-create"
POLL_BUDGET: Final = "kie-poll"
# KIE's create limit is per 10 s, counted as the creates arrive there. A slot is taken before
# the ledger write that precedes the create, and the time from a slot to KIE's count varies
# (measured with three processes on two busy cores: p50 0.15 s, p99 0.46 s, max 1.13 s): with
# a window of exactly 10 s (or 10.5, the scheduler's), a create sent late in one window and
# one sent at once in the next met in KIE's count, and KIE answered 429
# (tests/ops/test_processes_e2e.py). The longer window costs that much of the peak rate.
CREATE_WINDOW_SECONDS: Final = 11.5
CLAIM_BATCH: Final = 500  # tasks taken over per claim (whole sets); claims repeat while full
TAKEOVER_CHECK_SECONDS: Final = 2.0  # how often to look for tasks whose lease ran out
START_CLAIM_LIMIT: Final = 100_000  # at start-up: everything this process may take


def leased(task: Task, settings: Settings) -> Task:
    """`task` as this process first writes it: its own (written with `lease_seconds`)."""
    return task.with_changes(owner=settings.process_name)


class SharedWork:
    def __init__(self, ledger: CoordinationStore, settings: Settings) -> None:
        self._ledger = ledger
        self._name = settings.process_name
        self._lease = settings.task_lease_seconds
        self._limits = {
            CREATE_BUDGET: (settings.kie_max_create_per_10s, CREATE_WINDOW_SECONDS),
            POLL_BUDGET: (settings.kie_max_polls_per_second, 1.0),
        }
        self._gates = {name: asyncio.Lock() for name in self._limits}

    @property
    def shared(self) -> bool:
        return self._ledger.shared

    @property
    def renew_every(self) -> float:
        """How often leases are renewed."""
        return self._lease / 3

    @property
    def takeover_every(self) -> float:
        """How often to look for tasks whose owner stopped renewing: a task is taken over at
        most this long after its lease ran out."""
        return min(TAKEOVER_CHECK_SECONDS, self.renew_every)

    async def try_slot(self, budget: str, *, member: int | None = None) -> float:
        """Ask once for a slot of `budget` (for `member`'s task): 0.0 when taken, else how long
        to wait before asking again."""
        if not self.shared:
            return 0.0
        limit, window = self._limits[budget]
        return await self._ledger.take_rate_slot(budget, limit, window, self._name, member)

    async def take_slot(self, budget: str) -> None:
        """Wait for a slot of `budget` shared by every process (one waiter at a time here)."""
        if not self.shared:
            return
        async with self._gates[budget]:
            while True:
                wait = await self.try_slot(budget)
                if not wait:
                    return
                await asyncio.sleep(wait)  # the window is in the database: ask it again

    async def claim_at_start(self) -> list[Task]:
        """Every open task this process may work on now: its own (from before a restart) and
        those nobody holds."""
        return await self._ledger.claim_tasks(
            self._name, self._lease, START_CLAIM_LIMIT, mine_too=True
        )

    async def take_over(self) -> list[Task]:
        """Open tasks whose owner stopped renewing (it died); never this process's own."""
        tasks: list[Task] = []
        while True:
            batch = await self._ledger.claim_tasks(
                self._name, self._lease, CLAIM_BATCH, mine_too=False
            )
            tasks += batch
            if len(batch) < CLAIM_BATCH:
                break
        if tasks:
            log.warning(
                "took over %d task(s) whose process stopped renewing its lease: %s",
                len(tasks),
                ", ".join(task.id for task in tasks[:10]) + (" ..." if len(tasks) > 10 else ""),
            )
        return tasks

    async def renew(self) -> set[str]:
        """Renew this process's leases; the open tasks it still holds."""
        return await self._ledger.renew_leases(self._name, self._lease)

    async def release(self) -> None:
        await self._ledger.release_leases(self._name)

    async def tell_owner(self, task_id: str) -> None:
        """A callback this process received for a task another process works on."""
        await self._ledger.notify_callback(task_id)

    async def listen(self, on_task: Callable[[str], None]) -> None:
        """Hear of the callbacks other processes received."""
        await self._ledger.listen_callbacks(on_task)
