"""The task ledger: the source of truth for every task."""

from __future__ import annotations

from bot.config import DATABASE_URL_FORMS, is_postgres_url, sqlite_path
from bot.ledger.base import (
    Block,
    CoordinationStore,
    InputStore,
    Ledger,
    LedgerError,
    MetaStore,
    ModerationStore,
    OperatorBlock,
    Reference,
    RefSaved,
    RefStore,
    RefSummary,
    StoredInput,
    TaskAndInputStore,
    TaskNotFound,
    TaskStore,
)
from bot.ledger.models import (
    OPEN_STATES,
    TERMINAL_STATES,
    ParentAction,
    Task,
    TaskKind,
    TaskParams,
    TaskState,
)
from bot.ledger.postgres import PostgresLedger
from bot.ledger.sqlite import SqliteLedger


def open_ledger(database_url: str) -> Ledger:
    """The ledger for DATABASE_URL (not yet opened: call `await ledger.open()`).

    `sqlite:///path` (the default: one file) or `postgresql://` / `postgres://` (several
    processes may share it); anything else raises ValueError.
    """
    if is_postgres_url(database_url):
        return PostgresLedger(database_url)
    try:
        return SqliteLedger(sqlite_path(database_url))
    except ValueError as exc:
        raise ValueError(f"{exc}: DATABASE_URL must look like {DATABASE_URL_FORMS}") from exc


__all__ = [
    "OPEN_STATES",
    "TERMINAL_STATES",
    "Block",
    "CoordinationStore",
    "InputStore",
    "Ledger",
    "LedgerError",
    "MetaStore",
    "ModerationStore",
    "OperatorBlock",
    "ParentAction",
    "PostgresLedger",
    "RefSaved",
    "RefStore",
    "RefSummary",
    "Reference",
    "SqliteLedger",
    "StoredInput",
    "Task",
    "TaskAndInputStore",
    "TaskKind",
    "TaskNotFound",
    "TaskParams",
    "TaskState",
    "TaskStore",
    "open_ledger",
]
