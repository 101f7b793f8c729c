"""The connection pool the PostgreSQL stores share: open, migrate, query, close.

Every query runs on a connection from an asyncpg pool in autocommit, so a compare-and-set is
one `UPDATE ... WHERE ... RETURNING *` that other processes cannot interleave with; nothing
here assumes this process is the only one using the database (several share it: issue 15).
Migrations run at start-up under a session advisory lock, so processes starting together
migrate once: the first applies them, the others wait and then find the version recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg

from bot.ledger.base import LedgerError
from bot.ledger.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from bot.ledger.sql_store import SqlStore, numbered_placeholders

log = logging.getLogger("bot.ledger.postgres")

# pg_advisory_lock's key for migrations: the bytes of "kontext" read as one integer.
MIGRATION_LOCK_KEY: Final = int.from_bytes(b"kontext", "big")
POOL_MAX_SIZE: Final = 10
CONNECT_TIMEOUT_SECONDS: Final = 10.0
# A statement still running after this long fails with LedgerError instead of hanging the bot.
COMMAND_TIMEOUT_SECONDS: Final = 30.0
MIGRATION_WAIT_SECONDS: Final = 300.0

# What asyncpg raises when a query or a connection fails.
DATABASE_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresConnection(SqlStore):
    """One PostgreSQL database: the pool, its migrations, and the query helpers (which take
    the portable stores' `?` placeholders too: bot.ledger.sql_store)."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        pool_max_size: int = POOL_MAX_SIZE,
    ) -> None:
        self._url = url
        self._clock = clock
        self._pool_max_size = pool_max_size
        self._pool: asyncpg.Pool | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (a pool) and bring the schema up to date; LedgerError when it cannot.

        The message never carries the URL: it may hold a password.
        """
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self._url,
                min_size=1,
                max_size=self._pool_max_size,
                timeout=CONNECT_TIMEOUT_SECONDS,
                command_timeout=COMMAND_TIMEOUT_SECONDS,
            )
        except (*DATABASE_ERRORS, ValueError) as exc:
            raise LedgerError(
                f"cannot open the PostgreSQL ledger: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            await self._migrate(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await pool.close()
        except DATABASE_ERRORS as exc:
            raise LedgerError(f"closing the ledger failed: {exc}") from exc

    async def schema_version(self) -> int:
        rows = await self._fetch("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(rows[0][0])

    async def _migrate(self, pool: asyncpg.Pool) -> None:
        try:
            async with pool.acquire() as conn:
                # Another process may be migrating: wait for it longer than for a query.
                await conn.execute(
                    "SELECT pg_advisory_lock($1)",
                    MIGRATION_LOCK_KEY,
                    timeout=MIGRATION_WAIT_SECONDS,
                )
                try:
                    await self._apply_migrations(conn)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        except DATABASE_ERRORS as exc:
            raise LedgerError(f"cannot prepare the ledger schema: {exc}") from exc

    async def _apply_migrations(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = int(
            await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        )
        if current > SCHEMA_VERSION:
            raise LedgerError(
                f"the PostgreSQL ledger has schema version {current}, newer than this bot "
                f"understands ({SCHEMA_VERSION}); upgrade the bot"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            async with conn.transaction():
                for statement in MIGRATIONS[version - 1]:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    version,
                    self._clock(),
                )
            log.info("ledger schema migrated to version %d", version)

    # -- plumbing ------------------------------------------------------------------------

    def _the_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise LedgerError("the ledger is not open")
        return self._pool

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[asyncpg.Record]:
        pool = self._the_pool()
        try:
            return list(await pool.fetch(numbered_placeholders(sql), *params))
        except (*DATABASE_ERRORS, ValueError, TypeError) as exc:
            raise LedgerError(f"ledger query failed: {exc}") from exc

    _write = _fetch  # every statement commits on its own; the name says a write is meant

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One connection in a transaction, for the few operations that need several
        statements (each sees what the earlier ones and other committed writers did)."""
        pool = self._the_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield conn
        except (*DATABASE_ERRORS, ValueError, TypeError) as exc:
            raise LedgerError(f"ledger query failed: {exc}") from exc
