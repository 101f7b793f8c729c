"""The SQLite task store: tasks, their compare-and-set updates and the queries over them."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Final

from bot.ledger.base import TaskNotFound
from bot.ledger.models import Task, TaskState
from bot.ledger.sql_tasks import SqlTaskReads, open_state_values
from bot.ledger.sqlite_connection import SqliteConnection
from bot.ledger.task_rows import TASK_FIELDS, UPDATABLE_FIELDS, decode_task, encode_field

_UPDATABLE: Final = UPDATABLE_FIELDS
_encode = encode_field


def _decode(row: sqlite3.Row) -> Task:
    return decode_task(row)


class SqliteTaskStore(SqliteConnection, SqlTaskReads):
    """The `TaskStore` on the shared connection."""

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Task | None:
        rows = await self._fetch(sql, params)
        return _decode(rows[0]) if rows else None

    def _assignments(self, changes: Mapping[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable task fields: {', '.join(sorted(unknown))}")
        values = dict(changes)
        values.setdefault("updated_at", self._clock())
        columns = ", ".join(f"{name} = ?" for name in values)
        return columns, [_encode(name, value) for name, value in values.items()]

    async def insert(self, *tasks: Task, lease_seconds: float | None = None) -> None:
        """One statement for all: the images of a set are written together or not at all."""
        if lease_seconds is not None:
            until = self._clock() + lease_seconds
            tasks = tuple(task.with_changes(lease_until=until) for task in tasks)
        columns = ", ".join(TASK_FIELDS)
        row = "(" + ", ".join("?" for _ in TASK_FIELDS) + ")"
        values = [_encode(name, getattr(task, name)) for task in tasks for name in TASK_FIELDS]
        rows = ", ".join(row for _ in tasks)
        await self._write(f"INSERT INTO tasks ({columns}) VALUES {rows}", values)

    async def update(self, task_id: str, **changes: Any) -> Task:
        columns, values = self._assignments(changes)
        rows = await self._write(
            f"UPDATE tasks SET {columns} WHERE id = ? RETURNING *", [*values, task_id]
        )
        if not rows:
            raise TaskNotFound(task_id)
        return _decode(rows[0])

    async def transition(
        self, task_id: str, expected: frozenset[TaskState], **changes: Any
    ) -> Task | None:
        """Compare-and-set on state; None when the state had moved on; TaskNotFound."""
        if not expected:
            raise ValueError("transition needs at least one expected state")
        states = sorted(TaskState(s).value for s in expected)
        marks = ", ".join("?" for _ in states)
        return await self._set_where(task_id, f"state IN ({marks})", states, changes)

    async def update_if(
        self, task_id: str, expect: Mapping[str, Any], **changes: Any
    ) -> Task | None:
        """Compare-and-set on any fields; None when one no longer held; TaskNotFound."""
        if not expect:
            raise ValueError("update_if needs at least one expected field")
        unknown = set(expect) - _UPDATABLE
        if unknown:
            raise ValueError(f"not task fields: {', '.join(sorted(unknown))}")
        condition = " AND ".join(f"{name} IS ?" for name in expect)
        expected = [_encode(name, value) for name, value in expect.items()]
        return await self._set_where(task_id, condition, expected, changes)

    async def _set_where(
        self, task_id: str, condition: str, params: Sequence[Any], changes: Mapping[str, Any]
    ) -> Task | None:
        """One UPDATE guarded by `condition`; None when it did not hold; TaskNotFound."""
        columns, values = self._assignments(changes)
        async with self._write_lock:
            rows = await self._fetch(
                f"UPDATE tasks SET {columns} WHERE id = ? AND {condition} RETURNING *",
                [*values, task_id, *params],
            )
            if rows:
                return _decode(rows[0])
            exists = await self._fetch("SELECT 1 FROM tasks WHERE id = ?", (task_id,))
        if not exists:
            raise TaskNotFound(task_id)
        return None

    async def open_tasks(self) -> list[Task]:
        states = open_state_values()
        marks = ", ".join("?" for _ in states)
        rows = await self._fetch(
            f"SELECT * FROM tasks WHERE state IN ({marks}) ORDER BY created_at, rowid", states
        )
        return [_decode(row) for row in rows]

    async def recent_tasks(
        self,
        guild_id: int | None,
        *,
        requester_id: int | None = None,
        search: str = "",
        limit: int,
    ) -> list[Task]:
        # Only the conditions asked for, so that SQLite walks one index in time order: the
        # member's (tasks_requester_created; the unary + keeps it off the server's index) or
        # the server's (tasks_guild_created).
        conditions: list[str] = ["guild_id IS ?"]
        params: list[object] = [guild_id]
        if requester_id is not None:
            conditions = ["+guild_id IS ?", "requester_id = ?"]
            params.append(requester_id)
        needle = search.strip().lower()
        if needle:
            conditions.append(
                "(instr(id, ?) > 0 OR instr(lower(json_extract(params, '$.prompt')), ?) > 0)"
            )
            params += [needle, needle]
        rows = await self._fetch(
            f"SELECT * FROM tasks WHERE {' AND '.join(conditions)}"
            " ORDER BY created_at DESC, set_index LIMIT ?",
            [*params, max(0, limit)],
        )
        return [_decode(row) for row in rows]
