"""Saving a reference on PostgreSQL, where several processes may save at once."""

from __future__ import annotations

from bot.ledger.base import Reference, RefSaved
from bot.ledger.postgres_connection import PostgresConnection
from bot.ledger.sql_refs import REF_EXISTS_SQL, SAVE_REF_SQL, SqlRefStore, ref_values
from bot.ledger.sql_store import numbered_placeholders


class PostgresRefStore(PostgresConnection, SqlRefStore):
    """The `RefStore` on the shared pool."""

    async def save_ref(self, ref: Reference, *, limit: int) -> RefSaved:
        # The server's transaction-scoped advisory lock serialises its saves across
        # processes, so the count the INSERT checks (a fresh snapshot after the lock) is
        # still true when it writes.
        async with self._transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('refs', $1))", ref.guild_id
            )
            saved = await conn.fetch(numbered_placeholders(SAVE_REF_SQL), *ref_values(ref, limit))
            if saved:
                return RefSaved.SAVED
            existing = await conn.fetch(
                numbered_placeholders(REF_EXISTS_SQL), ref.guild_id, ref.name_key
            )
        return RefSaved.DUPLICATE if existing else RefSaved.FULL
