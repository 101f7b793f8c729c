"""Several bot processes on one PostgreSQL ledger (issue 15): what must happen once per bot
happens once — the low-credit alert, the command sync of a deploy — and the IDENTIFYs of
processes sharing a rate-limit bucket stay 5 s apart.

The processes run shards 0 and 1 of 2 (SHARD_IDS), as a deployment splits them. "Starting
together" is made the worst case: the test holds a row lock on the meta key both processes are
about to write, waits until both are blocked on it (pg_stat_activity), then lets them go at
once. A read followed by a write lets both through that gate; a compare-and-set lets one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from e2e_helpers import COMMANDS_PUT, BotProcess, free_port
from fakediscord import FakeDiscord
from postgres_db import wait_for_row

from bot.ledger import PostgresLedger
from bot.moderation.credits import ALERT_KEY

BotFactory = Callable[..., Awaitable[BotProcess]]
SYNC_KEY = "commands_hash:global"  # cogs.client COMMANDS_HASH_KEY, no DEV_GUILD_ID
PREVIOUS_DEPLOY = "digest-of-the-previous-deploy"
BOTH_BLOCKED = (
    "SELECT 1 WHERE (SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND wait_event_type = 'Lock' AND query LIKE '% meta %') >= 2"
)


async def store_meta(url: str, key: str, value: str) -> None:
    """The schema, and `key` stored as `value` (what an earlier run of the bot left)."""
    ledger = PostgresLedger(url)
    await ledger.open()
    try:
        await ledger.set_meta(key, value)
    finally:
        await ledger.close()


async def start_together(
    url: str, gate_key: str, bot_factory: BotFactory, **env: str
) -> list[BotProcess]:
    """Two processes (shards 0 and 1 of 2) on the ledger at `url`, both held on `gate_key`'s
    meta row until each waits to write it, then released at once."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        async with conn.transaction():
            await conn.execute("SELECT value FROM meta WHERE key = $1 FOR UPDATE", gate_key)
            started = [
                asyncio.ensure_future(
                    bot_factory(
                        DATABASE_URL=url,
                        PROCESS_NAME=f"proc-{shard}",
                        HTTP_PORT=str(free_port()),
                        SHARD_COUNT="2",
                        SHARD_IDS=str(shard),
                        **env,
                    )
                )
                for shard in (0, 1)
            ]
            await wait_for_row(url, BOTH_BLOCKED, "both processes waiting on the meta row", 40)
    finally:
        await conn.close()  # the transaction ends: both go on at once
    return list(await asyncio.gather(*started))


async def wait_for_log(fake: FakeDiscord, bot: BotProcess, *texts: str) -> None:
    await fake.wait_until(
        lambda: any(text in bot.log_text() for text in texts), 30, what=f"{texts} in the log"
    )


async def test_two_processes_send_one_low_credit_alert(
    postgres_url: str, discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """Both processes read a balance under LOW_CREDIT_THRESHOLD at start and reach the alert
    mark together: one alert reaches the mod-log channel."""
    modlog = discord_fake.add_channel("mod-log")
    kie_sim.set_credits(2)
    await store_meta(postgres_url, ALERT_KEY, "")  # armed, as after a recovery
    bots = await start_together(
        postgres_url,
        ALERT_KEY,
        bot_factory,
        LOW_CREDIT_THRESHOLD="100",
        DM_MODLOG_CHANNEL_ID=str(modlog.id),
    )
    for bot in bots:
        await wait_for_log(discord_fake, bot, "KIE credit balance is low")

    assert len(discord_fake.channel_messages(modlog.id)) == 1


async def test_two_processes_starting_together_sync_commands_once(
    postgres_url: str, discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """A new deploy (the stored digest is the previous tree's) started as two processes at
    once: one PUT of the command tree; the other process says another one syncs."""
    await store_meta(postgres_url, SYNC_KEY, PREVIOUS_DEPLOY)
    bots = await start_together(postgres_url, SYNC_KEY, bot_factory)
    for bot in bots:
        await wait_for_log(discord_fake, bot, "synced ", "not syncing")

    assert len(discord_fake.find_calls("PUT", COMMANDS_PUT)) == 1


async def test_processes_sharing_an_identify_bucket_identify_5_s_apart(
    postgres_url: str, discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """max_concurrency 1 (one bucket) and shards 0 and 1 in two processes released together:
    the second IDENTIFY follows the first by 5 s or more (the fake also fails the test on a
    sooner one)."""
    discord_fake.identify_limits.max_concurrency = 1
    await store_meta(postgres_url, SYNC_KEY, PREVIOUS_DEPLOY)
    await start_together(postgres_url, SYNC_KEY, bot_factory)
    await discord_fake.wait_until(lambda: len(discord_fake.session_shards()) == 2, 30)

    first_identify: dict[int, float] = {}
    for frame in discord_fake.gateway_frames:
        if frame.direction == "recv" and frame.op == 2:
            first_identify.setdefault(frame.d["shard"][0], frame.time)
    assert abs(first_identify[1] - first_identify[0]) >= 5.0


async def test_a_process_stopped_while_waiting_its_identify_turn_exits(
    postgres_url: str, discord_fake: FakeDiscord, bot_env: dict[str, str], tmp_path: Path
) -> None:
    """Shard 1's process waits for its bucket's IDENTIFY slot, held by another process, and
    is stopped then (as in a rolling restart): it exits with 0 at once (discord.py alone
    retries a shard's connection for ever after close())."""
    discord_fake.identify_limits.max_concurrency = 1
    await store_meta(postgres_url, SYNC_KEY, PREVIOUS_DEPLOY)
    conn = await asyncpg.connect(postgres_url, timeout=10)
    try:
        # Another process's IDENTIFY slot of bucket 0, dated a minute ahead so that it is
        # still taken whenever this process asks (a slot taken now would free in 5.5 s).
        await conn.execute(
            "INSERT INTO rate_slots (name, at)"
            " VALUES ('identify:0', extract(epoch from clock_timestamp()) + 60)"
        )
    finally:
        await conn.close()
    env = {**bot_env, "DATABASE_URL": postgres_url, "SHARD_COUNT": "2", "SHARD_IDS": "1"}
    bot = BotProcess(discord_fake, env, tmp_path / "bot-waiting.log")
    await bot.launch()
    try:
        await wait_for_log(discord_fake, bot, "shard 1 waits for its bucket's IDENTIFY turn")
        code = await bot.stop()  # fails the test unless it exits within 10 s
    finally:
        await bot.teardown()  # no traceback in its log

    assert (code, discord_fake.identifies) == (0, [])
