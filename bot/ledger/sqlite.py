"""The SQLite ledger: one aiosqlite connection, WAL journal, numbered migrations.

Every query is a single statement run in autocommit mode, so a compare-and-set
(`transition`) is one `UPDATE ... WHERE state IN (...) RETURNING *` and cannot interleave
with another writer. Writes are additionally serialised by an asyncio.Lock so that the
few multi-statement operations (migrations, "not found or moved on?") stay atomic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import aiosqlite

from bot.ledger.base import Block, LedgerError, OperatorBlock, StoredInput, TaskNotFound
from bot.ledger.models import OPEN_STATES, Task, TaskKind, TaskParams, TaskState

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS: Final = 5000

# Each entry is one schema version; never edit a released entry, append a new one.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE tasks (
            id                 TEXT PRIMARY KEY,
            kind               TEXT NOT NULL,
            state              TEXT NOT NULL,
            params             TEXT NOT NULL,
            requester_id       INTEGER NOT NULL,
            guild_id           INTEGER,
            channel_id         INTEGER NOT NULL,
            application_id     INTEGER NOT NULL,
            interaction_id     INTEGER NOT NULL,
            interaction_token  TEXT NOT NULL,
            created_at         REAL NOT NULL,
            updated_at         REAL NOT NULL,
            reply_message_id   INTEGER,
            kie_task_id        TEXT,
            input_image_url    TEXT,
            parent_task_id     TEXT,
            callback_secret    TEXT,
            attempts           INTEGER NOT NULL DEFAULT 0,
            submitted_at       REAL,
            completed_at       REAL,
            delivered_at       REAL,
            result_url         TEXT,
            result_message_id  INTEGER,
            error_code         TEXT,
            error_message      TEXT,
            cost               REAL NOT NULL DEFAULT 0,
            extra              TEXT NOT NULL DEFAULT '{}'
        )
        """,
        "CREATE INDEX tasks_state_created ON tasks (state, created_at)",
        "CREATE INDEX tasks_requester_state ON tasks (requester_id, state)",
        "CREATE UNIQUE INDEX tasks_kie_task_id ON tasks (kie_task_id) "
        "WHERE kie_task_id IS NOT NULL",
        "CREATE UNIQUE INDEX tasks_callback_secret ON tasks (callback_secret) "
        "WHERE callback_secret IS NOT NULL",
        "CREATE INDEX tasks_done_completed ON tasks (completed_at) WHERE state = 'done'",
        """
        CREATE TABLE inputs (
            task_id       TEXT PRIMARY KEY,
            data          BLOB NOT NULL,
            filename      TEXT NOT NULL,
            content_type  TEXT NOT NULL,
            created_at    REAL NOT NULL
        )
        """,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        # Moderation (issue #8): per-server settings, daily credit usage, blocks.
        """
        CREATE TABLE guild_settings (
            guild_id    INTEGER PRIMARY KEY,
            data        TEXT NOT NULL,
            updated_at  REAL NOT NULL
        )
        """,
        """
        CREATE TABLE usage (
            guild_id  INTEGER NOT NULL,
            user_id   INTEGER NOT NULL,
            day       TEXT NOT NULL,
            credits   REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (guild_id, day, user_id)
        )
        """,
        """
        CREATE TABLE blocks (
            guild_id    INTEGER NOT NULL,
            user_id     INTEGER NOT NULL,
            until       REAL,
            reason      TEXT NOT NULL,
            blocked_by  INTEGER,
            created_at  REAL NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        )
        """,
        "CREATE INDEX tasks_guild_requester_completed"
        " ON tasks (guild_id, requester_id, completed_at)",
    ),
    (
        # The operator's blocks (issue #11): `python -m bot block`, valid in every server and DM.
        """
        CREATE TABLE operator_blocks (
            user_id     INTEGER PRIMARY KEY,
            reason      TEXT,
            created_at  REAL NOT NULL
        )
        """,
    ),
    (
        # Control state as typed columns (issue #12), moved out of the JSON `extra` bag.
        "ALTER TABLE tasks ADD COLUMN retry_at REAL",
        "ALTER TABLE tasks ADD COLUMN delivery_attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN rerollable INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE tasks ADD COLUMN reply_gone INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN upload_limit INTEGER",
        "ALTER TABLE tasks ADD COLUMN spoiler INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN output_deleted_by INTEGER",
        """
        UPDATE tasks SET
            retry_at = json_extract(extra, '$.retry_at'),
            delivery_attempts = COALESCE(json_extract(extra, '$.delivery_attempts'), 0),
            rerollable = COALESCE(json_extract(extra, '$.rerollable'), 1) != 0,
            reply_gone = COALESCE(json_extract(extra, '$.reply_gone'), 0) != 0,
            upload_limit = json_extract(extra, '$.upload_limit'),
            spoiler = COALESCE(json_extract(extra, '$.spoiler'), 0) != 0,
            refunded = COALESCE(json_extract(extra, '$.refunded'), 0) != 0,
            output_deleted_by = json_extract(extra, '$.output_deleted_by')
        WHERE json_valid(extra) AND json_type(extra) = 'object'
        """,
        "ALTER TABLE tasks DROP COLUMN extra",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

TASK_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Task))
_UPDATABLE: Final = frozenset(TASK_FIELDS) - {"id"}
_BOOLEAN_FIELDS: Final = ("rerollable", "reply_gone", "spoiler", "refunded")
_HEALTH_KEY: Final = "health.last_write_check"


def _encode(name: str, value: Any) -> Any:
    """A Task field's value as stored in its column."""
    if name == "state":
        return TaskState(value).value
    if name == "kind":
        return TaskKind(value).value
    if name == "params":
        if not isinstance(value, TaskParams):
            raise ValueError("params must be a TaskParams")
        return json.dumps(value.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return value


def _decode(row: sqlite3.Row) -> Task:
    try:
        values: dict[str, Any] = {name: row[name] for name in TASK_FIELDS}
        values["state"] = TaskState(values["state"])
        values["kind"] = TaskKind(values["kind"])
        values["params"] = TaskParams.from_dict(json.loads(values["params"]))
        for name in _BOOLEAN_FIELDS:
            values[name] = bool(values[name])
        return Task(**values)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise LedgerError(f"a stored task could not be read: {exc}") from exc


class SqliteLedger:
    """The `Ledger` backed by one SQLite file."""

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

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Task | None:
        rows = await self._fetch(sql, params)
        return _decode(rows[0]) if rows else None

    def _assignments(self, changes: Mapping[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable task fields: {', '.join(sorted(unknown))}")
        values = dict(changes)
        values.setdefault("updated_at", self._clock())
        columns = ", ".join(f"{name} = ?" for name in values)
        return columns, [_encode(name, value) for name, value in values.items()]

    # -- tasks ---------------------------------------------------------------------------

    async def insert(self, task: Task) -> None:
        columns = ", ".join(TASK_FIELDS)
        marks = ", ".join("?" for _ in TASK_FIELDS)
        values = [_encode(name, getattr(task, name)) for name in TASK_FIELDS]
        await self._write(f"INSERT INTO tasks ({columns}) VALUES ({marks})", values)

    async def get(self, task_id: str) -> Task | None:
        return await self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))

    async def update(self, task_id: str, **changes: Any) -> Task:
        columns, values = self._assignments(changes)
        rows = await self._write(
            f"UPDATE tasks SET {columns} WHERE id = ? RETURNING *", [*values, task_id]
        )
        if not rows:
            raise TaskNotFound(task_id)
        return _decode(rows[0])

    async def transition(
        self, task_id: str, expected: frozenset[TaskState], **changes: Any
    ) -> Task | None:
        """Compare-and-set on state; None when the state had moved on; TaskNotFound."""
        if not expected:
            raise ValueError("transition needs at least one expected state")
        columns, values = self._assignments(changes)
        states = sorted(TaskState(s).value for s in expected)
        marks = ", ".join("?" for _ in states)
        async with self._write_lock:
            rows = await self._fetch(
                f"UPDATE tasks SET {columns} WHERE id = ? AND state IN ({marks}) RETURNING *",
                [*values, task_id, *states],
            )
            if rows:
                return _decode(rows[0])
            exists = await self._fetch("SELECT 1 FROM tasks WHERE id = ?", (task_id,))
        if not exists:
            raise TaskNotFound(task_id)
        return None

    async def update_if(
        self, task_id: str, expect: Mapping[str, Any], **changes: Any
    ) -> Task | None:
        """Compare-and-set on any fields; None when one no longer held; TaskNotFound."""
        if not expect:
            raise ValueError("update_if needs at least one expected field")
        unknown = set(expect) - _UPDATABLE
        if unknown:
            raise ValueError(f"not task fields: {', '.join(sorted(unknown))}")
        columns, values = self._assignments(changes)
        where = " AND ".join(f"{name} IS ?" for name in expect)
        expected = [_encode(name, value) for name, value in expect.items()]
        async with self._write_lock:
            rows = await self._fetch(
                f"UPDATE tasks SET {columns} WHERE id = ? AND {where} RETURNING *",
                [*values, task_id, *expected],
            )
            if rows:
                return _decode(rows[0])
            exists = await self._fetch("SELECT 1 FROM tasks WHERE id = ?", (task_id,))
        if not exists:
            raise TaskNotFound(task_id)
        return None

    async def open_tasks(self) -> list[Task]:
        states = _open_state_values()
        marks = ", ".join("?" for _ in states)
        rows = await self._fetch(
            f"SELECT * FROM tasks WHERE state IN ({marks}) ORDER BY created_at, rowid", states
        )
        return [_decode(row) for row in rows]

    async def count_open_for_user(self, user_id: int) -> int:
        states = _open_state_values()
        marks = ", ".join("?" for _ in states)
        rows = await self._fetch(
            f"SELECT COUNT(*) FROM tasks WHERE requester_id = ? AND state IN ({marks})",
            [user_id, *states],
        )
        return int(rows[0][0])

    async def find_by_kie_task_id(self, kie_task_id: str) -> Task | None:
        return await self._one("SELECT * FROM tasks WHERE kie_task_id = ?", (kie_task_id,))

    async def find_by_callback_secret(self, secret: str) -> Task | None:
        return await self._one("SELECT * FROM tasks WHERE callback_secret = ?", (secret,))

    async def recent_durations(self, limit: int = 50) -> list[float]:
        rows = await self._fetch(
            "SELECT completed_at - submitted_at FROM tasks"
            " WHERE state = ? AND completed_at IS NOT NULL AND submitted_at IS NOT NULL"
            " AND completed_at >= submitted_at"
            " ORDER BY completed_at DESC LIMIT ?",
            (TaskState.DONE.value, max(0, limit)),
        )
        return [float(row[0]) for row in rows]

    async def last_submission_at(self, user_id: int) -> float | None:
        rows = await self._fetch(
            "SELECT MAX(created_at) FROM tasks WHERE requester_id = ?", (user_id,)
        )
        value = rows[0][0]
        return None if value is None else float(value)

    # -- inputs --------------------------------------------------------------------------

    async def put_input(self, item: StoredInput) -> None:
        await self._write(
            "INSERT INTO inputs (task_id, data, filename, content_type, created_at)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (task_id) DO UPDATE SET data = excluded.data,"
            " filename = excluded.filename, content_type = excluded.content_type,"
            " created_at = excluded.created_at",
            (item.task_id, bytes(item.data), item.filename, item.content_type, self._clock()),
        )

    async def get_input(self, task_id: str) -> StoredInput | None:
        rows = await self._fetch(
            "SELECT task_id, data, filename, content_type FROM inputs WHERE task_id = ?",
            (task_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return StoredInput(
            task_id=row["task_id"],
            data=bytes(row["data"]),
            filename=row["filename"],
            content_type=row["content_type"],
        )

    async def delete_input(self, task_id: str) -> None:
        await self._write("DELETE FROM inputs WHERE task_id = ?", (task_id,))

    async def purge_inputs(self, older_than: float) -> int:
        rows = await self._write(
            "DELETE FROM inputs WHERE created_at < ? AND task_id IN"
            " (SELECT id FROM tasks WHERE state IN (?, ?)) RETURNING task_id",
            (older_than, TaskState.DONE.value, TaskState.FAILED.value),
        )
        return len(rows)

    # -- meta ----------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        rows = await self._fetch("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])

    async def set_meta(self, key: str, value: str) -> None:
        await self._write(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def check_writable(self) -> None:
        """A real write (an upsert into meta); LedgerError when it fails."""
        await self.set_meta(_HEALTH_KEY, repr(self._clock()))

    # -- moderation ----------------------------------------------------------------------

    async def get_guild_settings(self, guild_id: int) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return _json_object(rows[0][0]) if rows else None

    async def put_guild_settings(self, guild_id: int, data: Mapping[str, Any]) -> None:
        await self._write(
            "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET data = excluded.data,"
            " updated_at = excluded.updated_at",
            (guild_id, json.dumps(dict(data), separators=(",", ":")), self._clock()),
        )

    async def all_guild_settings(self) -> list[tuple[int, dict[str, Any]]]:
        rows = await self._fetch("SELECT guild_id, data FROM guild_settings ORDER BY guild_id")
        return [(int(row[0]), _json_object(row[1])) for row in rows]

    async def usage(self, guild_id: int, user_id: int, day: str) -> tuple[float, float]:
        rows = await self._fetch(
            "SELECT COALESCE(SUM(CASE WHEN user_id = ? THEN credits END), 0),"
            " COALESCE(SUM(credits), 0) FROM usage WHERE guild_id = ? AND day = ?",
            (user_id, guild_id, day),
        )
        return float(rows[0][0]), float(rows[0][1])

    async def charge_usage(
        self,
        guild_id: int,
        user_id: int,
        day: str,
        amount: float,
        *,
        member_limit: float | None,
        server_limit: float | None,
    ) -> bool:
        """Add `amount` unless it would take the member or the server over its limit (atomic)."""
        async with self._write_lock:
            member, server = await self.usage(guild_id, user_id, day)
            if member_limit is not None and member + amount > member_limit + 1e-9:
                return False
            if server_limit is not None and server + amount > server_limit + 1e-9:
                return False
            await self._fetch(_ADD_USAGE, (guild_id, user_id, day, amount))
        return True

    async def add_usage(self, guild_id: int, user_id: int, day: str, delta: float) -> None:
        """Add (or, negative, give back) credits; usage never goes below zero."""
        await self._write(_ADD_USAGE, (guild_id, user_id, day, delta))

    async def reset_usage(self, guild_id: int, user_id: int, day: str) -> None:
        await self._write(
            "DELETE FROM usage WHERE guild_id = ? AND user_id = ? AND day = ?",
            (guild_id, user_id, day),
        )

    async def get_block(self, guild_id: int, user_id: int) -> Block | None:
        rows = await self._fetch(
            "SELECT guild_id, user_id, until, reason, blocked_by, created_at FROM blocks"
            " WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        if not rows:
            return None
        row = rows[0]
        return Block(
            guild_id=int(row["guild_id"]),
            user_id=int(row["user_id"]),
            until=None if row["until"] is None else float(row["until"]),
            reason=str(row["reason"]),
            blocked_by=None if row["blocked_by"] is None else int(row["blocked_by"]),
            created_at=float(row["created_at"]),
        )

    async def put_block(self, block: Block) -> None:
        """Store a block; a timed one (an automatic cooldown) never replaces a permanent one."""
        await self._write(
            "INSERT INTO blocks (guild_id, user_id, until, reason, blocked_by, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (guild_id, user_id) DO UPDATE SET until = excluded.until,"
            " reason = excluded.reason, blocked_by = excluded.blocked_by,"
            " created_at = excluded.created_at"
            " WHERE excluded.until IS NULL OR blocks.until IS NOT NULL",
            (
                block.guild_id,
                block.user_id,
                block.until,
                block.reason,
                block.blocked_by,
                block.created_at,
            ),
        )

    async def delete_block(self, guild_id: int, user_id: int) -> bool:
        rows = await self._write(
            "DELETE FROM blocks WHERE guild_id = ? AND user_id = ? RETURNING user_id",
            (guild_id, user_id),
        )
        return bool(rows)

    async def count_outcomes(
        self, guild_id: int | None, user_id: int, error_code: str, since: float
    ) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM tasks WHERE guild_id IS ? AND requester_id = ?"
            " AND error_code = ? AND completed_at >= ?",
            (guild_id, user_id, error_code, since),
        )
        return int(rows[0][0])

    # -- the operator's blocks -----------------------------------------------------------

    async def get_operator_block(self, user_id: int) -> OperatorBlock | None:
        rows = await self._fetch(
            "SELECT user_id, reason, created_at FROM operator_blocks WHERE user_id = ?",
            (user_id,),
        )
        return _operator_block(rows[0]) if rows else None

    async def put_operator_block(self, block: OperatorBlock) -> None:
        await self._write(
            "INSERT INTO operator_blocks (user_id, reason, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET reason = excluded.reason,"
            " created_at = excluded.created_at",
            (block.user_id, block.reason, block.created_at),
        )

    async def delete_operator_block(self, user_id: int) -> bool:
        rows = await self._write(
            "DELETE FROM operator_blocks WHERE user_id = ? RETURNING user_id", (user_id,)
        )
        return bool(rows)

    async def operator_blocks(self) -> list[OperatorBlock]:
        rows = await self._fetch(
            "SELECT user_id, reason, created_at FROM operator_blocks ORDER BY created_at, user_id"
        )
        return [_operator_block(row) for row in rows]


_ADD_USAGE: Final = (
    "INSERT INTO usage (guild_id, user_id, day, credits) VALUES (?1, ?2, ?3, MAX(0, ?4))"
    " ON CONFLICT (guild_id, day, user_id) DO UPDATE SET credits = MAX(0, credits + ?4)"
)


def _operator_block(row: sqlite3.Row) -> OperatorBlock:
    return OperatorBlock(
        user_id=int(row["user_id"]),
        reason=None if row["reason"] is None else str(row["reason"]),
        created_at=float(row["created_at"]),
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise LedgerError(f"stored settings could not be read: {exc}") from exc
    if not isinstance(value, dict):
        raise LedgerError("stored settings are not a JSON object")
    return value


def _open_state_values() -> list[str]:
    return sorted(s.value for s in OPEN_STATES)
