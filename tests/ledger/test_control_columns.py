"""Control state as typed task columns (migration 4) and the compare-and-set on any field."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from bot.ledger import Ledger, SqliteLedger, Task, TaskKind, TaskNotFound, TaskParams
from bot.ledger.sqlite import MIGRATIONS

OLD_EXTRA = {
    "retry_at": 1_700_000_123.5,
    "delivery_attempts": 2,
    "rerollable": False,
    "reply_gone": True,
    "upload_limit": 10_485_760,
    "spoiler": True,
    "refunded": True,
    "output_deleted_by": 2**62 + 3,
}


def make_task(task_id: str, *, cost: float = 5.0) -> Task:
    return Task(
        id=task_id,
        kind=TaskKind.IMAGINE,
        params=TaskParams(prompt="a lighthouse"),
        requester_id=1,
        guild_id=2,
        channel_id=3,
        application_id=4,
        interaction_id=5,
        interaction_token="tok",
        created_at=100.0,
        updated_at=100.0,
        cost=cost,
    )


def schema_3_database(path: Path, extras: dict[str, str]) -> None:
    """A ledger as the bot before issue 12 left it: control state in the `extra` JSON text."""
    with sqlite3.connect(path) as db:
        for statements in MIGRATIONS[:3]:
            for statement in statements:
                db.execute(statement)
        for task_id, extra in extras.items():
            db.execute(
                "INSERT INTO tasks (id, kind, state, params, requester_id, channel_id,"
                " application_id, interaction_id, interaction_token, created_at, updated_at,"
                " extra) VALUES (?, 'imagine', 'delivering', ?, 1, 3, 4, 5, 'tok', 1.0, 1.0, ?)",
                (task_id, json.dumps({"prompt": "p"}), extra),
            )
        db.execute("PRAGMA user_version = 3")


async def test_a_schema_3_ledger_moves_extra_keys_into_columns(tmp_path: Path) -> None:
    """Every control key of a stored `extra` reads back as its typed column after migrating."""
    path = tmp_path / "old.sqlite3"
    schema_3_database(path, {"aaaaaaaaaaaa": json.dumps(OLD_EXTRA)})
    led = SqliteLedger(path)
    await led.open()
    try:
        task = await led.get("aaaaaaaaaaaa")
    finally:
        await led.close()
    assert task is not None
    moved = {name: getattr(task, name) for name in OLD_EXTRA}
    assert moved == OLD_EXTRA


async def test_a_schema_3_task_without_keys_gets_the_defaults(tmp_path: Path) -> None:
    """A task whose `extra` was empty (or not an object) reads back with the default state."""
    path = tmp_path / "old.sqlite3"
    schema_3_database(path, {"bbbbbbbbbbbb": "{}", "cccccccccccc": "[1]"})
    led = SqliteLedger(path)
    await led.open()
    try:
        tasks = [await led.get("bbbbbbbbbbbb"), await led.get("cccccccccccc")]
    finally:
        await led.close()
    defaults = make_task("x")
    for task in tasks:
        assert task is not None
        got = {name: getattr(task, name) for name in OLD_EXTRA}
        assert got == {name: getattr(defaults, name) for name in OLD_EXTRA}


async def test_a_column_compare_and_set_wins_once(ledger: Ledger) -> None:
    """Of several concurrent refunds (refunded False -> True) exactly one is applied."""
    await ledger.insert(make_task("dddddddddddd"))
    results = await asyncio.gather(
        *(ledger.update_if("dddddddddddd", {"refunded": False}, refunded=True) for _ in range(5))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].refunded is True


async def test_a_column_compare_and_set_of_a_missing_task_raises(ledger: Ledger) -> None:
    """update_if() of an unknown id raises TaskNotFound (not None, which means 'moved on')."""
    with pytest.raises(TaskNotFound):
        await ledger.update_if("missing", {"refunded": False}, refunded=True)


async def test_a_column_compare_and_set_refuses_unknown_fields(ledger: Ledger) -> None:
    """update_if() refuses an expected field the Task does not have."""
    await ledger.insert(make_task("eeeeeeeeeeee"))
    with pytest.raises(ValueError, match="bogus"):
        await ledger.update_if("eeeeeeeeeeee", {"bogus": 1}, refunded=True)
