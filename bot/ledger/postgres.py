"""The PostgreSQL ledger (DATABASE_URL=postgresql://...): an asyncpg pool, its own migrations.

Each concern is its own store (tasks, inputs, meta, moderation, references:
bot.ledger.postgres_*), all sharing the pool of `PostgresConnection`; `PostgresLedger` is their
union. It behaves as the SQLite ledger does (tests/ledger run against both).
"""

from __future__ import annotations

from bot.ledger.postgres_connection import MIGRATION_LOCK_KEY, PostgresConnection
from bot.ledger.postgres_coordination import PostgresCoordinationStore
from bot.ledger.postgres_moderation import PostgresModerationStore
from bot.ledger.postgres_refs import PostgresRefStore
from bot.ledger.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from bot.ledger.postgres_tasks import PostgresTaskStore
from bot.ledger.sql_inputs import SqlInputStore, SqlMetaStore


class PostgresLedger(
    PostgresTaskStore,
    SqlInputStore,
    PostgresModerationStore,
    SqlMetaStore,
    PostgresRefStore,
    PostgresCoordinationStore,
):
    """The `Ledger` backed by one PostgreSQL database."""


__all__ = [
    "MIGRATIONS",
    "MIGRATION_LOCK_KEY",
    "SCHEMA_VERSION",
    "PostgresConnection",
    "PostgresLedger",
]
