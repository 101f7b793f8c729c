"""A server's saved reference images (table `refs`): the store both backends share.

Only saving differs: its limit check must hold against other processes on PostgreSQL (an
advisory lock around the same statement), so each backend has its `save_ref`
(bot.ledger.sqlite_refs, bot.ledger.postgres_refs) and they share the SQL below.
"""

from __future__ import annotations

from typing import Any, Final

from bot.ledger.base import Reference, RefSummary, ref_key
from bot.ledger.sql_store import SqlStore
from bot.ledger.task_rows import Row

REF_COLUMNS: Final = (
    "guild_id, name_key, name, note, owner_id, data, filename, content_type, created_at,"
    " kie_url, kie_url_at"
)
# Saves `ref_values(ref, limit)` unless the server has `limit` references or one of the name.
SAVE_REF_SQL: Final = (
    f"INSERT INTO refs ({REF_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
    " WHERE (SELECT COUNT(*) FROM refs WHERE guild_id = ?) < ?"
    " ON CONFLICT (guild_id, name_key) DO NOTHING RETURNING name"
)
REF_EXISTS_SQL: Final = "SELECT 1 FROM refs WHERE guild_id = ? AND name_key = ?"


def ref_values(ref: Reference, limit: int) -> list[Any]:
    """SAVE_REF_SQL's parameters."""
    return [
        ref.guild_id,
        ref.name_key,
        ref.name,
        ref.note,
        ref.owner_id,
        bytes(ref.data),
        ref.filename,
        ref.content_type,
        ref.created_at,
        ref.kie_url,
        ref.kie_url_at,
        ref.guild_id,
        limit,
    ]


def _like_pattern(search: str) -> str:
    """`search` anywhere in a name key, as a LIKE pattern (escape character `\\`)."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SqlRefStore(SqlStore):
    """The `RefStore` but `save_ref`."""

    async def get_ref(self, guild_id: int, name: str) -> Reference | None:
        rows = await self._fetch(
            f"SELECT {REF_COLUMNS} FROM refs WHERE guild_id = ? AND name_key = ?",
            (guild_id, ref_key(name)),
        )
        return _reference(rows[0]) if rows else None

    async def list_refs(self, guild_id: int) -> list[RefSummary]:
        rows = await self._fetch(
            "SELECT name, note, owner_id, length(data) AS size, created_at FROM refs"
            " WHERE guild_id = ? ORDER BY name_key",
            (guild_id,),
        )
        return [
            RefSummary(
                name=row["name"],
                note=row["note"],
                owner_id=int(row["owner_id"]),
                size=int(row["size"]),
                created_at=float(row["created_at"]),
            )
            for row in rows
        ]

    async def ref_names(self, guild_id: int, search: str, *, limit: int) -> list[str]:
        rows = await self._fetch(
            "SELECT name FROM refs WHERE guild_id = ? AND name_key LIKE ? ESCAPE '\\'"
            " ORDER BY name_key LIMIT ?",
            (guild_id, _like_pattern(ref_key(search)), limit),
        )
        return [str(row["name"]) for row in rows]

    async def delete_ref(self, guild_id: int, name: str) -> Reference | None:
        rows = await self._write(
            f"DELETE FROM refs WHERE guild_id = ? AND name_key = ? RETURNING {REF_COLUMNS}",
            (guild_id, ref_key(name)),
        )
        return _reference(rows[0]) if rows else None

    async def ref_storage(self, guild_id: int | None = None) -> tuple[int, int]:
        where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        rows = await self._fetch(
            f"SELECT COUNT(*) AS refs, COALESCE(SUM(length(data)), 0) AS bytes FROM refs {where}",
            params,
        )
        return int(rows[0]["refs"]), int(rows[0]["bytes"])

    async def set_ref_upload(self, guild_id: int, name: str, url: str, at: float) -> None:
        await self._write(
            "UPDATE refs SET kie_url = ?, kie_url_at = ? WHERE guild_id = ? AND name_key = ?",
            (url, at, guild_id, ref_key(name)),
        )


def _reference(row: Row) -> Reference:
    return Reference(
        guild_id=int(row["guild_id"]),
        name=row["name"],
        note=row["note"],
        owner_id=int(row["owner_id"]),
        data=bytes(row["data"]),
        filename=row["filename"],
        content_type=row["content_type"],
        created_at=float(row["created_at"]),
        kie_url=row["kie_url"],
        kie_url_at=row["kie_url_at"],
    )
