"""The task ledger: the source of truth for every task."""

from __future__ import annotations

from bot.config import sqlite_path
from bot.ledger.base import (
    Block,
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
from bot.ledger.sqlite import SqliteLedger


def open_ledger(database_url: str) -> Ledger:
    """The ledger for DATABASE_URL (not yet opened: call `await ledger.open()`).

    Only `sqlite:///` URLs are supported today; anything else raises ValueError.
    """
    return SqliteLedger(sqlite_path(database_url))


__all__ = [
    "OPEN_STATES",
    "TERMINAL_STATES",
    "Block",
    "InputStore",
    "Ledger",
    "LedgerError",
    "MetaStore",
    "ModerationStore",
    "OperatorBlock",
    "ParentAction",
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
