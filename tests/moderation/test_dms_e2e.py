"""Direct messages and private channels: server-only by default; with ALLOW_DMS, the operator's
rules (DM_DAILY_CREDITS, operator blocks, the DM mod-log, the token as the only way back).
Real bot, fake Discord, KIE simulator."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from e2e_checks import ledger_rows, settled
from e2e_helpers import BotClock, BotProcess, run_cli
from fakediscord import Conversation, FakeChannel, FakeDiscord, FakeUser

BotFactory = Callable[..., Awaitable[BotProcess]]
MEMBER_COMMANDS = {
    ("imagine", 1),
    ("edit", 1),
    ("usage", 1),
    ("show", 1),
    ("history", 1),
    ("Edit with Flux Kontext", 3),
    ("Translate text in image", 3),
}
DMS = {"ALLOW_DMS": "true", "DM_DAILY_CREDITS": "5"}  # one Pro image (5 credits) a day


def synced(fake: FakeDiscord) -> dict[tuple[str, int], dict[str, Any]]:
    return {(c["name"], c["type"]): c for c in fake.global_commands}


def dm_credits_used(env: dict[str, str], user: FakeUser) -> float:
    """Today's credits of ``user`` outside servers (the ledger's usage under server id 0)."""
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT COALESCE(SUM(credits), 0) FROM usage WHERE guild_id = 0 AND user_id = ?",
            (user.id,),
        ).fetchone()
    return float(row[0])


async def refunded(fake: FakeDiscord, env: dict[str, str]) -> None:
    """Wait until the member's credits outside servers are back to 0 (refunds follow the
    task's end and its failure message)."""
    await fake.wait_until(
        lambda: dm_credits_used(env, fake.member) == 0, 10, what="the credits given back"
    )


def channel_calls(fake: FakeDiscord, channel: FakeChannel) -> list[Any]:
    return fake.find_calls(".*", rf"^/channels/{channel.id}(/|$)")


async def answer(fake: FakeDiscord, channel: FakeChannel, prompt: str, **kw: Any) -> Conversation:
    """A /imagine from ``channel``; waits for its first visible answer (a refusal or the reply)."""
    inter = await fake.slash("imagine", {"prompt": prompt}, channel=channel, **kw)
    return await fake.wait_for_conversation(inter, lambda c: c.text or c.original, timeout=10)


async def operator_blocks_seen(fake: FakeDiscord, bot: BotProcess, count: int) -> None:
    """Wait until the running bot has read `count` operator blocks into its memory."""
    await fake.wait_until(
        lambda: f"operator blocks in force: {count}" in bot.log_text(),
        10,
        what=f"the bot to read {count} operator block(s)",
    )


async def image(fake: FakeDiscord, channel: FakeChannel, prompt: str) -> Conversation:
    inter = await fake.slash("imagine", {"prompt": prompt}, channel=channel)
    return await fake.wait_for_conversation(
        inter, lambda c: c.original is not None and c.original.attachments, timeout=20
    )


# ---- the default: server-only ---------------------------------------------------------------


async def test_member_commands_are_synced_server_only_by_default(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """/imagine, /edit, /usage, /show, /history and the message command: contexts [0] (guild),
    guild install."""
    commands = synced(discord_fake)
    reach = {
        key: (commands[key]["contexts"], commands[key]["integration_types"])
        for key in MEMBER_COMMANDS
    }
    assert reach == {key: ([0], [0]) for key in MEMBER_COMMANDS}


async def test_a_dm_is_refused_privately_at_no_cost_by_default(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: dict[str, str]
) -> None:
    """The hole: /imagine from the bot's DM made a task nobody moderates. Now: an ephemeral
    refusal, no task, no KIE call."""
    conv = await answer(discord_fake, discord_fake.dm_channel(discord_fake.member), "a fox")
    assert conv.ephemeral and "only in servers" in conv.text, conv
    assert (ledger_rows(bot_env), kie_sim.count("generate")) == ([], 0)


async def test_a_private_channel_is_refused_privately_at_no_cost_by_default(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: dict[str, str]
) -> None:
    """A user-installed /imagine in a group DM (context 2): refused the same way."""
    channel = discord_fake.private_channel(discord_fake.member)
    conv = await answer(discord_fake, channel, "a fox")
    assert conv.ephemeral and "only in servers" in conv.text, conv
    assert (ledger_rows(bot_env), kie_sim.count("generate")) == ([], 0)


async def test_a_user_install_in_a_server_without_the_bot_counts_as_outside_servers(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, bot_env: dict[str, str]
) -> None:
    """Context 0 but authorised only by the member's own install (the bot is not in that
    server): no server's rules apply there, so by default it is refused like a DM."""
    payload = discord_fake.build_slash("imagine", {"prompt": "a fox"})
    payload["authorizing_integration_owners"] = {"1": str(discord_fake.member.id)}
    inter = await discord_fake.inject(payload)
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.text, timeout=10)
    assert conv.ephemeral and "only in servers" in conv.text, conv
    assert ledger_rows(bot_env) == []


# ---- ALLOW_DMS ------------------------------------------------------------------------------


async def test_allow_dms_syncs_the_dm_and_user_install_contexts(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """Member commands: contexts [0, 1, 2], installs [0, 1]; /kontext-admin stays server-only."""
    await bot_factory(**DMS)
    commands = synced(discord_fake)
    reach = {
        key: (commands[key]["contexts"], commands[key]["integration_types"])
        for key in MEMBER_COMMANDS
    }
    reach[("kontext-admin", 1)] = (
        commands[("kontext-admin", 1)]["contexts"],
        commands[("kontext-admin", 1)]["integration_types"],
    )
    expected = {key: ([0, 1, 2], [0, 1]) for key in MEMBER_COMMANDS}
    expected[("kontext-admin", 1)] = ([0], [0])
    assert reach == expected


async def test_without_dm_credits_every_dm_request_is_refused(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory, bot_env: dict[str, str]
) -> None:
    """ALLOW_DMS=true with DM_DAILY_CREDITS at its default 0: the operator enabled no credits."""
    await bot_factory(ALLOW_DMS="true")
    conv = await answer(discord_fake, discord_fake.dm_channel(discord_fake.member), "a fox")
    assert conv.ephemeral and "not enabled any credits" in conv.text, conv
    assert ledger_rows(bot_env) == []


async def test_a_dm_task_is_delivered_through_the_token_and_mod_logged(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory, bot_env: dict[str, str]
) -> None:
    """Within DM_DAILY_CREDITS the image arrives in the DM (no channel endpoint touched there)
    and DM_MODLOG_CHANNEL_ID gets the entry."""
    modlog = discord_fake.add_channel("dm-modlog")
    await bot_factory(**DMS, DM_MODLOG_CHANNEL_ID=str(modlog.id))
    dm = discord_fake.dm_channel(discord_fake.member)
    await image(discord_fake, dm, "a lighthouse")
    (row,) = await settled(discord_fake, bot_env)
    entries = await discord_fake.wait_until(
        lambda: discord_fake.channel_messages(modlog.id), 10, what="the DM mod-log entry"
    )
    assert row.state == "done"
    assert channel_calls(discord_fake, dm) == []
    assert row.id in entries[0].embeds[0]["footer"]["text"]
    assert dm_credits_used(bot_env, discord_fake.member) == 5


async def test_dm_daily_credits_run_out(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory, bot_env: dict[str, str]
) -> None:
    """The next DM request over DM_DAILY_CREDITS is refused privately, before KIE is asked."""
    await bot_factory(**DMS)
    dm = discord_fake.dm_channel(discord_fake.member)
    await image(discord_fake, dm, "the first")
    await settled(discord_fake, bot_env)
    conv = await answer(discord_fake, dm, "the second")
    assert conv.ephemeral and "daily credits outside servers" in conv.text, conv
    assert (len(ledger_rows(bot_env)), kie_sim.count("generate")) == (1, 1)


async def test_an_operator_block_applies_in_dms_and_servers_until_lifted(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory, bot_env: dict[str, str]
) -> None:
    """`python -m bot block` while the bot runs: refused in a DM and in a server, listed by
    `blocks`; `unblock` lets the member in again."""
    bot = await bot_factory(**DMS)
    member = discord_fake.member
    blocked = await run_cli(bot_env, "block", str(member.id), "--reason", "spam")
    assert blocked.code == 0, blocked.stderr
    # Requests are answered from memory, which reads the operator's blocks every second: the
    # block is refused up front once the bot has read it (until then, after the answer).
    await operator_blocks_seen(discord_fake, bot, 1)
    in_dm = await answer(discord_fake, discord_fake.dm_channel(member), "a fox")
    in_server = await answer(discord_fake, discord_fake.channel, "a fox")
    listed = await run_cli(bot_env, "blocks")
    unblocked = await run_cli(bot_env, "unblock", str(member.id))
    assert unblocked.code == 0, unblocked.stderr
    await operator_blocks_seen(discord_fake, bot, 0)
    await image(discord_fake, discord_fake.channel, "welcome back")

    assert in_dm.ephemeral and "operator has blocked you" in in_dm.text, in_dm
    assert in_server.ephemeral and "operator has blocked you" in in_server.text, in_server
    assert f"{member.id}" in listed.stdout and "spam" in listed.stdout, listed
    assert kie_sim.count("generate") == 1


async def test_a_dm_task_gives_up_before_the_token_expires_by_the_bots_clock(
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_env: dict[str, str],
    bot_clock: BotClock,
    bot_factory: BotFactory,
) -> None:
    """At 14 minutes by the bot's own clock an undelivered DM task fails: the reply (through the
    token, still valid) says it could not be delivered in time, the credits come back, and no
    channel endpoint of the DM is ever called."""
    kie_sim.config.delay = 3600  # still generating when the token runs short
    await bot_factory(**bot_clock.env, **DMS, TASK_TIMEOUT_SECONDS="7200")
    dm = discord_fake.dm_channel(discord_fake.member)
    inter = await discord_fake.slash("imagine", {"prompt": "a slow sunrise"}, channel=dm)
    await discord_fake.wait_until(
        lambda: [r for r in ledger_rows(bot_env) if r.state == "generating"], 15, what="generating"
    )
    bot_clock.advance(14 * 60 + 5)
    conv = await discord_fake.wait_for_conversation(
        inter, lambda c: "delivered in time" in c.text, timeout=20
    )
    (row,) = await settled(discord_fake, bot_env)
    assert (row.state, row.error_code) == ("failed", "too_late")
    assert discord_fake.interaction_age(inter) < 15 * 60  # told through the token
    assert conv.original is not None and not conv.original.attachments
    await refunded(discord_fake, bot_env)
    assert channel_calls(discord_fake, dm) == []


async def test_a_dm_result_past_the_token_never_tries_the_channel(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory, bot_env: dict[str, str]
) -> None:
    """Discord's clock past 15 minutes (the webhook answers 50027): the bot does not fall back
    to the channel endpoints it has no access to; the task fails and the credits come back."""
    kie_sim.config.delay = 3600
    await bot_factory(**DMS, TASK_TIMEOUT_SECONDS="7200")
    dm = discord_fake.dm_channel(discord_fake.member)
    await discord_fake.slash("imagine", {"prompt": "late"}, channel=dm)
    rows = await discord_fake.wait_until(
        lambda: [r for r in ledger_rows(bot_env) if r.state == "generating"], 15, what="generating"
    )
    discord_fake.clock.advance(16 * 60)
    kie_sim.complete(rows[0].kie_task_id)
    (row,) = await settled(discord_fake, bot_env)
    assert (row.state, row.error_code) == ("failed", "too_late")
    await refunded(discord_fake, bot_env)
    assert channel_calls(discord_fake, dm) == []
