"""The task ledger: the source of truth for every task."""

from __future__ import annotations

from bot.config import sqlite_path
from bot.ledger.base import (
    Block,
    Ledger,
    LedgerError,
    OperatorBlock,
    StoredInput,
    TaskNotFound,
)
from bot.ledger.models import OPEN_STATES, TERMINAL_STATES, Task, TaskKind, TaskParams, TaskState
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
    "Ledger",
    "LedgerError",
    "OperatorBlock",
    "SqliteLedger",
    "StoredInput",
    "Task",
    "TaskKind",
    "TaskNotFound",
    "TaskParams",
    "TaskState",
    "open_ledger",
]
