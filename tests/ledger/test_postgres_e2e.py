"""The real bot on the PostgreSQL ledger: an /imagine to delivery, across a kill -9."""

from __future__ import annotations

from typing import Any

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
