"""How processes sharing one PostgreSQL ledger divide the work (issue 15).

- Leases: each open task is leased by the process working on it (`owner`, `lease_until`, by
  the database's clock so that hosts' clocks may differ). Claims take whole sets, under a
  transaction advisory lock so that two claimers never split a set, with
  `FOR UPDATE SKIP LOCKED` so that a claim never waits on a task being written.
- The KIE budget: a sliding window per name (`rate_slots`: one row per call in the window),
  under a transaction advisory lock. Each process asks for one slot at a time, for the member
  its own fair queue serves next; the slot goes to the waiting process whose member was served
  longest ago (`member_turns`), then to the one that asked first (`rate_waiters`): members take
  turns across processes as they do within one.
- Callbacks: `NOTIFY kontext_callbacks, '<task id>'` reaches every process; the owner acts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import asyncpg

from bot.ledger.base import LedgerError
from bot.ledger.models import OPEN_STATES, Task
from bot.ledger.postgres_connection import DATABASE_ERRORS, PostgresConnection
from bot.ledger.task_rows import TASK_FIELDS, decode_task

log = logging.getLogger("bot.ledger.postgres")

CALLBACK_CHANNEL: Final = "kontext_callbacks"
# pg_advisory_xact_lock's key for claims: the bytes of "claims" read as one integer.
CLAIM_LOCK_KEY: Final = int.from_bytes(b"claims", "big")
# A process that has not asked again for this long is no longer waiting for a slot.
WAITER_STALE_SECONDS: Final = 2.0
# The longest a waiter is told to wait before asking again (it keeps its place by asking).
KEEP_PLACE_SECONDS: Final = WAITER_STALE_SECONDS / 2
# How soon a process that was not first in line asks again.
NOT_FIRST_RETRY_SECONDS: Final = 0.05
# A member not given a slot for this long counts as never served (the table stays small).
TURN_MEMORY_SECONDS: Final = 3600.0

# How soon a lost callback listener tries again, doubling up to the most.
RELISTEN_FIRST_DELAY: Final = 0.5
RELISTEN_MAX_DELAY: Final = 30.0

_COLUMNS = ", ".join(TASK_FIELDS)
_NOW = "extract(epoch from clock_timestamp())::double precision"


def _open_states() -> list[str]:
    return sorted(state.value for state in OPEN_STATES)


class PostgresCoordinationStore(PostgresConnection):
    """The `CoordinationStore` on the shared pool (and one connection for LISTEN)."""

    _listener: asyncpg.Connection | None = None
    _on_callback: Callable[[str], None] | None = None
    _relisten: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        return True

    async def claim_tasks(
        self, owner: str, lease_seconds: float, limit: int, *, mine_too: bool
    ) -> list[Task]:
        async with self._transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", CLAIM_LOCK_KEY)
            rows = await conn.fetch(
                f"""
                WITH groups AS (
                    SELECT COALESCE(set_id, id) AS grp, MIN(created_at) AS first
                    FROM tasks
                    WHERE state = ANY($1::text[])
                      AND (owner IS NULL OR lease_until < {_NOW} OR (owner = $2 AND $5))
                    GROUP BY COALESCE(set_id, id)
                    ORDER BY first
                    LIMIT $4
                ), picked AS (
                    SELECT id, COALESCE(set_id, id) AS grp FROM tasks
                    WHERE COALESCE(set_id, id) IN (SELECT grp FROM groups)
                      AND state = ANY($1::text[])
                      AND (owner IS NULL OR lease_until < {_NOW} OR (owner = $2 AND $5))
                    FOR UPDATE SKIP LOCKED
                ), whole AS (
                    -- A set one of whose open images was skipped (being written) waits whole.
                    SELECT picked.grp FROM picked GROUP BY picked.grp
                    HAVING COUNT(*) = (
                        SELECT COUNT(*) FROM tasks AS member
                        WHERE COALESCE(member.set_id, member.id) = picked.grp
                          AND member.state = ANY($1::text[])
                    )
                )
                UPDATE tasks SET owner = $2, lease_until = {_NOW} + $3
                WHERE id IN (SELECT id FROM picked WHERE grp IN (SELECT grp FROM whole))
                RETURNING {_COLUMNS}
                """,
                _open_states(),
                owner,
                lease_seconds,
                limit,
                mine_too,
            )
        tasks = [decode_task(row) for row in rows]
        return sorted(tasks, key=lambda task: (task.created_at, task.set_index))

    async def renew_leases(self, owner: str, lease_seconds: float) -> set[str]:
        rows = await self._write(
            f"UPDATE tasks SET lease_until = {_NOW} + $2"
            " WHERE owner = $1 AND state = ANY($3::text[]) RETURNING id",
            (owner, lease_seconds, _open_states()),
        )
        return {str(row[0]) for row in rows}

    async def release_leases(self, owner: str) -> None:
        await self._write(
            "UPDATE tasks SET owner = NULL, lease_until = 0"
            " WHERE owner = $1 AND state = ANY($2::text[])",
            (owner, _open_states()),
        )

    async def take_rate_slot(
        self, name: str, limit: int, window: float, waiter: str, member: int | None = None
    ) -> float:
        async with self._transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"rate:{name}")
            now = float(await conn.fetchval(f"SELECT {_NOW}"))
            await _forget_the_past(conn, name, window, now)
            turn = 0.0 if member is None else await _last_turn(conn, name, member)
            await conn.execute(
                "INSERT INTO rate_waiters (name, waiter, since, seen, turn)"
                " VALUES ($1, $2, $3, $3, $4) ON CONFLICT (name, waiter)"
                " DO UPDATE SET seen = excluded.seen, turn = excluded.turn",
                name,
                waiter,
                now,
                turn,
            )
            first = await conn.fetchval(
                "SELECT waiter FROM rate_waiters WHERE name = $1"
                " ORDER BY turn, since, waiter LIMIT 1",
                name,
            )
            used, oldest = await conn.fetchrow(
                "SELECT COUNT(*), MIN(at) FROM rate_slots WHERE name = $1", name
            )
            if used < limit and first == waiter:
                await _grant(conn, name, waiter, member, now)
                return 0.0
        if used < limit:
            return NOT_FIRST_RETRY_SECONDS
        # Asked again before it would count as gone, a waiter keeps its place in line however
        # long the window (KIE's creates: 10 s; a waiter is gone after WAITER_STALE_SECONDS).
        until_free = float(oldest) + window - now
        return max(NOT_FIRST_RETRY_SECONDS, min(until_free, KEEP_PLACE_SECONDS))

    async def notify_callback(self, task_id: str) -> None:
        await self._write("SELECT pg_notify($1, $2)", (CALLBACK_CHANNEL, task_id))

    async def listen_callbacks(self, on_task: Callable[[str], None]) -> None:
        if self._on_callback is not None:
            return
        self._on_callback = on_task
        try:
            await self._listen()
        except DATABASE_ERRORS as exc:
            self._on_callback = None
            raise LedgerError(f"cannot listen for callbacks: {type(exc).__name__}") from exc

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._url, timeout=10.0)
        try:
            await conn.add_listener(CALLBACK_CHANNEL, self._callback_heard)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._listener_lost)
        self._listener = conn

    def _callback_heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._on_callback is not None:
            self._on_callback(payload)

    def _listener_lost(self, conn: Any) -> None:
        if conn is not self._listener:  # closed by close()
            return
        self._listener = None
        log.warning("the callback listener's connection was lost; listening again")
        self._relisten = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        """Until it listens again (a callback meanwhile is not heard: its poll finds it)."""
        delay = RELISTEN_FIRST_DELAY
        while self._on_callback is not None and self._listener is None:
            try:
                await self._listen()
            except DATABASE_ERRORS as exc:
                log.warning("listening for callbacks failed: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RELISTEN_MAX_DELAY)
            else:
                log.info("listening for callbacks again")

    async def close(self) -> None:
        self._on_callback = None
        if self._relisten is not None:
            self._relisten.cancel()
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                await listener.close()
            except DATABASE_ERRORS as exc:
                log.warning("closing the callback listener failed: %s", type(exc).__name__)
        await super().close()


async def _forget_the_past(conn: asyncpg.Connection, name: str, window: float, now: float) -> None:
    """Calls out of the window, waiters that stopped asking, members not served for long."""
    await conn.execute("DELETE FROM rate_slots WHERE name = $1 AND at <= $2", name, now - window)
    await conn.execute(
        "DELETE FROM rate_waiters WHERE name = $1 AND seen < $2", name, now - WAITER_STALE_SECONDS
    )
    await conn.execute(
        "DELETE FROM member_turns WHERE name = $1 AND last_at < $2", name, now - TURN_MEMORY_SECONDS
    )


async def _last_turn(conn: asyncpg.Connection, name: str, member: int) -> float:
    """When `member` was last given a slot of `name` (0.0: not lately): lower goes first."""
    last = await conn.fetchval(
        "SELECT last_at FROM member_turns WHERE name = $1 AND member = $2", name, member
    )
    return 0.0 if last is None else float(last)


async def _grant(
    conn: asyncpg.Connection, name: str, waiter: str, member: int | None, now: float
) -> None:
    await conn.execute("INSERT INTO rate_slots (name, at) VALUES ($1, $2)", name, now)
    await conn.execute("DELETE FROM rate_waiters WHERE name = $1 AND waiter = $2", name, waiter)
    if member is not None:
        await conn.execute(
            "INSERT INTO member_turns (name, member, last_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (name, member) DO UPDATE SET last_at = excluded.last_at",
            name,
            member,
            now,
        )
