"""The ledger tests' shared fixtures: every backend-neutral test runs against SQLite and
against the real PostgreSQL (a fresh database per test, dropped after)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from postgres_db import fresh_database

from bot.ledger import Ledger, PostgresLedger, SqliteLedger

FIXED_NOW = 1_700_000_000.0
BACKENDS = ("sqlite", "postgresql")


@asynccontextmanager
async def open_ledger_on(
    backend: str, tmp_path: Path, clock: Callable[[], float]
) -> AsyncIterator[Ledger]:
    """An open ledger of `backend` on fresh storage, closed (and, PostgreSQL, dropped) after."""
    if backend == "sqlite":
        led: Ledger = SqliteLedger(tmp_path / "ledger.sqlite3", clock=clock)
        await led.open()
        try:
            yield led
        finally:
            await led.close()
        return
    async with fresh_database() as url:
        led = PostgresLedger(url, clock=clock)
        await led.open()
        try:
            yield led
        finally:
            await led.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_clock() -> Callable[[], float]:
    """The ledger's clock: FIXED_NOW (test_sqlite_ledger.py has one the tests move)."""
    return lambda: FIXED_NOW


@pytest.fixture
async def ledger(
    backend: str, tmp_path: Path, ledger_clock: Callable[[], float]
) -> AsyncIterator[Ledger]:
    """An open ledger on each backend."""
    async with open_ledger_on(backend, tmp_path, ledger_clock) as led:
        yield led
