"""What a store written once for both backends needs of its connection.

Portable stores write their SQL with `?` placeholders; the SQLite connection runs it as it is
and the PostgreSQL connection numbers the placeholders (`$1`, `$2`, …) first. A store keeps
backend-specific classes only where the SQL itself differs (JSONB, advisory locks, rowid).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from bot.ledger.task_rows import Row


class SqlStore:
    """Implemented by SqliteConnection and PostgresConnection."""

    _clock: Callable[[], float]

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Row]:
        """Run one statement; its rows (LedgerError when it fails)."""
        raise NotImplementedError

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Row]:
        """`_fetch` for a statement that writes (SQLite serialises them)."""
        raise NotImplementedError


@functools.lru_cache(maxsize=512)
def numbered_placeholders(sql: str) -> str:
    """`sql` with each `?` outside string literals as `$1`, `$2`, … (PostgreSQL's form); SQL
    already written with `$n` is returned as it is."""
    if "?" not in sql or "$1" in sql:
        return sql
    parts = sql.split("'")  # even parts are outside string literals
    count = 0
    for i in range(0, len(parts), 2):
        pieces = parts[i].split("?")
        numbered = [pieces[0]]
        for piece in pieces[1:]:
            count += 1
            numbered.append(f"${count}{piece}")
        parts[i] = "".join(numbered)
    return "'".join(parts)


def in_guild(guild_id: int | None) -> tuple[str, tuple[int, ...]]:
    """The condition for "in this server" (None: outside servers) and its parameters, in a
    form both backends' indexes serve (`IS NOT DISTINCT FROM` would not use PostgreSQL's)."""
    if guild_id is None:
        return "guild_id IS NULL", ()
    return "guild_id = ?", (guild_id,)
