"""Operator commands: `python -m bot check` and `python -m bot sync`, and sync-once on start."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest_asyncio
from e2e_helpers import COMMANDS_PUT, BotProcess, run_cli
from fakediscord import FakeDiscord

from bot.__main__ import INVITE_PERMISSIONS
from bot.kie_sim import KieSimulator, SimConfig

BotFactory = Callable[..., Awaitable[BotProcess]]


@pytest_asyncio.fixture
async def keyed_sim() -> AsyncIterator[KieSimulator]:
    """A KIE simulator that accepts only the API key "right"."""
    sim = KieSimulator(SimConfig(api_key="right", delay=0.1))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_check_passes_and_prints_the_invite_url(
    discord_fake: FakeDiscord, bot_env: dict[str, str]
) -> None:
    """With good settings `check` exits 0 and prints the invite URL with the needed permissions."""
    run = await run_cli(bot_env, "check")
    assert run.code == 0, run.stderr
    assert "Everything looks right." in run.stdout
    assert (
        f"client_id={discord_fake.app_id}&scope=bot+applications.commands"
        f"&permissions={INVITE_PERMISSIONS}" in run.stdout
    )
    assert discord_fake.find_calls("GET", r"^/users/@me$")
    assert bot_env["DISCORD_TOKEN"] not in run.stdout + run.stderr


async def test_check_prints_the_shard_recommendation_and_refuses_an_id_past_it(
    discord_fake: FakeDiscord, bot_env: dict[str, str]
) -> None:
    """`check` reads GET /gateway/bot: the recommended count, this process's share, the
    session starts left; SHARD_IDS past the recommendation (SHARD_COUNT=auto) fails it."""
    discord_fake.shard_count = 3
    run = await run_cli({**bot_env, "SHARD_IDS": "1,2"}, "check")
    assert run.code == 0, run.stderr
    assert (
        "Discord: recommends 3 gateway shard(s); SHARD_COUNT=auto runs 2 of 3 here; "
        "1000 session start(s) left today (max_concurrency 1)."
    ) in run.stdout
    past = await run_cli({**bot_env, "SHARD_IDS": "3"}, "check")
    assert past.code == 1
    assert "SHARD_IDS: shard 3 is past Discord's recommendation of 3." in past.stderr


async def test_check_reports_a_bad_kie_key(
    keyed_sim: KieSimulator, discord_fake: FakeDiscord, bot_env: dict[str, str]
) -> None:
    """A KIE key the service refuses: exit 1 and a plain sentence naming KIE_API_KEY."""
    env = {**bot_env, "KIE_API_BASE_URL": keyed_sim.base_url, "KIE_API_KEY": "wrong"}
    run = await run_cli(env, "check")
    assert run.code == 1
    assert "refused the API key" in run.stderr
    assert "KIE_API_KEY" in run.stderr
    assert "Discord: the token works" in run.stdout  # the other checks still ran
    assert "Traceback" not in run.stderr
    ok = await run_cli({**env, "KIE_API_KEY": "right"}, "check")
    assert ok.code == 0, ok.stderr


async def test_check_reports_a_bad_discord_token(
    discord_fake: FakeDiscord, bot_env: dict[str, str]
) -> None:
    """A Discord token the API refuses (401): exit 1 and a plain sentence naming DISCORD_TOKEN."""
    run = await run_cli({**bot_env, "DISCORD_TOKEN": "not-the-token"}, "check")
    assert run.code == 1
    assert "bot token was refused" in run.stderr
    assert "DISCORD_TOKEN" in run.stderr
    assert "Invite URL" not in run.stdout
    assert "not-the-token" not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr


async def test_check_lists_missing_settings(bot_env: dict[str, str]) -> None:
    """Missing required settings: exit 2 with every missing one named, before any network call."""
    env = {**bot_env, "DISCORD_TOKEN": "", "KIE_API_KEY": ""}
    run = await run_cli(env, "check")
    assert run.code == 2
    assert "DISCORD_TOKEN" in run.stderr and "KIE_API_KEY" in run.stderr


async def test_sync_to_one_guild(discord_fake: FakeDiscord, bot_env: dict[str, str]) -> None:
    """`sync --guild ID` PUTs the commands to that guild and says so."""
    run = await run_cli(bot_env, "sync", "--guild", str(discord_fake.guild_id))
    assert run.code == 0, run.stderr + run.stdout
    assert f"to guild {discord_fake.guild_id}" in run.stdout
    puts = discord_fake.find_calls("PUT", COMMANDS_PUT)
    assert len(puts) == 1
    assert f"/guilds/{discord_fake.guild_id}/commands" in puts[0].path
    assert {"imagine", "edit"} <= {c["name"] for c in puts[0].json}


async def test_sync_happens_once_not_on_every_start(
    discord_fake: FakeDiscord, bot_factory: BotFactory
) -> None:
    """DEV_GUILD_ID syncs to that guild at the first start; restarts on the same ledger don't."""
    bot = await bot_factory(DEV_GUILD_ID=str(discord_fake.guild_id))
    guild_put = rf"^/applications/\d+/guilds/{discord_fake.guild_id}/commands$"
    assert len(discord_fake.find_calls("PUT", guild_put)) == 1
    for _ in range(2):
        await bot.stop()
        await bot.start(wait_for_sync=False)
    assert len(discord_fake.find_calls("PUT", COMMANDS_PUT)) == 1
    assert "command set unchanged since the last sync" in bot.log_text()


async def test_a_newer_ledger_stops_the_bot_with_a_clear_message(
    tmp_path: Path, bot_env: dict[str, str]
) -> None:
    """A ledger from a newer bot version: exit 1 with "upgrade the bot", no traceback."""
    db = tmp_path / "newer.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    run = await run_cli({**bot_env, "DATABASE_URL": f"sqlite:///{db}"})
    assert run.code == 1
    assert "upgrade the bot" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
