"""Private results end to end (real bot, fake Discord, KIE simulator): the `private` option and
the server's mode, ephemeral replies from the "thinking…" to the image, buttons on them, the DM
past the interaction token's 15 minutes (or a refund where DMs are closed), the mod-log."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from e2e_checks import ledger_rows, settled
from e2e_helpers import COMMANDS_PUT, BotClock, BotProcess
from fakediscord import Conversation, FakeDiscord, FakeInteraction, MessageView
from PIL import Image

BotFactory = Callable[..., Awaitable[BotProcess]]
EPHEMERAL = 1 << 6
NEVER = 3600.0  # the simulator's delay: a task finishes when the test completes it
# The bot's wall clock (task age) moves 16 minutes: the task must not time out meanwhile.
LONG_TASKS = {"TASK_TIMEOUT_SECONDS": "7200"}


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "navy").save(buf, format="PNG")
    return buf.getvalue()


def task_columns(env: dict[str, str], *names: str) -> list[tuple[Any, ...]]:
    """Columns of every task, oldest first, read from the bot's ledger."""
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(f"SELECT {', '.join(names)} FROM tasks ORDER BY created_at").fetchall()


def credits_used(env: dict[str, str]) -> float:
    """Credits charged today, to anyone, as the ledger's usage has them."""
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return float(db.execute("SELECT COALESCE(SUM(credits), 0) FROM usage").fetchone()[0])


def result_copies(env: dict[str, str]) -> list[str]:
    """Task ids of the bot's own copies of results."""
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT task_id FROM result_copies")]


def channel_calls(fake: FakeDiscord) -> list[str]:
    """Every message the bot created or edited through the channel endpoints."""
    return [
        f"{c.method} {c.path}"
        for c in fake.calls
        if c.method in ("POST", "PATCH") and c.path.startswith("/channels/")
    ]


async def admin(fake: FakeDiscord, sub: str, options: dict[str, Any]) -> Conversation:
    inter = await fake.slash("kontext-admin", options, subcommand=sub, user=fake.moderator)
    return await fake.wait_for_conversation(inter, lambda c: c.text, timeout=10)


async def private_image(fake: FakeDiscord, inter: FakeInteraction) -> MessageView:
    """The interaction's reply once it carries the image."""
    conv = await fake.wait_for_conversation(
        inter, lambda c: c.original is not None and c.original.attachments, timeout=20
    )
    assert conv.original is not None
    return conv.original


async def generating(fake: FakeDiscord, env: dict[str, str]) -> str:
    """The KIE task id of the (only) task, once it is generating."""
    rows = await fake.wait_until(
        lambda: [r for r in ledger_rows(env) if r.state == "generating"], 20, what="generating"
    )
    assert rows[0].kie_task_id is not None
    return rows[0].kie_task_id


async def test_private_imagine_is_ephemeral_from_thinking_to_image(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """`private:true`: an ephemeral defer, every status edit and the result in that one
    ephemeral message (no mention), nothing in the channel, and the bot keeps a copy."""
    kie_sim.config.delay = 2.0
    inter = await discord_fake.slash("imagine", {"prompt": "a quiet harbour", "private": True})
    reply = await private_image(discord_fake, inter)
    (row,) = await settled(discord_fake, bot_process.env)
    conv = discord_fake.conversation(inter)
    first_callback = conv.responses[0]
    statuses = [h for h in reply.history if h.get("embeds")]
    assert (
        first_callback.type,
        first_callback.data.get("flags", 0) & EPHEMERAL,
        reply.ephemeral,
        reply.content,
        bool(statuses) and all(h["flags"] & EPHEMERAL for h in statuses),
        row.state,
        row.result_message_id == reply.id,
        discord_fake.channel_messages(),
        channel_calls(discord_fake),
        task_columns(bot_process.env, "private"),
        result_copies(bot_process.env),
    ) == (5, EPHEMERAL, True, "", True, "done", True, [], [], [(1,)], [row.id])


async def test_imagine_and_edit_offer_the_private_option(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    put = discord_fake.find_calls("PUT", COMMANDS_PUT)[-1]
    options = {
        c["name"]: next((o for o in c.get("options", []) if o["name"] == "private"), None)
        for c in put.json
        if c["name"] in ("imagine", "edit")
    }
    assert {name: (o or {}).get("type") for name, o in options.items()} == {
        "imagine": 5,
        "edit": 5,
    }
    assert {(o or {}).get("description") for o in options.values()} == {"Only you see the result"}


async def test_a_private_failure_is_told_in_the_ephemeral_reply(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    inter = await discord_fake.slash("imagine", {"prompt": "a flop [sim:fail]", "private": True})
    conv = await discord_fake.wait_for_conversation(
        inter, lambda c: "could not generate" in c.text, timeout=20
    )
    (row,) = await settled(discord_fake, bot_process.env)
    assert (conv.ephemeral, row.state, discord_fake.channel_messages()) == (True, "failed", [])


async def test_a_private_set_arrives_in_one_ephemeral_message(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    inter = await discord_fake.slash("imagine", {"prompt": "twins", "count": 2, "private": True})
    conv = await discord_fake.wait_for_conversation(
        inter, lambda c: c.original is not None and len(c.original.attachments) == 2, timeout=30
    )
    await settled(discord_fake, bot_process.env, count=2)
    assert (
        conv.ephemeral,
        discord_fake.channel_messages(),
        task_columns(bot_process.env, "private"),
        sorted(result_copies(bot_process.env))
        == sorted(r.id for r in ledger_rows(bot_process.env)),
    ) == (True, [], [(1,), (1,)], True)


async def test_private_result_goes_by_dm_when_discord_refuses_the_token_first(
    discord_fake: FakeDiscord, kie_sim: Any, bot_env: dict[str, str], bot_factory: BotFactory
) -> None:
    """Discord's clock is past 15 minutes while the bot's is not (the webhook answers 50027):
    the private result still never goes to the channel; it comes by DM."""
    kie_sim.config.delay = NEVER
    await bot_factory(**LONG_TASKS)
    await discord_fake.slash("imagine", {"prompt": "a skewed clock", "private": True})
    kie_task = await generating(discord_fake, bot_env)
    discord_fake.clock.advance(16 * 60)
    kie_sim.complete(kie_task)
    (row,) = await settled(discord_fake, bot_env)
    dm = discord_fake.dm_channel(discord_fake.member)
    assert (
        row.state,
        len(discord_fake.channel_messages(dm.id)),
        discord_fake.channel_messages(),
        [c for c in channel_calls(discord_fake) if str(dm.id) not in c],
    ) == ("done", 1, [], [])


async def test_a_private_task_stays_private_across_a_restart(
    discord_fake: FakeDiscord, kie_sim: Any, bot_env: dict[str, str], bot_factory: BotFactory
) -> None:
    """Killed while KIE works; the image finished meanwhile arrives after the restart in the
    same ephemeral reply, once, and nothing reaches the channel."""
    kie_sim.config.delay = NEVER
    bot = await bot_factory()
    inter = await discord_fake.slash("imagine", {"prompt": "a crash course", "private": True})
    kie_task = await generating(discord_fake, bot_env)
    await bot.kill()
    kie_sim.complete(kie_task)
    await bot.start()
    reply = await private_image(discord_fake, inter)
    (row,) = await settled(discord_fake, bot_env)  # delivered exactly once
    assert (reply.ephemeral, row.result_message_id, discord_fake.channel_messages()) == (
        True,
        reply.id,
        [],
    )


async def test_a_private_set_whose_reply_is_gone_comes_by_dm_never_the_channel(
    discord_fake: FakeDiscord, kie_sim: Any, bot_env: dict[str, str], bot_factory: BotFactory
) -> None:
    """The ephemeral reply of a private set is gone: each image comes by DM; the channel (where
    a public result would be posted anew) sees nothing."""
    kie_sim.config.delay = NEVER
    await bot_factory()
    inter = await discord_fake.slash("imagine", {"prompt": "two", "count": 2, "private": True})
    await discord_fake.wait_until(lambda: len(kie_sim.tasks) == 2, 20, what="2 KIE tasks")
    original = discord_fake.conversation(inter).original
    assert original is not None
    discord_fake.messages[original.id].deleted = True
    for kie_task in list(kie_sim.tasks):
        kie_sim.complete(kie_task)
    rows = await settled(discord_fake, bot_env, count=2)
    dm = discord_fake.dm_channel(discord_fake.member)
    assert (
        [r.state for r in rows],
        len(discord_fake.channel_messages(dm.id)),
        discord_fake.channel_messages(),
    ) == (["done", "done"], 2, [])


async def test_private_status_says_a_late_image_comes_by_dm(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """While it runs, a private task's status tells the member where a late image will go."""
    kie_sim.config.delay = NEVER
    inter = await discord_fake.slash("imagine", {"prompt": "a slow one", "private": True})
    conv = discord_fake.conversation(inter)
    await discord_fake.wait_until(
        lambda: "Generating" in conv.text, 20, what="the private status while generating"
    )
    assert "by direct message" in conv.text and conv.ephemeral


async def test_forced_mode_makes_a_plain_imagine_private(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    await admin(discord_fake, "private", {"mode": "forced"})
    inter = await discord_fake.slash("imagine", {"prompt": "a forced secret"})
    reply = await private_image(discord_fake, inter)
    assert (reply.ephemeral, discord_fake.channel_messages()) == (True, [])


async def test_forced_mode_makes_edit_with_flux_kontext_private(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """The message command has no option: it follows the server's mode (forced: private)."""
    await admin(discord_fake, "private", {"mode": "forced"})
    target = discord_fake.inject_message(
        "look", attachments=[("cat.png", png_bytes(), "image/png")]
    )
    opened = await discord_fake.message_command("Edit with Flux Kontext", target)
    await discord_fake.wait_until(lambda: opened.modal is not None, 10, what="the modal")
    submitted = await discord_fake.submit_modal(opened, {"Prompt": "give the cat a hat"})
    reply = await private_image(discord_fake, submitted)
    assert (reply.ephemeral, [m.id for m in discord_fake.channel_messages()]) == (
        True,
        [target.id],
    )


async def test_off_mode_refuses_private_privately_and_spends_nothing(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    await admin(discord_fake, "private", {"mode": "off"})
    inter = await discord_fake.slash("imagine", {"prompt": "a secret", "private": True})
    conv = await discord_fake.wait_for_conversation(inter, lambda c: c.text, timeout=10)
    assert (
        conv.ephemeral,
        "Private results are turned off in this server" in conv.text,
        ledger_rows(bot_process.env),
        credits_used(bot_process.env),
        kie_sim.count("generate"),
    ) == (True, True, [], 0.0, 0)


async def test_reroll_of_a_private_result_by_its_owner_stays_private(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """Re-roll on the ephemeral result works for its owner; the new task is private too."""
    first = await discord_fake.slash("imagine", {"prompt": "a hidden garden", "private": True})
    reply = await private_image(discord_fake, first)
    await settled(discord_fake, bot_process.env)

    click = await discord_fake.click(reply, label="Re-roll")
    rerolled = await private_image(discord_fake, click)
    await settled(discord_fake, bot_process.env, count=2)
    assert (
        rerolled.ephemeral,
        discord_fake.channel_messages(),
        task_columns(bot_process.env, "private", "parent_task_id IS NOT NULL"),
        kie_sim.count("generate"),
    ) == (True, [], [(1, 0), (1, 1)], 2)


async def test_private_result_past_the_token_comes_by_dm(
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_env: dict[str, str],
    bot_clock: BotClock,
    bot_factory: BotFactory,
) -> None:
    """Finished 16 minutes after the command (no token left for the ephemeral reply), the
    image comes in the member's DM with its details and buttons; the ledger says where."""
    kie_sim.config.delay = NEVER
    await bot_factory(**bot_clock.env, **LONG_TASKS)
    inter = await discord_fake.slash("imagine", {"prompt": "a late letter", "private": True})
    kie_task = await generating(discord_fake, bot_env)
    bot_clock.advance(16 * 60)
    kie_sim.complete(kie_task)
    (row,) = await settled(discord_fake, bot_env)

    dm = discord_fake.dm_channel(discord_fake.member)
    (message,) = discord_fake.channel_messages(dm.id)
    (where,) = task_columns(bot_env, "result_channel_id", "result_message_id")
    assert (
        row.state,
        where,
        len(message.attachments),
        "Re-roll" in [b.get("label") for b in message.buttons],
        "a late letter" in message.embeds[0]["description"],
        discord_fake.channel_messages(),
        discord_fake.conversation(inter).original.attachments,
    ) == ("done", (dm.id, message.id), 1, True, True, [], [])


async def test_private_task_outside_servers_is_not_given_up_with_its_token(
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_env: dict[str, str],
    bot_clock: BotClock,
    bot_factory: BotFactory,
) -> None:
    """In the bot's DM a task is given up at 14 minutes (the token is the only way back), but
    a private one is not: its image comes as a new DM message once ready."""
    kie_sim.config.delay = NEVER
    bot = await bot_factory(**bot_clock.env, **LONG_TASKS, ALLOW_DMS="true", DM_DAILY_CREDITS="5")
    dm = discord_fake.dm_channel(discord_fake.member)
    await discord_fake.slash("imagine", {"prompt": "a night owl", "private": True}, channel=dm)
    kie_task = await generating(discord_fake, bot_env)
    bot_clock.advance(16 * 60)  # past the deadline of a task outside servers, and the token
    await discord_fake.wait_until(
        lambda: "TokenExpiring -> leave_to_dm" in bot.log_text(), 10, what="the token watch"
    )
    kie_sim.complete(kie_task)
    (row,) = await settled(discord_fake, bot_env)
    (message,) = discord_fake.channel_messages(dm.id)
    assert (row.state, len(message.attachments)) == ("done", 1)


async def test_reroll_in_the_dm_counts_in_the_server_and_stays_private(
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_env: dict[str, str],
    bot_clock: BotClock,
    bot_factory: BotFactory,
) -> None:
    """Re-roll on the result the bot sent by DM is the server's request (its rules and
    credits, not the operator's refusal of DMs): private, answered in the DM ephemerally."""
    kie_sim.config.delay = NEVER
    await bot_factory(**bot_clock.env, **LONG_TASKS)
    await discord_fake.slash("imagine", {"prompt": "a late letter", "private": True})
    kie_task = await generating(discord_fake, bot_env)
    bot_clock.advance(16 * 60)
    kie_sim.config.delay = 0.3
    kie_sim.complete(kie_task)
    await settled(discord_fake, bot_env)
    dm = discord_fake.dm_channel(discord_fake.member)
    (message,) = discord_fake.channel_messages(dm.id)

    click = await discord_fake.click(message, label="Re-roll")
    rerolled = await private_image(discord_fake, click)
    await settled(discord_fake, bot_env, count=2)
    assert (
        rerolled.ephemeral,
        rerolled.channel_id,
        task_columns(bot_env, "guild_id", "channel_id", "private"),
        discord_fake.channel_messages(),
    ) == (
        True,
        dm.id,
        [(discord_fake.guild_id, discord_fake.channel.id, 1)] * 2,
        [],
    )


async def test_private_result_past_the_token_with_dms_closed_fails_refunded(
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_env: dict[str, str],
    bot_clock: BotClock,
    bot_factory: BotFactory,
) -> None:
    """The member's DMs are closed: the task fails with its own plain message (the mod-log
    shows it) and its credits come back; no image anywhere."""
    discord_fake.member.dms_closed = True
    modlog = discord_fake.add_channel("mod-log")
    kie_sim.config.delay = NEVER
    await bot_factory(**bot_clock.env, **LONG_TASKS)
    await admin(discord_fake, "modlog", {"channel": modlog})
    await discord_fake.slash("imagine", {"prompt": "a lost letter", "private": True})
    kie_task = await generating(discord_fake, bot_env)
    bot_clock.advance(16 * 60)
    kie_sim.complete(kie_task)
    (row,) = await settled(discord_fake, bot_env)
    entries = await discord_fake.wait_until(
        lambda: discord_fake.channel_messages(modlog.id), 10, what="the mod-log entry"
    )

    dm = discord_fake.dm_channel(discord_fake.member)
    refused = discord_fake.find_calls("POST", rf"^/channels/{dm.id}/messages$")
    assert (
        row.state,
        row.error_code,
        "DMs are closed" in (row.error_message or ""),
        task_columns(bot_env, "refunded"),
        [c.status for c in refused][:1],
        discord_fake.channel_messages(dm.id),
        "dm_closed" in entries[0].text and "(refunded)" in entries[0].text,
    ) == ("failed", "dm_closed", True, [(1,)], [403], [], True)


async def test_modlog_delete_output_removes_a_private_result_sent_by_dm(
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_env: dict[str, str],
    bot_clock: BotClock,
    bot_factory: BotFactory,
) -> None:
    """A private result sent by DM is within the bot's reach: the mod-log's Delete output
    deletes that DM message."""
    modlog = discord_fake.add_channel("mod-log")
    kie_sim.config.delay = NEVER
    await bot_factory(**bot_clock.env, **LONG_TASKS)
    await admin(discord_fake, "modlog", {"channel": modlog})
    await discord_fake.slash("imagine", {"prompt": "a late letter", "private": True})
    kie_task = await generating(discord_fake, bot_env)
    bot_clock.advance(16 * 60)
    kie_sim.complete(kie_task)
    await settled(discord_fake, bot_env)
    (entry,) = await discord_fake.wait_until(
        lambda: discord_fake.channel_messages(modlog.id), 10, what="the mod-log entry"
    )
    dm = discord_fake.dm_channel(discord_fake.member)
    (message,) = discord_fake.channel_messages(dm.id)

    await discord_fake.click(entry, label="Delete output", user=discord_fake.moderator)
    await discord_fake.wait_until(
        lambda: "Output deleted" in entry.text, 10, what="the entry noting the deletion"
    )
    assert message.deleted


async def test_modlog_records_a_private_task(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """A private result still gets its mod-log entry (said to be private, with the image);
    its ephemeral message is out of the bot's reach, so the entry offers no Delete output."""
    modlog = discord_fake.add_channel("mod-log")
    await bot_factory()
    await admin(discord_fake, "modlog", {"channel": modlog})
    inter = await discord_fake.slash("imagine", {"prompt": "a private view", "private": True})
    await private_image(discord_fake, inter)
    (entry,) = await discord_fake.wait_until(
        lambda: discord_fake.channel_messages(modlog.id), 10, what="the mod-log entry"
    )
    labels = [b.get("label") for b in entry.buttons]
    assert (
        "a private view" in entry.text,
        "Private" in entry.text,
        bool(entry.embeds[0].get("image")),
        "Delete output" in labels,
    ) == (True, True, True, False)
