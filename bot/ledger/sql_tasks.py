"""The task queries both backends share (portable SQL, bot.ledger.sql_store). Inserts, the
compare-and-set writes and the queries whose SQL differs stay per backend
(bot.ledger.sqlite_tasks, bot.ledger.postgres_tasks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from bot.ledger.base import DURATION_SCAN_FACTOR, durations_by_model
from bot.ledger.models import OPEN_STATES, Task, TaskState
from bot.ledger.sql_store import SqlStore, in_guild
from bot.ledger.task_rows import TASK_FIELDS, decode_task

TASK_COLUMNS: Final = ", ".join(TASK_FIELDS)  # never `*`: PostgreSQL's table also has `seq`
_FINISHED_WITH_TIMES: Final = (
    " WHERE state = ? AND completed_at IS NOT NULL AND submitted_at IS NOT NULL"
    " AND completed_at >= submitted_at ORDER BY completed_at DESC LIMIT ?"
)


def open_state_values() -> list[str]:
    return sorted(state.value for state in OPEN_STATES)


class SqlTaskReads(SqlStore):
    """The `TaskStore` lookups and counts that read the same on both backends."""

    async def _first_task(self, sql: str, params: Sequence[Any]) -> Task | None:
        rows = await self._fetch(sql, params)
        return decode_task(rows[0]) if rows else None

    async def get(self, task_id: str) -> Task | None:
        return await self._first_task(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,))

    async def set_members(self, set_id: str) -> list[Task]:
        rows = await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE set_id = ? ORDER BY set_index", (set_id,)
        )
        return [decode_task(row) for row in rows]

    async def find_by_kie_task_id(self, kie_task_id: str) -> Task | None:
        return await self._first_task(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE kie_task_id = ?", (kie_task_id,)
        )

    async def find_by_callback_secret(self, secret: str) -> Task | None:
        return await self._first_task(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE callback_secret = ?", (secret,)
        )

    async def count_open_for_user(self, user_id: int) -> int:
        states = open_state_values()
        marks = ", ".join("?" for _ in states)
        rows = await self._fetch(
            f"SELECT COUNT(*) AS open FROM tasks WHERE requester_id = ? AND state IN ({marks})",
            [user_id, *states],
        )
        return int(rows[0]["open"])

    async def recent_durations(self, limit: int = 50) -> list[float]:
        rows = await self._fetch(
            f"SELECT completed_at - submitted_at AS took FROM tasks{_FINISHED_WITH_TIMES}",
            (TaskState.DONE.value, max(0, limit)),
        )
        return [float(row["took"]) for row in rows]

    async def recent_durations_by_model(self, limit: int = 50) -> dict[str, list[float]]:
        rows = await self._fetch(
            f"SELECT params, completed_at - submitted_at AS took FROM tasks{_FINISHED_WITH_TIMES}",
            (TaskState.DONE.value, max(0, limit) * DURATION_SCAN_FACTOR),
        )
        return durations_by_model(((row["params"], row["took"]) for row in rows), limit)

    async def last_submission_at(self, user_id: int) -> float | None:
        rows = await self._fetch(
            "SELECT MAX(created_at) AS last FROM tasks WHERE requester_id = ?", (user_id,)
        )
        value = rows[0]["last"]
        return None if value is None else float(value)

    async def recent_requests(
        self, guild_id: int | None, requester_id: int, *, limit: int
    ) -> list[Task]:
        where, params = in_guild(guild_id)
        columns = ", ".join(f"tasks.{name}" for name in TASK_FIELDS)
        rows = await self._fetch(
            "WITH latest AS ("
            "  SELECT COALESCE(set_id, id) AS request, MAX(created_at) AS latest_at FROM tasks"
            f"  WHERE requester_id = ? AND {where}"
            "  GROUP BY COALESCE(set_id, id) ORDER BY latest_at DESC LIMIT ?)"
            f" SELECT {columns} FROM tasks"
            " JOIN latest ON COALESCE(tasks.set_id, tasks.id) = latest.request"
            f" WHERE requester_id = ? AND {where}"
            " ORDER BY latest.latest_at DESC, tasks.set_index",
            (requester_id, *params, max(0, limit), requester_id, *params),
        )
        return [decode_task(row) for row in rows]
