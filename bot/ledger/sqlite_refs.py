"""The SQLite store of a server's saved reference images (table `refs`, schema 6)."""

from __future__ import annotations

import sqlite3

from bot.ledger.base import Reference, RefSaved, RefSummary, ref_key
from bot.ledger.sqlite_connection import SqliteConnection


class SqliteRefStore(SqliteConnection):
    """The `RefStore` on the shared connection."""

    async def save_ref(self, ref: Reference, *, limit: int) -> RefSaved:
        # One statement: the count check and the insert cannot interleave with another save.
        rows = await self._write(
            "INSERT INTO refs (guild_id, name_key, name, note, owner_id, data, filename,"
            " content_type, created_at, kie_url, kie_url_at)"
            " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
            " WHERE (SELECT COUNT(*) FROM refs WHERE guild_id = ?) < ?"
            " ON CONFLICT (guild_id, name_key) DO NOTHING RETURNING name",
            (
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
            ),
        )
        if rows:
            return RefSaved.SAVED
        existing = await self._fetch(
            "SELECT 1 FROM refs WHERE guild_id = ? AND name_key = ?", (ref.guild_id, ref.name_key)
        )
        return RefSaved.DUPLICATE if existing else RefSaved.FULL

    async def get_ref(self, guild_id: int, name: str) -> Reference | None:
        rows = await self._fetch(
            "SELECT * FROM refs WHERE guild_id = ? AND name_key = ?", (guild_id, ref_key(name))
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
            "SELECT name FROM refs WHERE guild_id = ? AND instr(name_key, ?) > 0"
            " ORDER BY name_key LIMIT ?",
            (guild_id, ref_key(search), limit),
        )
        return [str(row["name"]) for row in rows]

    async def delete_ref(self, guild_id: int, name: str) -> Reference | None:
        rows = await self._write(
            "DELETE FROM refs WHERE guild_id = ? AND name_key = ? RETURNING *",
            (guild_id, ref_key(name)),
        )
        return _reference(rows[0]) if rows else None

    async def ref_storage(self, guild_id: int | None = None) -> tuple[int, int]:
        where, params = ("WHERE guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        rows = await self._fetch(
            f"SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM refs {where}", params
        )
        return int(rows[0][0]), int(rows[0][1])

    async def set_ref_upload(self, guild_id: int, name: str, url: str, at: float) -> None:
        await self._write(
            "UPDATE refs SET kie_url = ?, kie_url_at = ? WHERE guild_id = ? AND name_key = ?",
            (url, at, guild_id, ref_key(name)),
        )


def _reference(row: sqlite3.Row) -> Reference:
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
