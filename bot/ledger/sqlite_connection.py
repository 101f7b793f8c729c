"""The one aiosqlite connection the SQLite stores share: open, migrate, query, close.

Every query is a single statement run in autocommit mode, so a compare-and-set is one
`UPDATE ... WHERE ... RETURNING *` and cannot interleave with another writer. Writes are
additionally serialised by an asyncio.Lock so that the few multi-statement operations
(migrations, "not found or moved on?") stay atomic.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import aiosqlite

from bot.ledger.base import LedgerError
from bot.ledger.sql_store import SqlStore
from bot.ledger.sqlite_schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger("bot.ledger.sqlite")

BUSY_TIMEOUT_MS: Final = 5000


class SqliteConnection(SqlStore):
    """One SQLite file: the connection, its pragmas and migrations, and the query helpers."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._read_only = read_only
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file (creating it and its directory), set pragmas, run migrations.

        With read_only=True the file must already exist and nothing is written to it
        (used to check a database without touching it; writes fail with LedgerError).
        """
        if self._db is not None:
            return
        try:
            if self._read_only:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = await aiosqlite.connect(str(self.path), isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger at {self.path}: {exc}") from exc
        db.row_factory = sqlite3.Row
        self._db = db
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self._read_only:
                await db.execute("PRAGMA journal_mode = WAL")
                await db.execute("PRAGMA synchronous = NORMAL")
            await self._migrate(db)
        except BaseException:
            self._db = None
            await db.close()
            raise

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is None:
            return
        async with self._write_lock:
            try:
                await db.close()
            except sqlite3.Error as exc:
                raise LedgerError(f"closing the ledger failed: {exc}") from exc

    async def schema_version(self) -> int:
        rows = await self._fetch("PRAGMA user_version")
        return int(rows[0][0])

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        try:
            rows = await db.execute_fetchall("PRAGMA user_version")
            current = int(next(iter(rows))[0])
            if current > SCHEMA_VERSION:
                raise LedgerError(
                    f"the ledger at {self.path} has schema version {current}, newer than this "
                    f"bot understands ({SCHEMA_VERSION}); upgrade the bot"
                )
            if current == SCHEMA_VERSION:
                return
            if self._read_only:
                raise LedgerError(
                    f"the ledger at {self.path} needs migrating ({current} -> {SCHEMA_VERSION})"
                    " but was opened read-only"
                )
            async with self._write_lock:
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    await db.execute("BEGIN IMMEDIATE")
                    try:
                        for statement in MIGRATIONS[version - 1]:
                            await db.execute(statement)
                        await db.execute(f"PRAGMA user_version = {version}")
                        await db.execute("COMMIT")
                    except BaseException:
                        await db.execute("ROLLBACK")
                        raise
                    log.info("ledger schema migrated to version %d", version)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot prepare the ledger schema: {exc}") from exc

    # -- plumbing ------------------------------------------------------------------------

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise LedgerError("the ledger is not open")
        return self._db

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        db = self._conn()
        try:
            return list(await db.execute_fetchall(sql, params))
        except (sqlite3.Error, ValueError) as exc:
            raise LedgerError(f"ledger query failed: {exc}") from exc

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._write_lock:
            return await self._fetch(sql, params)
