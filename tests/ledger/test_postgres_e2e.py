"""The real bot on the PostgreSQL ledger: an /imagine to delivery, across a kill -9."""

from __future__ import annotations

from typing import Any

import asyncpg
from e2e_helpers import run_cli
from postgres_db import wait_for_row


async def test_imagine_on_postgres_survives_a_kill_and_delivers_once(
    postgres_url: str, discord_fake: Any, kie_sim: Any, bot_factory: Any
) -> None:
    """DATABASE_URL=postgresql://...: the bot migrates the empty database, takes the task to
    KIE, is killed (SIGKILL) while KIE works, and on restart delivers the image once without
    a second generate; the URL's password never reaches the log. (`postgres_url` comes
    first: its database is dropped after the bots have stopped.)"""
    kie_sim.config.delay = 3.0
    # The machine's server trusts local users; the password in the URL is there to be hidden.
    url_with_password = postgres_url.replace("postgres@", "postgres:pw-SECRET-e2e@", 1)
    assert url_with_password != postgres_url
    bot = await bot_factory(DATABASE_URL=url_with_password, LOG_LEVEL="DEBUG")
    inter = await discord_fake.slash("imagine", {"prompt": "phoenix over a glacier"})
    await wait_for_row(
        postgres_url, "SELECT id FROM tasks WHERE state = 'generating'", "the task at KIE"
    )
    await bot.kill()
    await bot.start()
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(
        lambda: any(m.attachments for m in conv.messages), 30, what="the image"
    )
    row = await wait_for_row(
        postgres_url,
        "SELECT kie_task_id, (SELECT COUNT(*) FROM tasks) AS n FROM tasks WHERE state = 'done'",
        "the task done",
    )
    assert (row["n"], kie_sim.count("generate")) == (1, 1)
    assert len([m for m in discord_fake.channel_messages() if m.attachments]) == 1
    assert "pw-SECRET-e2e" not in bot.log_text()


async def test_check_names_the_postgres_ledger_without_its_password(
    postgres_url: str, discord_fake: Any, bot_env: dict[str, str]
) -> None:
    """`python -m bot check` on a PostgreSQL ledger: writable, the password shown as ***."""
    url = postgres_url.replace("postgres@", "postgres:pw-SECRET-check@", 1)
    run = await run_cli({**bot_env, "DATABASE_URL": url}, "check")
    assert run.code == 0, run.stderr
    assert "Ledger: postgresql://postgres:***@" in run.stdout
    assert "is writable" in run.stdout
    assert "pw-SECRET-check" not in run.stdout + run.stderr


async def test_a_task_created_while_leases_are_renewed_stays_this_processs(
    postgres_url: str, discord_fake: Any, kie_sim: Any, bot_factory: Any
) -> None:
    """The renewal returns the tasks it extended; a task written while it ran is not among
    them and must not be taken for one lost to another process. The renewal is held inside
    its UPDATE by a row lock on the first task (a test transaction), the second task is
    written and reaches KIE meanwhile, then the lock goes: the second image is delivered.
    (Before the fix the process forgot it, kept renewing its lease, and nobody delivered it.)"""
    kie_sim.config.delay = 4.0
    bot = await bot_factory(DATABASE_URL=postgres_url, TASK_LEASE_SECONDS="3")
    first = await discord_fake.slash("imagine", {"prompt": "a lighthouse at dusk"})
    row = await wait_for_row(
        postgres_url, "SELECT id FROM tasks WHERE state = 'generating'", "the first task at KIE"
    )
    lock = await asyncpg.connect(postgres_url)
    try:
        async with lock.transaction():
            await lock.execute("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", row["id"])
            await wait_for_row(
                postgres_url,
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'UPDATE tasks SET lease_until%'",
                "a lease renewal held by the row lock",
            )
            second = await discord_fake.slash("imagine", {"prompt": "a harbour at dawn"})
            await wait_for_row(
                postgres_url,
                f"SELECT id FROM tasks WHERE id != '{row['id']}' AND state = 'generating'",
                "the second task at KIE",
            )
    finally:
        await lock.close()
    for inter in (first, second):
        conv = discord_fake.conversation(inter)
        await discord_fake.wait_until(
            lambda conv=conv: any(m.attachments for m in conv.messages), 30, what="each image"
        )
    assert "is no longer this process's" not in bot.log_text()
