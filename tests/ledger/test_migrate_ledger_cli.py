"""`python -m bot migrate-ledger`: a SQLite ledger copied whole into an empty PostgreSQL one."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import run_cli
from test_sqlite_ledger import full_task, make_task

from bot.ledger import (
    Block,
    OperatorBlock,
    PostgresLedger,
    Reference,
    RefSaved,
    SqliteLedger,
    StoredInput,
)

DAY = "2026-12-03"


async def fill(led: SqliteLedger) -> None:
    """One of everything a single instance keeps."""
    await led.insert(full_task(), make_task("aaaaaaaaaaaa", user=7), make_task("bbbbbbbbbbbb"))
    await led.put_input(StoredInput("aaaaaaaaaaaa", b"\x89PNG\x00in", "in.png", "image/png"))
    await led.put_result_copy(StoredInput("bbbbbbbbbbbb", b"\xff\xd8out", "o.jpg", "image/jpeg"))
    await led.put_guild_settings(222, {"member_daily": 20.0, "note": "ünï"})
    await led.add_usage(222, 7, DAY, 12.5)
    await led.add_usage(222, 8, DAY, 5.0)
    await led.add_usage(333, 7, "2026-12-02", 1.0)
    await led.put_block(Block(222, 9, until=None, reason="spam", blocked_by=1, created_at=5.0))
    await led.put_operator_block(OperatorBlock(10, None, 6.0))
    await led.set_meta("commands.hash", "abc")
    ref = Reference(222, "Captain Mira", "hero", 7, b"\x89PNGref", "m.png", "image/png", 9.0)
    assert await led.save_ref(ref, limit=5) is RefSaved.SAVED


async def test_the_copy_is_whole_and_a_second_copy_is_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    source = SqliteLedger(tmp_path / "ledger.sqlite3")
    await source.open()
    await fill(source)
    await source.close()
    args = ("migrate-ledger", "--from", f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    run = await run_cli({}, *args, "--to", postgres_url)
    assert run.code == 0, run.stderr
    assert "tasks: 3 -> 3 rows" in run.stdout
    assert "usage: 3 -> 3 rows" in run.stdout
    assert "MISMATCH" not in run.stdout
    copy = PostgresLedger(postgres_url)
    await copy.open()
    try:
        assert await copy.get(full_task().id) == full_task()
        assert await copy.usage(222, 7, DAY) == (12.5, 17.5)
        assert (await copy.get_ref(222, "captain mira")) is not None
        assert await copy.get_block(222, 9) is not None
        assert (await copy.get_input("aaaaaaaaaaaa")) is not None
    finally:
        await copy.close()
    again = await run_cli({}, *args, "--to", postgres_url)
    assert again.code == 1
    assert "not empty" in again.stderr


async def test_copied_tasks_are_held_by_nobody_and_claimed_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """A killed single instance left a lease on its open task; the copy does not carry it over,
    so the first PostgreSQL process (another name) takes the task without waiting it out."""
    source = SqliteLedger(tmp_path / "ledger.sqlite3")
    await source.open()
    left = make_task("aaaaaaaaaaaa").with_changes(owner="old-host", lease_until=4_000_000_000.0)
    await source.insert(left)
    await source.close()
    run = await run_cli(
        {},
        "migrate-ledger",
        "--from",
        f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
        "--to",
        postgres_url,
    )
    assert run.code == 0 and "MISMATCH" not in run.stdout, run.stdout + run.stderr
    copy = PostgresLedger(postgres_url)
    await copy.open()
    try:
        claimed = await copy.claim_tasks("new-host/shards-0-1", 30.0, 10, mine_too=True)
    finally:
        await copy.close()
    assert [task.id for task in claimed] == ["aaaaaaaaaaaa"]
