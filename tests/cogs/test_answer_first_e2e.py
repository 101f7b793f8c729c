"""A request is answered before anything touches the ledger (issue 16, section 1): the checks
Discord's 3-second rule waits for are answered from memory, and asked of the ledger after."""

from __future__ import annotations

from typing import Any

import asyncpg
from fakediscord import FakeDiscord
from postgres_db import fresh_database

# Every table admission reads (blocks, settings, quotas, open tasks and the cooldown).
ADMISSION_TABLES = "tasks, usage, blocks, operator_blocks, guild_settings"


async def test_a_stalled_ledger_does_not_hold_up_the_answer(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: Any
) -> None:
    """Another session holds every table admission reads (ACCESS EXCLUSIVE: even a read waits)
    for as long as the /imagine goes unanswered: it is answered all the same, within the 3 s
    the fake enforces; once the lock goes, the ledger's checks pass and the image arrives."""
    async with fresh_database() as url:
        bot = await bot_factory(DATABASE_URL=url)
        holder = await asyncpg.connect(url, timeout=10)
        stall = holder.transaction()
        await stall.start()
        await holder.execute(f"LOCK TABLE {ADMISSION_TABLES} IN ACCESS EXCLUSIVE MODE")
        try:
            inter = await discord_fake.slash("imagine", {"prompt": "a lighthouse at dusk"})
            await discord_fake.wait_until(
                lambda: inter.acknowledged or bool(discord_fake.late_responses),
                10,
                what="the answer while the ledger is stalled",
            )
        finally:
            await stall.rollback()
            await holder.close()
        conv = discord_fake.conversation(inter)
        await discord_fake.wait_until(
            lambda: any(m.attachments for m in conv.messages), 30, what="the image"
        )
        await bot.stop()
    assert (discord_fake.late_responses, kie_sim.count("generate")) == ([], 1)
