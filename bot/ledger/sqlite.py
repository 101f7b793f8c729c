"""The SQLite ledger: one aiosqlite connection, WAL journal, numbered migrations.

Each concern is its own store (tasks, inputs, meta, moderation, references:
bot.ledger.sqlite_*), all sharing the one connection and write lock of `SqliteConnection`;
`SqliteLedger` is their union.
"""

from __future__ import annotations

from bot.ledger.sql_inputs import SqlInputStore, SqlMetaStore
from bot.ledger.sqlite_connection import BUSY_TIMEOUT_MS, SqliteConnection
from bot.ledger.sqlite_coordination import SqliteCoordinationStore
from bot.ledger.sqlite_moderation import SqliteModerationStore
from bot.ledger.sqlite_refs import SqliteRefStore
from bot.ledger.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from bot.ledger.sqlite_tasks import SqliteTaskStore
from bot.ledger.task_rows import TASK_FIELDS


class SqliteLedger(
    SqliteTaskStore,
    SqlInputStore,
    SqliteModerationStore,
    SqlMetaStore,
    SqliteRefStore,
    SqliteCoordinationStore,
):
    """The `Ledger` backed by one SQLite file."""


__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TASK_FIELDS",
    "SqlInputStore",
    "SqlMetaStore",
    "SqliteConnection",
    "SqliteLedger",
    "SqliteModerationStore",
    "SqliteRefStore",
    "SqliteTaskStore",
]
