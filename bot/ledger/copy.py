"""Copy a single instance's SQLite ledger into an empty PostgreSQL one, and prove the copy.

`python -m bot migrate-ledger --from sqlite:///… --to postgresql://…`. Every table is copied
in one transaction on the target (all or nothing). The proof, per table: the row count and a
SHA-256 over the rows, each row its values in a canonical form (booleans as 0/1, floats by
repr, bytes as hex), the rows sorted; computed from the source and again from what the target
holds after the commit. Usage is compared as (server, member, day, credits) on both sides:
PostgreSQL keeps it as one row per server and day.

Task leases are not copied: every task arrives held by nobody (owner NULL, lease_until 0). The
single instance is stopped when its ledger is copied and the new processes have names of their
own, so a lease carried over (one left by a killed instance lasts up to TASK_LEASE_SECONDS)
would only keep its open tasks from every process until it ran out; the proof compares the
tasks as copied, with those two columns reset.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bot.ledger.base import LedgerError
from bot.ledger.postgres import PostgresLedger
from bot.ledger.sqlite import SqliteLedger
from bot.ledger.task_rows import BOOLEAN_FIELDS, TASK_FIELDS

_IMAGE_COLUMNS: Final = ("task_id", "data", "filename", "content_type", "created_at")
# Every table but usage, with the columns both backends share.
TABLES: Final[dict[str, tuple[str, ...]]] = {
    "tasks": TASK_FIELDS,
    "inputs": _IMAGE_COLUMNS,
    "result_copies": _IMAGE_COLUMNS,
    "guild_settings": ("guild_id", "data", "updated_at"),
    "blocks": ("guild_id", "user_id", "until", "reason", "blocked_by", "created_at"),
    "operator_blocks": ("user_id", "reason", "created_at"),
    "meta": ("key", "value"),
    "refs": (
        "guild_id",
        "name_key",
        "name",
        "note",
        "owner_id",
        "data",
        "filename",
        "content_type",
        "created_at",
        "kie_url",
        "kie_url_at",
    ),
}
# What the source's columns are read as (the rest as they are): no lease is carried over.
_SOURCE_READ_AS: Final = {"tasks": {"owner": "NULL", "lease_until": "0.0"}}
USAGE_COLUMNS: Final = ("guild_id", "user_id", "day", "credits")
_PG_USAGE: Final = (
    "SELECT guild_id, m.key::bigint AS user_id, day, m.value::float8 AS credits"
    " FROM usage, jsonb_each_text(members) AS m"
)


@dataclass(frozen=True)
class TableProof:
    table: str
    source_rows: int
    target_rows: int
    source_sha256: str
    target_sha256: str

    @property
    def ok(self) -> bool:
        return (self.source_rows, self.source_sha256) == (self.target_rows, self.target_sha256)


async def copy_ledger(source_path: Path, target_url: str) -> list[TableProof]:
    """Copy every table; LedgerError when the source cannot be read or the target is not
    empty. The proofs say whether each table arrived whole."""
    source = SqliteLedger(source_path, read_only=True)
    await source.open()
    target = PostgresLedger(target_url)
    try:
        await target.open()
        await _refuse_non_empty(target)
        rows = {
            table: await _source_rows(source, table, columns) for table, columns in TABLES.items()
        }
        usage = await _source_rows(source, "usage", USAGE_COLUMNS)
        await _write_target(target, rows, usage)
        proofs = [
            _proof(table, rows[table], await _target_rows(target, table, columns))
            for table, columns in TABLES.items()
        ]
        target_usage = [tuple(r) for r in await target._fetch(_PG_USAGE)]
        proofs.append(_proof("usage", usage, target_usage))
        return proofs
    finally:
        await source.close()
        await target.close()


async def _refuse_non_empty(target: PostgresLedger) -> None:
    for table in (*TABLES, "usage"):
        found = await target._fetch(f"SELECT 1 FROM {table} LIMIT 1")
        if found:
            raise LedgerError(f"the target ledger is not empty (table {table} has rows)")


async def _source_rows(
    source: SqliteLedger, table: str, columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    read_as = _SOURCE_READ_AS.get(table, {})
    selected = ", ".join(f"{read_as[c]} AS {c}" if c in read_as else c for c in columns)
    return [tuple(row) for row in await source._fetch(f"SELECT {selected} FROM {table}")]


async def _target_rows(
    target: PostgresLedger, table: str, columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await target._fetch(f"SELECT {', '.join(columns)} FROM {table}")]


async def _write_target(
    target: PostgresLedger,
    rows: dict[str, list[tuple[Any, ...]]],
    usage: list[tuple[Any, ...]],
) -> None:
    booleans = [TASK_FIELDS.index(name) for name in BOOLEAN_FIELDS]
    tasks = [
        tuple(bool(v) if i in booleans else v for i, v in enumerate(row)) for row in rows["tasks"]
    ]
    members: dict[tuple[int, str], dict[str, float]] = {}
    for guild_id, user_id, day, credits in usage:
        members.setdefault((guild_id, day), {})[str(user_id)] = float(credits)
    async with target._transaction() as conn:
        for table, columns in TABLES.items():
            records = tasks if table == "tasks" else rows[table]
            await conn.copy_records_to_table(table, records=records, columns=list(columns))
        await conn.copy_records_to_table(
            "usage",
            records=[(g, d, json.dumps(m)) for (g, d), m in members.items()],
            columns=["guild_id", "day", "members"],
        )


def _proof(table: str, source: list[tuple[Any, ...]], target: list[tuple[Any, ...]]) -> TableProof:
    return TableProof(table, len(source), len(target), checksum(source), checksum(target))


def checksum(rows: Iterable[Sequence[Any]]) -> str:
    """SHA-256 over the rows in a canonical form, whatever their order."""
    lines = sorted(json.dumps([_canonical(v) for v in row]) for row in rows)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value
