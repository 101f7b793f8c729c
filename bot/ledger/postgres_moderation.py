"""The PostgreSQL moderation store: server settings, daily usage, blocks, the operator's blocks.

Usage is one row per server and day; its `members` object maps each member (id as text) to
the credits they used. A charge checks the member's and the server's limit and adds the
credits in ONE upsert on that row: PostgreSQL locks the row and evaluates the DO UPDATE's
WHERE on its latest version, so charges from any number of processes at the same moment
never take a member or a server past a limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from bot.ledger.base import Block, LedgerError, OperatorBlock
from bot.ledger.postgres_connection import PostgresConnection
from bot.ledger.task_rows import Row, same_guild

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


class PostgresModerationStore(PostgresConnection):
    """The `ModerationStore` on the shared pool."""

    async def get_guild_settings(self, guild_id: int) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT data FROM guild_settings WHERE guild_id = $1", (guild_id,))
        return _json_object(rows[0][0]) if rows else None

    async def put_guild_settings(self, guild_id: int, data: Mapping[str, Any]) -> None:
        await self._write(
            "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (guild_id) DO UPDATE SET data = excluded.data,"
            " updated_at = excluded.updated_at",
            (guild_id, json.dumps(dict(data), separators=(",", ":")), self._clock()),
        )

    async def all_guild_settings(self) -> list[tuple[int, dict[str, Any]]]:
        rows = await self._fetch("SELECT guild_id, data FROM guild_settings ORDER BY guild_id")
        return [(int(row[0]), _json_object(row[1])) for row in rows]

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

    async def get_block(self, guild_id: int, user_id: int) -> Block | None:
        rows = await self._fetch(
            "SELECT guild_id, user_id, until, reason, blocked_by, created_at FROM blocks"
            " WHERE guild_id = $1 AND user_id = $2",
            (guild_id, user_id),
        )
        if not rows:
            return None
        row = rows[0]
        return Block(
            guild_id=int(row["guild_id"]),
            user_id=int(row["user_id"]),
            until=None if row["until"] is None else float(row["until"]),
            reason=str(row["reason"]),
            blocked_by=None if row["blocked_by"] is None else int(row["blocked_by"]),
            created_at=float(row["created_at"]),
        )

    async def put_block(self, block: Block) -> None:
        """Store a block; a timed one (an automatic cooldown) never replaces a permanent one."""
        await self._write(
            "INSERT INTO blocks (guild_id, user_id, until, reason, blocked_by, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (guild_id, user_id) DO UPDATE SET until = excluded.until,"
            " reason = excluded.reason, blocked_by = excluded.blocked_by,"
            " created_at = excluded.created_at"
            " WHERE excluded.until IS NULL OR blocks.until IS NOT NULL",
            (
                block.guild_id,
                block.user_id,
                block.until,
                block.reason,
                block.blocked_by,
                block.created_at,
            ),
        )

    async def delete_block(self, guild_id: int, user_id: int) -> bool:
        rows = await self._write(
            "DELETE FROM blocks WHERE guild_id = $1 AND user_id = $2 RETURNING user_id",
            (guild_id, user_id),
        )
        return bool(rows)

    async def count_outcomes(
        self, guild_id: int | None, user_id: int, error_code: str, since: float
    ) -> int:
        rows = await self._fetch(
            f"SELECT COUNT(*) FROM tasks WHERE {same_guild(guild_id, 1)}"
            " AND requester_id = $2 AND error_code = $3 AND completed_at >= $4",
            (guild_id, user_id, error_code, since),
        )
        return int(rows[0][0])

    async def count_images(
        self, guild_id: int | None, user_id: int, since: float
    ) -> tuple[int, int]:
        rows = await self._fetch(
            "SELECT COUNT(*), COUNT(DISTINCT COALESCE(set_id, id)) FROM tasks"
            f" WHERE {same_guild(guild_id, 1)} AND requester_id = $2 AND created_at >= $3"
            " AND (parent_action IS NULL OR parent_action != 'pick')"
            " AND (error_code IS NULL OR error_code != 'cancelled')",
            (guild_id, user_id, since),
        )
        return int(rows[0][0]), int(rows[0][1])

    # -- the operator's blocks -----------------------------------------------------------

    async def get_operator_block(self, user_id: int) -> OperatorBlock | None:
        rows = await self._fetch(
            "SELECT user_id, reason, created_at FROM operator_blocks WHERE user_id = $1",
            (user_id,),
        )
        return _operator_block(rows[0]) if rows else None

    async def put_operator_block(self, block: OperatorBlock) -> None:
        await self._write(
            "INSERT INTO operator_blocks (user_id, reason, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id) DO UPDATE SET reason = excluded.reason,"
            " created_at = excluded.created_at",
            (block.user_id, block.reason, block.created_at),
        )

    async def delete_operator_block(self, user_id: int) -> bool:
        rows = await self._write(
            "DELETE FROM operator_blocks WHERE user_id = $1 RETURNING user_id", (user_id,)
        )
        return bool(rows)

    async def operator_blocks(self) -> list[OperatorBlock]:
        rows = await self._fetch(
            "SELECT user_id, reason, created_at FROM operator_blocks ORDER BY created_at, user_id"
        )
        return [_operator_block(row) for row in rows]


def _operator_block(row: Row) -> OperatorBlock:
    return OperatorBlock(
        user_id=int(row["user_id"]),
        reason=None if row["reason"] is None else str(row["reason"]),
        created_at=float(row["created_at"]),
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise LedgerError(f"stored settings could not be read: {exc}") from exc
    if not isinstance(value, dict):
        raise LedgerError("stored settings are not a JSON object")
    return value
