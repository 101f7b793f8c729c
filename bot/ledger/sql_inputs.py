"""The stores of input images, result copies and key/value meta data (both backends)."""

from __future__ import annotations

from typing import Final

from bot.ledger.base import StoredInput
from bot.ledger.models import TaskState
from bot.ledger.sql_store import SqlStore

_HEALTH_KEY: Final = "health.last_write_check"


class SqlInputStore(SqlStore):
    """The `InputStore`."""

    async def put_input(self, item: StoredInput) -> None:
        await self._write(
            "INSERT INTO inputs (task_id, data, filename, content_type, created_at)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (task_id) DO UPDATE SET data = excluded.data,"
            " filename = excluded.filename, content_type = excluded.content_type,"
            " created_at = excluded.created_at",
            (item.task_id, bytes(item.data), item.filename, item.content_type, self._clock()),
        )

    async def get_input(self, task_id: str) -> StoredInput | None:
        return await self._get_image("inputs", task_id)

    async def put_result_copy(self, item: StoredInput) -> None:
        await self._write(
            "INSERT INTO result_copies (task_id, data, filename, content_type, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (task_id) DO NOTHING",
            (item.task_id, bytes(item.data), item.filename, item.content_type, self._clock()),
        )

    async def get_result_copy(self, task_id: str) -> StoredInput | None:
        return await self._get_image("result_copies", task_id)

    async def delete_result_copy(self, task_id: str) -> None:
        await self._write("DELETE FROM result_copies WHERE task_id = ?", (task_id,))

    async def purge_result_copies(self, older_than: float) -> int:
        rows = await self._write(
            "DELETE FROM result_copies WHERE created_at < ? RETURNING task_id", (older_than,)
        )
        return len(rows)

    async def _get_image(self, table: str, task_id: str) -> StoredInput | None:
        rows = await self._fetch(
            f"SELECT task_id, data, filename, content_type FROM {table} WHERE task_id = ?",
            (task_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return StoredInput(
            task_id=row["task_id"],
            data=bytes(row["data"]),
            filename=row["filename"],
            content_type=row["content_type"],
        )

    async def delete_input(self, task_id: str) -> None:
        await self._write("DELETE FROM inputs WHERE task_id = ?", (task_id,))

    async def purge_inputs(self, older_than: float) -> int:
        rows = await self._write(
            "DELETE FROM inputs WHERE created_at < ? AND task_id IN"
            " (SELECT id FROM tasks WHERE state IN (?, ?)) RETURNING task_id",
            (older_than, TaskState.DONE.value, TaskState.FAILED.value),
        )
        return len(rows)


class SqlMetaStore(SqlStore):
    """The `MetaStore`."""

    async def get_meta(self, key: str) -> str | None:
        rows = await self._fetch("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0]["value"])

    async def set_meta(self, key: str, value: str) -> None:
        await self._write(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def swap_meta(self, key: str, expected: str, value: str) -> bool:
        """Compare-and-set (`expected` "": absent or empty); True if written."""
        if expected:
            sql = "UPDATE meta SET value = ? WHERE key = ? AND value = ? RETURNING key"
            return bool(await self._write(sql, (value, key, expected)))
        sql = (
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value WHERE meta.value = '' RETURNING key"
        )
        return bool(await self._write(sql, (key, value)))

    async def check_writable(self) -> None:
        """A real write (an upsert into meta); LedgerError when it fails."""
        await self.set_meta(_HEALTH_KEY, repr(self._clock()))
