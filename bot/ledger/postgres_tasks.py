"""The PostgreSQL task store: tasks, their compare-and-set updates and the queries over them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.ledger.base import TaskNotFound
from bot.ledger.models import Task, TaskState
from bot.ledger.postgres_connection import PostgresConnection
from bot.ledger.sql_tasks import SqlTaskReads, open_state_values
from bot.ledger.task_rows import (
    TASK_FIELDS,
    UPDATABLE_FIELDS,
    decode_task,
    encode_field,
    same_guild,
)

_COLUMNS = ", ".join(TASK_FIELDS)  # never `*`: the table also has `seq`
_NOW = "extract(epoch from clock_timestamp())::double precision"


class PostgresTaskStore(PostgresConnection, SqlTaskReads):
    """The `TaskStore` on the shared pool."""

    async def _tasks(self, sql: str, params: Sequence[Any] = ()) -> list[Task]:
        return [decode_task(row) for row in await self._fetch(sql, params)]

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Task | None:
        tasks = await self._tasks(sql, params)
        return tasks[0] if tasks else None

    def _assignments(self, changes: Mapping[str, Any], first: int) -> tuple[str, list[Any]]:
        """`col = $n, ...` numbered from `first`, and their values."""
        unknown = set(changes) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"not updatable task fields: {', '.join(sorted(unknown))}")
        values = dict(changes)
        values.setdefault("updated_at", self._clock())
        columns = ", ".join(f"{name} = ${first + i}" for i, name in enumerate(values))
        return columns, [encode_field(name, value) for name, value in values.items()]

    async def insert(self, *tasks: Task, lease_seconds: float | None = None) -> None:
        """One statement for all: the images of a set are written together or not at all."""
        width = len(TASK_FIELDS)
        leased_at = TASK_FIELDS.index("lease_until") if lease_seconds is not None else -1

        def placeholder(n: int, i: int) -> str:
            number = f"${n * width + i + 1}"
            return f"{_NOW} + {number}" if i == leased_at else number

        rows = ", ".join(
            "(" + ", ".join(placeholder(n, i) for i in range(width)) + ")"
            for n in range(len(tasks))
        )
        values = [
            lease_seconds if i == leased_at else encode_field(name, getattr(task, name))
            for task in tasks
            for i, name in enumerate(TASK_FIELDS)
        ]
        await self._write(f"INSERT INTO tasks ({_COLUMNS}) VALUES {rows}", values)

    async def update(self, task_id: str, **changes: Any) -> Task:
        columns, values = self._assignments(changes, 2)
        task = await self._one(
            f"UPDATE tasks SET {columns} WHERE id = $1 RETURNING {_COLUMNS}", [task_id, *values]
        )
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def transition(
        self, task_id: str, expected: frozenset[TaskState], **changes: Any
    ) -> Task | None:
        """Compare-and-set on state; None when the state had moved on; TaskNotFound."""
        if not expected:
            raise ValueError("transition needs at least one expected state")
        states = sorted(TaskState(s).value for s in expected)
        return await self._set_where(task_id, ["state = ANY(${}::text[])"], [states], changes)

    async def update_if(
        self, task_id: str, expect: Mapping[str, Any], **changes: Any
    ) -> Task | None:
        """Compare-and-set on any fields; None when one no longer held; TaskNotFound."""
        if not expect:
            raise ValueError("update_if needs at least one expected field")
        unknown = set(expect) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"not task fields: {', '.join(sorted(unknown))}")
        conditions = [f"{name} IS NOT DISTINCT FROM ${{}}" for name in expect]
        expected = [encode_field(name, value) for name, value in expect.items()]
        return await self._set_where(task_id, conditions, expected, changes)

    async def _set_where(
        self,
        task_id: str,
        conditions: Sequence[str],
        params: Sequence[Any],
        changes: Mapping[str, Any],
    ) -> Task | None:
        """One UPDATE guarded by `conditions` (each with one `${}` for its parameter); None
        when they did not hold; TaskNotFound."""
        columns, values = self._assignments(changes, 2)
        first = 2 + len(values)
        guard = " AND ".join(c.format(first + i) for i, c in enumerate(conditions))
        task = await self._one(
            f"UPDATE tasks SET {columns} WHERE id = $1 AND {guard} RETURNING {_COLUMNS}",
            [task_id, *values, *params],
        )
        if task is not None:
            return task
        if not await self._fetch("SELECT 1 FROM tasks WHERE id = $1", (task_id,)):
            raise TaskNotFound(task_id)
        return None

    async def open_tasks(self) -> list[Task]:
        return await self._tasks(
            f"SELECT {_COLUMNS} FROM tasks WHERE state = ANY($1::text[]) ORDER BY created_at, seq",
            (open_state_values(),),
        )

    async def recent_tasks(
        self,
        guild_id: int | None,
        *,
        requester_id: int | None = None,
        search: str = "",
        limit: int,
    ) -> list[Task]:
        conditions = [same_guild(guild_id, 1)]
        params: list[object] = [guild_id]
        if requester_id is not None:
            params.append(requester_id)
            conditions.append(f"requester_id = ${len(params)}")
        needle = search.strip().lower()
        if needle:
            params.append(needle)
            n = len(params)
            conditions.append(
                f"(strpos(id, ${n}) > 0 OR strpos(lower(params::jsonb ->> 'prompt'), ${n}) > 0)"
            )
        params.append(max(0, limit))
        return await self._tasks(
            f"SELECT {_COLUMNS} FROM tasks WHERE {' AND '.join(conditions)}"
            f" ORDER BY created_at DESC, set_index LIMIT ${len(params)}",
            params,
        )
