"""Gateway sharding in the fake, driven by a real discord.py AutoShardedClient: GET
/gateway/bot's recommendation, each shard's own servers and interactions, 4010/4011 refusals,
and the IDENTIFY limits (session starts, one IDENTIFY per 5 s per max_concurrency bucket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import discord
import discord.gateway
import discord.http
import pytest
import pytest_asyncio
import yarl
from discord.ext import commands

from fakediscord import FakeDiscord
from fakediscord.gateway import IdentifyLimits, shard_of


def sharded_bot(**options: object) -> commands.AutoShardedBot:
    bot = commands.AutoShardedBot(
        command_prefix="!", intents=discord.Intents(guilds=True), **options
    )
    bot.seen: list[tuple[int | None, int | None]] = []  # type: ignore[attr-defined]

    @bot.tree.command(name="where", description="Which shard got this")
    async def where(interaction: discord.Interaction) -> None:
        bot.seen.append((interaction.guild_id, interaction.guild and interaction.guild.shard_id))  # type: ignore[attr-defined]
        await interaction.response.send_message("here", ephemeral=True)

    async def setup_hook() -> None:
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


@pytest_asyncio.fixture
async def launch(
    discord_fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[commands.AutoShardedBot], asyncio.Task[None]]]:
    monkeypatch.setattr(discord.http.Route, "BASE", discord_fake.api_url)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(discord_fake.gateway_url)
    )
    running: list[tuple[commands.AutoShardedBot, asyncio.Task[None]]] = []

    def start(bot: commands.AutoShardedBot) -> asyncio.Task[None]:
        task = asyncio.create_task(bot.start(discord_fake.token))
        running.append((bot, task))
        return task

    yield start
    for bot, task in running:
        await bot.close()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)


async def test_auto_follows_the_recommendation_and_each_shard_gets_its_servers(
    discord_fake: FakeDiscord, launch: Callable[[commands.AutoShardedBot], asyncio.Task[None]]
) -> None:
    discord_fake.shard_count = 2
    discord_fake.identify_limits.max_concurrency = 2  # both buckets identify at once
    other = discord_fake.add_guild("second", shard=(1 - shard_of(discord_fake.guild_id, 2), 2))
    discord_fake.add_guilds(10)
    bot = sharded_bot()
    launch(bot)
    await discord_fake.wait_until(lambda: len(discord_fake.session_shards()) == 2, 20)

    assert sorted(tuple(i["shard"]) for i in discord_fake.identifies) == [(0, 2), (1, 2)]
    assert discord_fake.identify_limits.remaining == discord_fake.identify_limits.total - 2
    creates: dict[int, list[int]] = {0: [], 1: []}
    readies = [f for f in discord_fake.gateway_frames if f.t == "READY"]
    assert sorted(f.d["shard"][0] for f in readies) == [0, 1]
    for frame in discord_fake.gateway_frames:
        if frame.t == "GUILD_CREATE":
            gid = int(frame.d["id"])
            creates[shard_of(gid, 2)].append(gid)
    assert sorted(creates[0] + creates[1]) == sorted(discord_fake.guild_ids())
    await bot.wait_until_ready()
    assert {g.id: g.shard_id for g in bot.guilds} == {
        g: shard_of(g, 2) for g in discord_fake.guild_ids()
    }

    main = await discord_fake.slash("where")
    there = await discord_fake.slash("where", channel=other)
    for inter in (main, there):
        await discord_fake.wait_for_conversation(inter, lambda c: c.original)
    assert bot.seen == [  # type: ignore[attr-defined]
        (discord_fake.guild_id, shard_of(discord_fake.guild_id, 2)),
        (other.guild_id, shard_of(other.guild_id or 0, 2)),
    ]
    assert discord_fake.event_shard({"user": {"id": "1"}}) == 0  # DMs: shard 0, as Discord


async def test_interactions_wait_for_their_shard(
    discord_fake: FakeDiscord, launch: Callable[[commands.AutoShardedBot], asyncio.Task[None]]
) -> None:
    """A process running only shard 1 never sees shard 0's server: the fake holds it back."""
    mine = 1
    away = discord_fake.add_guild("on shard 0", shard=(0, 2))
    here = discord_fake.add_guild("on shard 1", shard=(mine, 2))
    launch(sharded_bot(shard_count=2, shard_ids=[mine]))
    await discord_fake.wait_until(lambda: discord_fake.shard_connected(mine), 20)

    assert discord_fake.session_shards() == [(mine, 2)]
    await discord_fake.slash("where", channel=away)
    assert discord_fake.pending_events(0) == ["INTERACTION_CREATE"]
    answered = await discord_fake.slash("where", channel=here)
    await discord_fake.wait_for_conversation(answered, lambda c: c.original)
    assert discord_fake.pending_events(mine) == []


async def test_unsharded_connection_past_2500_servers_is_closed_4011(
    discord_fake: FakeDiscord, launch: Callable[[commands.AutoShardedBot], asyncio.Task[None]]
) -> None:
    discord_fake.add_guilds(2500)  # and the main server: 2,501
    task = launch(sharded_bot(shard_count=1))
    with pytest.raises(discord.ConnectionClosed) as refused:
        await asyncio.wait_for(task, 20)
    assert refused.value.code == 4011
    assert not discord_fake.connected


async def test_too_few_shards_for_the_servers_are_closed_4011(
    discord_fake: FakeDiscord, launch: Callable[[commands.AutoShardedBot], asyncio.Task[None]]
) -> None:
    """Two shards for 5,002 servers: one of them would hold over 2,500, and is refused."""
    discord_fake.add_guilds(5001)
    discord_fake.identify_limits.max_concurrency = 2
    task = launch(sharded_bot(shard_count=2))
    with pytest.raises(discord.ConnectionClosed) as refused:
        await asyncio.wait_for(task, 20)
    assert refused.value.code == 4011


async def test_a_shard_id_past_its_count_is_closed_4010(
    discord_fake: FakeDiscord, launch: Callable[[commands.AutoShardedBot], asyncio.Task[None]]
) -> None:
    task = launch(sharded_bot(shard_count=2, shard_ids=[2]))
    with pytest.raises(discord.ConnectionClosed) as refused:
        await asyncio.wait_for(task, 20)
    assert refused.value.code == 4010


async def test_discordpy_waits_five_seconds_between_identifies_of_one_bucket(
    discord_fake: FakeDiscord, launch: Callable[[commands.AutoShardedBot], asyncio.Task[None]]
) -> None:
    """max_concurrency 1: both shards share bucket 0; the fake records any IDENTIFY sooner
    than 5 s after the last (the discord_fake fixture fails the test on it)."""
    launch(sharded_bot(shard_count=2))
    await discord_fake.wait_until(lambda: len(discord_fake.session_shards()) == 2, 20)
    sent = [f.time for f in discord_fake.gateway_frames if f.direction == "recv" and f.op == 2]
    assert sent[1] - sent[0] >= 5.0
    assert discord_fake.identify_limits.violations == []


def test_identify_limits_refuse_a_second_identify_of_a_bucket_within_5_seconds() -> None:
    limits = IdentifyLimits(max_concurrency=2)
    assert limits.take(0) and limits.take(1)  # buckets 0 and 1
    assert not limits.take(2)  # bucket 0 again at once
    assert limits.remaining == limits.total - 3
    assert "bucket 0" in limits.violations[0]
