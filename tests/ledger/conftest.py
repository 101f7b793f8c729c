"""The ledger tests' shared fixture: a fresh SQLite ledger at a fixed clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.ledger import SqliteLedger

FIXED_NOW = 1_700_000_000.0


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    """An open ledger in tmp_path whose clock stands at FIXED_NOW (test_sqlite_ledger.py has
    its own, with a clock the tests move)."""
    led = SqliteLedger(tmp_path / "ledger.sqlite3", clock=lambda: FIXED_NOW)
    await led.open()
    try:
        yield led
    finally:
        await led.close()
