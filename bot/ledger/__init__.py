"""The task ledger: the source of truth for every task."""

from bot.ledger.base import Ledger, LedgerError, StoredInput, TaskNotFound
from bot.ledger.models import OPEN_STATES, TERMINAL_STATES, Task, TaskKind, TaskParams, TaskState

__all__ = [
    "OPEN_STATES",
    "TERMINAL_STATES",
    "Ledger",
    "LedgerError",
    "StoredInput",
    "Task",
    "TaskKind",
    "TaskNotFound",
    "TaskParams",
    "TaskState",
]
