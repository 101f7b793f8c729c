"""A fresh PostgreSQL database per test, on the machine's server (127.0.0.1:5432), dropped after.

No test shares a database with another. When the server cannot be reached the test fails with a
plain message (never skips): the PostgreSQL ledger is part of what CI proves.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

# The server's maintenance database, reached as a superuser (trust auth on the machine).
ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {ADMIN_URL} ({type(exc).__name__}: {exc}); the "
            "PostgreSQL ledger tests need it (start it, or set TEST_POSTGRES_ADMIN_URL)",
            pytrace=False,
        )


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped (with its connections) afterwards."""
    name = f"kontext_test_{secrets.token_hex(6)}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield database_url(name)
    finally:
        admin = await _admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def wait_for_row(url: str, sql: str, what: str, timeout: float = 20.0) -> asyncpg.Record:
    """Wait until `sql` returns a row; the first one (see `wait_for_rows`)."""
    return (await wait_for_rows(url, sql, what=what, timeout=timeout))[0]


async def wait_for_rows(
    url: str, sql: str, *args: Any, what: str, timeout: float = 20.0
) -> list[asyncpg.Record]:
    """Wait until `sql` (with `args`) returns rows (re-checked every 0.1 s, like
    FakeDiscord.wait_until re-checks external state); its rows. Fails naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    conn = await asyncpg.connect(url, timeout=10)
    try:
        while True:
            try:
                rows = list(await conn.fetch(sql, *args))
            except asyncpg.UndefinedTableError:  # the bot has not migrated yet
                rows = []
            if rows:
                return rows
            if loop.time() >= deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
