"""The PostgreSQL store of a server's saved reference images (table `refs`)."""

from __future__ import annotations

from typing import Any

from bot.ledger.base import Reference, RefSaved, RefSummary, ref_key
from bot.ledger.postgres_connection import PostgresConnection
from bot.ledger.task_rows import Row

_REF_COLUMNS = (
    "guild_id, name_key, name, note, owner_id, data, filename, content_type, created_at,"
    " kie_url, kie_url_at"
)


class PostgresRefStore(PostgresConnection):
    """The `RefStore` on the shared pool."""

    async def save_ref(self, ref: Reference, *, limit: int) -> RefSaved:
        # The server's transaction-scoped advisory lock serialises its saves across
        # processes, so the count the INSERT checks (a fresh snapshot after the lock) is
        # still true when it writes.
        async with self._transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('refs', $1))", ref.guild_id
            )
            saved = await conn.fetch(
                f"INSERT INTO refs ({_REF_COLUMNS})"
                " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11"
                " WHERE (SELECT COUNT(*) FROM refs WHERE guild_id = $1) < $12"
                " ON CONFLICT (guild_id, name_key) DO NOTHING RETURNING name",
                *_ref_values(ref),
                limit,
            )
            if saved:
                return RefSaved.SAVED
            existing = await conn.fetch(
                "SELECT 1 FROM refs WHERE guild_id = $1 AND name_key = $2",
                ref.guild_id,
                ref.name_key,
            )
        return RefSaved.DUPLICATE if existing else RefSaved.FULL

    async def get_ref(self, guild_id: int, name: str) -> Reference | None:
        rows = await self._fetch(
            f"SELECT {_REF_COLUMNS} FROM refs WHERE guild_id = $1 AND name_key = $2",
            (guild_id, ref_key(name)),
        )
        return _reference(rows[0]) if rows else None

    async def list_refs(self, guild_id: int) -> list[RefSummary]:
        rows = await self._fetch(
            "SELECT name, note, owner_id, length(data) AS size, created_at FROM refs"
            " WHERE guild_id = $1 ORDER BY name_key",
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
            "SELECT name FROM refs WHERE guild_id = $1 AND strpos(name_key, $2) > 0"
            " ORDER BY name_key LIMIT $3",
            (guild_id, ref_key(search), limit),
        )
        return [str(row["name"]) for row in rows]

    async def delete_ref(self, guild_id: int, name: str) -> Reference | None:
        rows = await self._write(
            f"DELETE FROM refs WHERE guild_id = $1 AND name_key = $2 RETURNING {_REF_COLUMNS}",
            (guild_id, ref_key(name)),
        )
        return _reference(rows[0]) if rows else None

    async def ref_storage(self, guild_id: int | None = None) -> tuple[int, int]:
        rows = await self._fetch(
            "SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM refs"
            " WHERE $1::bigint IS NULL OR guild_id = $1",
            (guild_id,),
        )
        return int(rows[0][0]), int(rows[0][1])

    async def set_ref_upload(self, guild_id: int, name: str, url: str, at: float) -> None:
        await self._write(
            "UPDATE refs SET kie_url = $1, kie_url_at = $2 WHERE guild_id = $3 AND name_key = $4",
            (url, at, guild_id, ref_key(name)),
        )


def _ref_values(ref: Reference) -> list[Any]:
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
    ]


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
