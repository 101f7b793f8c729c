"""The SQLite ledger's side of coordination: it serves one process, so each answer is the
trivial one (every open task is this process's, the budget is the scheduler's own window,
a callback is always received by the process that owns its task)."""

from __future__ import annotations

from collections.abc import Callable

from bot.ledger.models import OPEN_STATES, Task
from bot.ledger.sqlite_connection import SqliteConnection
from bot.ledger.task_rows import decode_task


def _open_marks() -> tuple[str, list[str]]:
    states = sorted(state.value for state in OPEN_STATES)
    return ", ".join("?" for _ in states), states


class SqliteCoordinationStore(SqliteConnection):
    """The `CoordinationStore` of a ledger only one process uses."""

    @property
    def shared(self) -> bool:
        return False

    async def claim_tasks(
        self, owner: str, lease_seconds: float, limit: int, *, mine_too: bool
    ) -> list[Task]:
        """Open tasks whatever their owner (a restarted process takes back all of them, whatever
        its name was): the `limit` oldest groups (a set or a single task)."""
        marks, states = _open_marks()
        rows = await self._write(
            f"UPDATE tasks SET owner = ?, lease_until = ? WHERE state IN ({marks})"
            " AND COALESCE(set_id, id) IN (SELECT COALESCE(set_id, id) FROM tasks"
            f" WHERE state IN ({marks}) GROUP BY COALESCE(set_id, id)"
            " ORDER BY MIN(created_at) LIMIT ?) RETURNING *",
            (owner, self._clock() + lease_seconds, *states, *states, limit),
        )
        tasks = [decode_task(row) for row in rows]
        return sorted(tasks, key=lambda task: (task.created_at, task.set_index))

    async def renew_leases(self, owner: str, lease_seconds: float) -> set[str]:
        marks, states = _open_marks()
        rows = await self._write(
            f"UPDATE tasks SET lease_until = ? WHERE owner = ? AND state IN ({marks}) RETURNING id",
            (self._clock() + lease_seconds, owner, *states),
        )
        return {str(row[0]) for row in rows}

    async def release_leases(self, owner: str) -> None:
        marks, states = _open_marks()
        await self._write(
            "UPDATE tasks SET owner = NULL, lease_until = 0"
            f" WHERE owner = ? AND state IN ({marks})",
            (owner, *states),
        )

    async def take_rate_slot(
        self, name: str, limit: int, window: float, waiter: str, member: int | None = None
    ) -> float:
        return 0.0

    async def notify_callback(self, task_id: str) -> None:
        return None

    async def listen_callbacks(self, on_task: Callable[[str], None]) -> None:
        return None
