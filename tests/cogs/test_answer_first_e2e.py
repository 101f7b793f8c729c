"""A request is answered before anything touches the ledger (issue 16, section 1): the checks
Discord's 3-second rule waits for are answered from memory, and asked of the ledger after."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import pytest
from e2e_checks import settled
from e2e_helpers import BotProcess
from fakediscord import FakeDiscord
from postgres_db import fresh_database
from prometheus_client.parser import text_string_to_metric_families

# Every table admission reads (blocks, settings, quotas, open tasks and the cooldown).
ADMISSION_TABLES = "tasks, usage, blocks, operator_blocks, guild_settings"
CALLBACK = r"^/interactions/\d+/[^/]+/callback$"
HELD = "kontext_work_held_for_answers"


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


async def held_for_answers(bot: BotProcess) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{bot.http_url}/metrics") as resp:
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == HELD:
                return float(sample.value)
    raise AssertionError(f"{HELD} is not in /metrics")


async def test_work_after_an_answer_waits_for_the_answers_still_owed(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: dict[str, str]
) -> None:
    """One member's /imagine waits for its first answer (the fake holds the request); another
    member's /imagine, answered meanwhile, writes nothing and sends nothing to KIE until the
    first answer is out. Both images then arrive (issue 16: first answers before other work)."""
    held = discord_fake.hold_next("POST", CALLBACK)
    await discord_fake.slash("imagine", {"prompt": "a red kite"})
    await asyncio.wait_for(held.arrived.wait(), 10)
    other = discord_fake.add_user("second")
    second = await discord_fake.slash("imagine", {"prompt": "a blue kite"}, user=other)
    await discord_fake.wait_until(lambda: second.acknowledged, 10, what="the second answer")
    # Until the second request's work is held (or, without the rule, reaches KIE).
    deadline = time.monotonic() + 10
    while await held_for_answers(bot_process) < 1 and kie_sim.count("generate") == 0:
        assert time.monotonic() < deadline, "the second request's work neither held nor done"
        await asyncio.sleep(0.02)
    assert kie_sim.count("generate") == 0
    released = time.monotonic()
    held.release()
    await settled(discord_fake, bot_env, count=2)
    creates = [call.at for call in kie_sim.calls if call.endpoint == "generate"]
    assert len(creates) == 2 and min(creates) > released
    assert await held_for_answers(bot_process) == 0


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 502}, {"reset": True}])
async def test_a_failed_first_answer_is_tried_again(
    fault: dict[str, Any],
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_process: BotProcess,
    bot_env: dict[str, str],
) -> None:
    """Discord's 5xx, or a dropped connection, on the "thinking…" answer: it is sent again
    (as discord.py's own defer would) and the image arrives."""
    failure = discord_fake.fail_next("POST", CALLBACK, **fault)
    inter = await discord_fake.slash("imagine", {"prompt": "a second try"})
    (row,) = await settled(discord_fake, bot_env, timeout=30)
    assert (row.state, len(failure.hits)) == ("done", 1)
    assert discord_fake.conversation(inter).response_types == [5]
