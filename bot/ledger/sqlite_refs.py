"""Saving a reference on SQLite: one statement, so the limit check and the insert cannot
interleave with another save (one process, writes serialised)."""

from __future__ import annotations

from bot.ledger.base import Reference, RefSaved
from bot.ledger.sql_refs import REF_EXISTS_SQL, SAVE_REF_SQL, SqlRefStore, ref_values
from bot.ledger.sqlite_connection import SqliteConnection


class SqliteRefStore(SqliteConnection, SqlRefStore):
    """The `RefStore` on the shared connection."""

    async def save_ref(self, ref: Reference, *, limit: int) -> RefSaved:
        if await self._write(SAVE_REF_SQL, ref_values(ref, limit)):
            return RefSaved.SAVED
        existing = await self._fetch(REF_EXISTS_SQL, (ref.guild_id, ref.name_key))
        return RefSaved.DUPLICATE if existing else RefSaved.FULL
