"""What only the PostgreSQL ledger has: migrations under an advisory lock, several processes
(here: several pools) on one database, and a URL that may carry a password."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bot.ledger import LedgerError, PostgresLedger, Reference, RefSaved
from bot.ledger.postgres import SCHEMA_VERSION

DAY = "2026-12-03"


async def test_two_ledgers_opening_together_migrate_once(postgres_url: str) -> None:
    """Four processes starting at the same moment on an empty database: one schema, each
    version recorded once (without the lock, the second CREATE TABLE fails)."""
    ledgers = [PostgresLedger(postgres_url) for _ in range(4)]
    await asyncio.gather(*(led.open() for led in ledgers))
    try:
        conn = await asyncpg.connect(postgres_url)
        try:
            versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        finally:
            await conn.close()
        assert [row["version"] for row in versions] == list(range(1, SCHEMA_VERSION + 1))
        assert {await led.schema_version() for led in ledgers} == {SCHEMA_VERSION}
    finally:
        await asyncio.gather(*(led.close() for led in ledgers))


async def test_charges_from_two_processes_never_pass_the_limits(postgres_url: str) -> None:
    """Two pools (two processes' worth of connections) charge one member and one server at
    the same moment: exactly the allowed number of charges pass."""
    first, second = PostgresLedger(postgres_url), PostgresLedger(postgres_url)
    await first.open()
    await second.open()
    try:
        member = await asyncio.gather(
            *(
                led.charge_usage(1, 42, DAY, 2.5, member_limit=20.0, server_limit=None)
                for _ in range(30)
                for led in (first, second)
            )
        )
        assert member.count(True) == 8
        server = await asyncio.gather(
            *(
                led.charge_usage(1, 1000 + n, DAY, 1.0, member_limit=3.0, server_limit=35.0)
                for n in range(30)
                for led in (first, second)
            )
        )
        assert server.count(True) == 15
        assert await second.usage(1, 42, DAY) == (20.0, 35.0)
    finally:
        await first.close()
        await second.close()


async def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    led = PostgresLedger(postgres_url)
    await led.open()
    await led.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("INSERT INTO schema_migrations VALUES ($1, 0)", SCHEMA_VERSION + 1)
    finally:
        await conn.close()
    with pytest.raises(LedgerError, match="newer than this bot"):
        await PostgresLedger(postgres_url).open()


async def test_an_unreachable_server_is_a_ledger_error_without_the_password() -> None:
    led = PostgresLedger("postgresql://kontext:hunter2-secret@127.0.0.1:1/ledger")
    with pytest.raises(LedgerError) as caught:
        await led.open()
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(LedgerError, match="not open"):
        await led.get("a1b2c3d4e5f6")


async def test_reference_saves_from_two_processes_keep_the_limit(postgres_url: str) -> None:
    """Two pools saving 200 different names into one server at once: exactly the limit (50)
    is kept (without the server's lock the count and the insert interleave: 54 kept)."""
    first, second = PostgresLedger(postgres_url), PostgresLedger(postgres_url)
    await first.open()
    await second.open()
    try:
        saves = await asyncio.gather(
            *(
                led.save_ref(
                    Reference(7, f"ref {n}", None, 1, b"png", "r.png", "image/png", 1.0),
                    limit=50,
                )
                for n, led in enumerate([first, second] * 100)
            )
        )
        assert saves.count(RefSaved.SAVED) == 50
        assert await first.ref_storage(7) == (50, 150)
    finally:
        await first.close()
        await second.close()
