"""The SQLite moderation store's own part: daily usage (a row per member) and the counts."""

from __future__ import annotations

from typing import Final

from bot.ledger.sql_moderation import SqlModerationStore
from bot.ledger.sqlite_connection import SqliteConnection


class SqliteModerationStore(SqliteConnection, SqlModerationStore):
    """The `ModerationStore` on the shared connection."""

    async def usage(self, guild_id: int, user_id: int, day: str) -> tuple[float, float]:
        rows = await self._fetch(
            "SELECT COALESCE(SUM(CASE WHEN user_id = ? THEN credits END), 0),"
            " COALESCE(SUM(credits), 0) FROM usage WHERE guild_id = ? AND day = ?",
            (user_id, guild_id, day),
        )
        return float(rows[0][0]), float(rows[0][1])

    async def charge_usage(
        self,
        guild_id: int,
        user_id: int,
        day: str,
        amount: float,
        *,
        member_limit: float | None,
        server_limit: float | None,
    ) -> bool:
        """Add `amount` unless it would take the member or the server over its limit (atomic)."""
        async with self._write_lock:
            member, server = await self.usage(guild_id, user_id, day)
            if member_limit is not None and member + amount > member_limit + 1e-9:
                return False
            if server_limit is not None and server + amount > server_limit + 1e-9:
                return False
            await self._fetch(_ADD_USAGE, (guild_id, user_id, day, amount))
        return True

    async def add_usage(self, guild_id: int, user_id: int, day: str, delta: float) -> None:
        """Add (or, negative, give back) credits; usage never goes below zero."""
        await self._write(_ADD_USAGE, (guild_id, user_id, day, delta))

    async def reset_usage(self, guild_id: int, user_id: int, day: str) -> None:
        await self._write(
            "DELETE FROM usage WHERE guild_id = ? AND user_id = ? AND day = ?",
            (guild_id, user_id, day),
        )


_ADD_USAGE: Final = (
    "INSERT INTO usage (guild_id, user_id, day, credits) VALUES (?1, ?2, ?3, MAX(0, ?4))"
    " ON CONFLICT (guild_id, day, user_id) DO UPDATE SET credits = MAX(0, credits + ?4)"
)
