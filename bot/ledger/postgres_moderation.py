"""The PostgreSQL moderation store: server settings, daily usage, blocks, the operator's blocks.

Usage is one row per server and day; its `members` object maps each member (id as text) to
the credits they used. A charge checks the member's and the server's limit and adds the
credits in ONE upsert on that row: PostgreSQL locks the row and evaluates the DO UPDATE's
WHERE on its latest version, so charges from any number of processes at the same moment
never take a member or a server past a limit.
"""

from __future__ import annotations

from typing import Final

from bot.ledger.postgres_connection import PostgresConnection
from bot.ledger.sql_moderation import SqlModerationStore

_SERVER_TOTAL: Final = (
    "(SELECT COALESCE(SUM(v::float8), 0) FROM jsonb_each_text({}.members) AS m(k, v))"
)
_MEMBER: Final = "COALESCE(({}.members ->> $2)::float8, 0)"
_SLACK: Final = 1e-9  # the same float tolerance as the SQLite store

_CHARGE: Final = (
    "INSERT INTO usage AS u (guild_id, day, members)"
    " SELECT $1, $3, jsonb_build_object($2::text, $4::float8)"
    f" WHERE ($5::float8 IS NULL OR $4 <= $5 + {_SLACK})"
    f" AND ($6::float8 IS NULL OR $4 <= $6 + {_SLACK})"
    " ON CONFLICT (guild_id, day) DO UPDATE"
    f" SET members = jsonb_set(u.members, ARRAY[$2::text], to_jsonb({_MEMBER.format('u')} + $4))"
    f" WHERE ($5::float8 IS NULL OR {_MEMBER.format('u')} + $4 <= $5 + {_SLACK})"
    f" AND ($6::float8 IS NULL OR {_SERVER_TOTAL.format('u')} + $4 <= $6 + {_SLACK})"
    " RETURNING 1"
)

_ADD_USAGE: Final = (
    "INSERT INTO usage AS u (guild_id, day, members)"
    " VALUES ($1, $3, jsonb_build_object($2::text, GREATEST(0, $4::float8)))"
    " ON CONFLICT (guild_id, day) DO UPDATE SET members = jsonb_set(u.members,"
    f" ARRAY[$2::text], to_jsonb(GREATEST(0, {_MEMBER.format('u')} + $4)))"
)


class PostgresModerationStore(PostgresConnection, SqlModerationStore):
    """The `ModerationStore` on the shared pool."""

    async def usage(self, guild_id: int, user_id: int, day: str) -> tuple[float, float]:
        rows = await self._fetch(
            f"SELECT {_MEMBER.format('usage')}, {_SERVER_TOTAL.format('usage')} FROM usage"
            " WHERE guild_id = $1 AND day = $3",
            (guild_id, str(user_id), day),
        )
        return (float(rows[0][0]), float(rows[0][1])) if rows else (0.0, 0.0)

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
        rows = await self._write(
            _CHARGE, (guild_id, str(user_id), day, amount, member_limit, server_limit)
        )
        return bool(rows)

    async def add_usage(self, guild_id: int, user_id: int, day: str, delta: float) -> None:
        """Add (or, negative, give back) credits; usage never goes below zero."""
        await self._write(_ADD_USAGE, (guild_id, str(user_id), day, delta))

    async def reset_usage(self, guild_id: int, user_id: int, day: str) -> None:
        await self._write(
            "UPDATE usage SET members = members - $2::text WHERE guild_id = $1 AND day = $3",
            (guild_id, str(user_id), day),
        )
