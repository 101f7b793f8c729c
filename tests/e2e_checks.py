"""Invariants the fault and security suites check after each task (Discord and the ledger)."""

from __future__ import annotations

import io
import sqlite3
from dataclasses import dataclass
from typing import Any

from fakediscord import Call, FakeDiscord
from PIL import Image

TERMINAL = ("done", "failed")


@dataclass(frozen=True)
class LedgerRow:
    id: str
    state: str
    requester_id: int
    reply_message_id: int | None
    result_message_id: int | None
    kie_task_id: str | None
    callback_secret: str | None
    error_code: str | None
    error_message: str | None
    attempts: int
    stored_text: str  # every column of the row as text, to look for what must never be stored


def ledger_rows(env: dict[str, str]) -> list[LedgerRow]:
    """Every task in the bot's ledger, read through a read-only SQLite connection."""
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return []
    try:
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute("SELECT * FROM tasks ORDER BY created_at").fetchall()
        except sqlite3.OperationalError:
            return []
        return [
            LedgerRow(
                id=r["id"],
                state=r["state"],
                requester_id=int(r["requester_id"]),
                reply_message_id=r["reply_message_id"],
                result_message_id=r["result_message_id"],
                kie_task_id=r["kie_task_id"],
                callback_secret=r["callback_secret"],
                error_code=r["error_code"],
                error_message=r["error_message"],
                attempts=int(r["attempts"]),
                stored_text=" ".join(str(value) for value in tuple(r)),
            )
            for r in rows
        ]
    finally:
        db.close()


def result_posts(fake: FakeDiscord) -> list[Call]:
    """Successful Discord calls that carried an image (each one is a delivered result)."""
    return [
        c
        for c in fake.calls
        if c.kind == "rest"
        and c.method in ("POST", "PATCH")
        and c.status is not None
        and 200 <= c.status < 300  # 0: no answer (the connection was dropped)
        and any(f.data for f in c.files)
    ]


def ephemeral_texts(fake: FakeDiscord, interaction: Any) -> list[str]:
    """The text of every ephemeral message the bot sent for an interaction."""
    return [m.text for m in fake.conversation(interaction).ephemeral_messages]


async def wait_terminal(
    fake: FakeDiscord, env: dict[str, str], count: int = 1, timeout: float = 30.0
) -> list[LedgerRow]:
    """Wait until the ledger holds ``count`` tasks, all terminal; return them."""

    def done() -> list[LedgerRow] | None:
        rows = ledger_rows(env)
        if len(rows) >= count and all(r.state in TERMINAL for r in rows):
            return rows
        return None

    # wait_until re-checks at least every 0.1 s, so state the fake does not see (the ledger) works.
    result: list[LedgerRow] = await fake.wait_until(
        done, timeout, what=f"{count} terminal task(s) in the ledger"
    )
    return result


def assert_consistent(fake: FakeDiscord, env: dict[str, str]) -> list[LedgerRow]:
    """Every task is terminal, none delivered twice, and the ledger agrees with Discord."""
    rows = ledger_rows(env)
    posts = result_posts(fake)
    assert all(r.state in TERMINAL for r in rows), [(r.id, r.state) for r in rows]
    for row in rows:
        mine = [c for c in posts if any(row.id in (f.filename or "") for f in c.files)]
        if row.state == "done":
            assert len(mine) == 1, f"task {row.id} delivered {len(mine)} times"
            assert row.result_message_id is not None
            message = fake.message(row.result_message_id)
            assert message.attachments, "the ledger's result message has no image"
            data = message.attachments[0].data
            assert data, "the result message's attachment is empty"
            Image.open(io.BytesIO(data)).verify()
            assert not message.deleted
        else:
            assert not mine, f"failed task {row.id} was delivered"
            assert row.error_code, "a failed task has no reason"
    return rows


async def settled(
    fake: FakeDiscord, env: dict[str, str], count: int = 1, timeout: float = 30.0
) -> list[LedgerRow]:
    """Wait for ``count`` terminal tasks, then check every invariant; return the rows."""
    await wait_terminal(fake, env, count, timeout)
    return assert_consistent(fake, env)
