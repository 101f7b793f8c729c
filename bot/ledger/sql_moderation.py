"""Server settings, blocks, the operator's blocks and the counts over tasks: the moderation
store both backends share. Usage differs per backend (bot.ledger.sqlite_moderation,
bot.ledger.postgres_moderation).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.ledger.base import Block, LedgerError, OperatorBlock
from bot.ledger.sql_store import SqlStore, in_guild
from bot.ledger.task_rows import Row


class SqlModerationStore(SqlStore):
    """The `ModerationStore` but usage."""

    async def get_guild_settings(self, guild_id: int) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return _json_object(rows[0]["data"]) if rows else None

    async def put_guild_settings(self, guild_id: int, data: Mapping[str, Any]) -> None:
        await self._write(
            "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET data = excluded.data,"
            " updated_at = excluded.updated_at",
            (guild_id, json.dumps(dict(data), separators=(",", ":")), self._clock()),
        )

    async def all_guild_settings(self) -> list[tuple[int, dict[str, Any]]]:
        rows = await self._fetch("SELECT guild_id, data FROM guild_settings ORDER BY guild_id")
        return [(int(row["guild_id"]), _json_object(row["data"])) for row in rows]

    async def count_outcomes(
        self, guild_id: int | None, user_id: int, error_code: str, since: float
    ) -> int:
        where, params = in_guild(guild_id)
        rows = await self._fetch(
            f"SELECT COUNT(*) AS outcomes FROM tasks WHERE {where}"
            " AND requester_id = ? AND error_code = ? AND completed_at >= ?",
            (*params, user_id, error_code, since),
        )
        return int(rows[0]["outcomes"])

    async def count_images(
        self, guild_id: int | None, user_id: int, since: float
    ) -> tuple[int, int]:
        where, params = in_guild(guild_id)
        rows = await self._fetch(
            "SELECT COUNT(*) AS images, COUNT(DISTINCT COALESCE(set_id, id)) AS requests"
            f" FROM tasks WHERE {where} AND requester_id = ? AND created_at >= ?"
            " AND (parent_action IS NULL OR parent_action != 'pick')"
            " AND (error_code IS NULL OR error_code != 'cancelled')",
            (*params, user_id, since),
        )
        return int(rows[0]["images"]), int(rows[0]["requests"])

    async def get_block(self, guild_id: int, user_id: int) -> Block | None:
        rows = await self._fetch(
            "SELECT guild_id, user_id, until, reason, blocked_by, created_at FROM blocks"
            " WHERE guild_id = ? AND user_id = ?",
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
            " VALUES (?, ?, ?, ?, ?, ?)"
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
            "DELETE FROM blocks WHERE guild_id = ? AND user_id = ? RETURNING user_id",
            (guild_id, user_id),
        )
        return bool(rows)

    # -- the operator's blocks -----------------------------------------------------------

    async def get_operator_block(self, user_id: int) -> OperatorBlock | None:
        rows = await self._fetch(
            "SELECT user_id, reason, created_at FROM operator_blocks WHERE user_id = ?",
            (user_id,),
        )
        return _operator_block(rows[0]) if rows else None

    async def put_operator_block(self, block: OperatorBlock) -> None:
        await self._write(
            "INSERT INTO operator_blocks (user_id, reason, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET reason = excluded.reason,"
            " created_at = excluded.created_at",
            (block.user_id, block.reason, block.created_at),
        )

    async def delete_operator_block(self, user_id: int) -> bool:
        rows = await self._write(
            "DELETE FROM operator_blocks WHERE user_id = ? RETURNING user_id", (user_id,)
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
