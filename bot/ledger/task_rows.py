"""A task's fields as its backends store them (both ledgers share the encoding)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Final, Protocol

from bot.ledger.base import LedgerError
from bot.ledger.models import ParentAction, Task, TaskKind, TaskParams, TaskState

TASK_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Task))
# A lease (owner, lease_until) is written only by the lease store's claims and renewals.
UPDATABLE_FIELDS: Final = frozenset(TASK_FIELDS) - {"id", "owner", "lease_until"}
BOOLEAN_FIELDS: Final = ("rerollable", "reply_gone", "spoiler", "refunded", "private")


class Row(Protocol):
    """A stored row by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...


def encode_field(name: str, value: Any) -> Any:
    """A Task field's value as stored in its column."""
    if name == "state":
        return TaskState(value).value
    if name == "kind":
        return TaskKind(value).value
    if name == "parent_action":
        return None if value is None else ParentAction(value).value
    if name == "params":
        if not isinstance(value, TaskParams):
            raise ValueError("params must be a TaskParams")
        return json.dumps(value.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return value


def decode_task(row: Row) -> Task:
    try:
        values: dict[str, Any] = {name: row[name] for name in TASK_FIELDS}
        values["state"] = TaskState(values["state"])
        values["kind"] = TaskKind(values["kind"])
        if values["parent_action"] is not None:
            values["parent_action"] = ParentAction(values["parent_action"])
        values["params"] = TaskParams.from_dict(json.loads(values["params"]))
        for name in BOOLEAN_FIELDS:
            values[name] = bool(values[name])
        return Task(**values)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise LedgerError(f"a stored task could not be read: {exc}") from exc


def same_guild(guild_id: int | None, param: int) -> str:
    """PostgreSQL's condition for "in this server" (None: outside servers) on parameter
    `param`, in a form its indexes serve (`IS NOT DISTINCT FROM` would not use them)."""
    if guild_id is None:
        return f"guild_id IS NULL AND ${param}::bigint IS NULL"
    return f"guild_id = ${param}"
