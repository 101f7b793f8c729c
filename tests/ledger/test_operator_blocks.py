"""The ledger's operator blocks (migration 3) and usage outside servers (scope 0)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.ledger import Ledger, OperatorBlock, SqliteLedger
from bot.ledger.sqlite import MIGRATIONS


async def test_a_block_is_stored_replaced_listed_and_lifted(ledger: Ledger) -> None:
    """A second block replaces the reason; listed oldest first; deleting twice: True, False."""
    await ledger.put_operator_block(OperatorBlock(7, "spam", 10.0))
    await ledger.put_operator_block(OperatorBlock(7, "scam", 11.0))
    await ledger.put_operator_block(OperatorBlock(8, None, 12.0))
    listed = await ledger.operator_blocks()
    removed = [await ledger.delete_operator_block(7), await ledger.delete_operator_block(7)]
    assert listed == [OperatorBlock(7, "scam", 11.0), OperatorBlock(8, None, 12.0)]
    assert removed == [True, False]
    assert await ledger.get_operator_block(7) is None


async def test_a_version_2_ledger_gains_the_operator_blocks_table(tmp_path: Path) -> None:
    """An existing ledger (schema 2, before operator blocks) is migrated on open."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
    again = SqliteLedger(path)
    await again.open()
    try:
        await again.put_operator_block(OperatorBlock(5, None, 1.0))
        assert await again.get_operator_block(5) == OperatorBlock(5, None, 1.0)
    finally:
        await again.close()
