"""Where a command comes from: threads and forum posts, and channels where the bot lacks a
permission it needs to post an image (real bot, fake Discord, KIE simulator)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from e2e_checks import ledger_rows, result_posts, settled
from e2e_helpers import BotClock, BotProcess
from fakediscord import (
    ATTACH_FILES,
    EMBED_LINKS,
    FORUM_CHANNEL,
    MEDIA_CHANNEL,
    MEMBER_PERMISSIONS,
    TEXT_CHANNEL,
    Conversation,
    FakeChannel,
    FakeDiscord,
    FakeInteraction,
)

BotFactory = Callable[..., Awaitable[BotProcess]]
PERMISSION_NAMES = {ATTACH_FILES: "Attach Files", EMBED_LINKS: "Embed Links"}


async def allow_only(fake: FakeDiscord, channel: FakeChannel) -> None:
    """A moderator limits the image bot to ``channel`` (/kontext-admin channels add)."""
    inter = await fake.slash(
        "kontext-admin",
        {"channel": channel},
        group="channels",
        subcommand="add",
        user=fake.moderator,
    )
    conv = await fake.wait_for_conversation(inter, lambda c: c.text, timeout=10)
    assert f"<#{channel.id}>" in conv.text, conv.text


async def first_answer(
    fake: FakeDiscord, inter: FakeInteraction, timeout: float = 20
) -> Conversation:
    """Wait for a private answer or a posted image, whichever the bot gives."""
    return await fake.wait_for_conversation(
        inter,
        lambda c: c.ephemeral or (c.original is not None and c.original.attachments),
        timeout=timeout,
    )


async def refusal(fake: FakeDiscord, inter: FakeInteraction) -> Conversation:
    """Wait for the bot's private answer to ``inter``."""
    conv = await fake.wait_for_conversation(inter, lambda c: c.ephemeral_messages, timeout=10)
    assert conv.ephemeral, f"expected a private answer, got {conv}"
    return conv


# ---- threads and forum posts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent_type", "private", "after_start"),
    [
        pytest.param(TEXT_CHANNEL, False, False, id="public-thread"),
        # A private thread the bot was never told about (not in GUILD_CREATE).
        pytest.param(TEXT_CHANNEL, True, True, id="private-thread"),
        pytest.param(FORUM_CHANNEL, False, False, id="forum-post"),
        pytest.param(MEDIA_CHANNEL, False, True, id="media-post"),
    ],
)
async def test_thread_of_an_allowed_channel_gets_its_image_in_the_thread(
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_factory: BotFactory,
    parent_type: int,
    private: bool,
    after_start: bool,
) -> None:
    """A command in a thread (or forum/media post) of an allowed channel is admitted and its
    image is delivered into that thread."""
    fake = discord_fake
    parent = fake.add_channel("art", type=parent_type)
    thread = None if after_start else fake.add_thread(parent, "cats", private=private)
    await bot_factory()
    await allow_only(fake, parent)
    thread = thread or fake.add_thread(parent, "cats", private=private)

    inter = await fake.slash("imagine", {"prompt": "a cat in a thread"}, channel=thread)
    conv = await first_answer(fake, inter)

    assert not conv.ephemeral, f"refused in the thread: {conv.text}"
    assert conv.original is not None and conv.original.channel_id == thread.id


async def test_thread_of_a_channel_not_allowed_is_refused_privately(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """A thread whose parent is not on the allow-list is refused privately and costs nothing."""
    fake = discord_fake
    art = fake.add_channel("art")
    thread = fake.add_thread(fake.channel, "off-topic")
    bot = await bot_factory()
    await allow_only(fake, art)

    inter = await fake.slash("imagine", {"prompt": "a cat"}, channel=thread)
    conv = await refusal(fake, inter)

    assert f"<#{art.id}>" in conv.text, conv.text
    assert ledger_rows(bot.env) == []
    assert kie_sim.count("generate") == 0


async def test_past_the_token_a_new_post_goes_into_the_thread(
    discord_fake: FakeDiscord,
    kie_sim: Any,
    bot_env: dict[str, str],
    bot_clock: BotClock,
    bot_factory: BotFactory,
) -> None:
    """Past the 15-minute token (by the bot's clock) with the reply deleted, the channel
    endpoints post the image into the thread."""
    fake = discord_fake
    parent = fake.add_channel("art")
    thread = fake.add_thread(parent, "cats")
    kie_sim.config.delay = 3600  # generating until the test completes it
    await bot_factory(
        **bot_clock.env,
        TASK_TIMEOUT_SECONDS="7200",  # task age is wall-clock time: 16 min must not time out
        PUBLIC_BASE_URL=f"http://127.0.0.1:{bot_env['HTTP_PORT']}",  # KIE's callback: no wait
    )
    await allow_only(fake, parent)

    inter = await fake.slash("imagine", {"prompt": "a slow cat"}, channel=thread)
    rows = await fake.wait_until(
        lambda: [r for r in ledger_rows(bot_env) if r.state == "generating"],
        15,
        what="the task generating",
    )
    original = fake.conversation(inter).original
    assert original is not None
    fake.messages[original.id].deleted = True
    bot_clock.advance(16 * 60)
    kie_sim.complete(rows[0].kie_task_id)
    (row,) = await settled(fake, bot_env, timeout=30)

    (post,) = result_posts(fake)
    assert (post.method, post.path) == ("POST", f"/channels/{thread.id}/messages")
    assert fake.message(row.result_message_id).channel_id == thread.id


# ---- the bot's permissions where it is asked ----------------------------------------------------


@pytest.mark.parametrize("lacking", [ATTACH_FILES, EMBED_LINKS], ids=["attach", "embed"])
async def test_imagine_where_the_bot_lacks_a_permission_is_refused_privately(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, lacking: int
) -> None:
    """/imagine where the bot may not attach files or embed links: a private answer naming the
    permission; no task, no KIE call."""
    fake = discord_fake
    inter = await fake.slash(
        "imagine", {"prompt": "a cat"}, app_permissions=MEMBER_PERMISSIONS & ~lacking
    )
    conv = await refusal(fake, inter)

    assert PERMISSION_NAMES[lacking] in conv.text, conv.text
    assert ledger_rows(bot_process.env) == []
    assert kie_sim.count("generate") == 0


@pytest.mark.parametrize("label", ["Re-roll", "Edit"])
async def test_result_button_where_the_bot_lacks_a_permission_is_refused_privately(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess, label: str
) -> None:
    """A result's Re-roll or Edit clicked where the bot may not embed links: a private answer
    naming the permission, no modal, no second task, no second KIE call."""
    fake = discord_fake
    first = await fake.slash("imagine", {"prompt": "a teapot"})
    done = await first_answer(fake, first)
    assert done.original is not None and done.original.attachments, done.text

    inter = await fake.click(
        done.original, label=label, app_permissions=MEMBER_PERMISSIONS & ~EMBED_LINKS
    )
    conv = await refusal(fake, inter)

    assert "Embed Links" in conv.text, conv.text
    assert conv.modal is None
    assert len(ledger_rows(bot_process.env)) == 1
    assert kie_sim.count("generate") == 1


async def test_message_command_where_the_bot_lacks_a_permission_is_refused_privately(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """Edit with Flux Kontext where the bot may not attach files is refused before the prompt
    is asked for: a private answer naming the permission; no task, no KIE call."""
    fake = discord_fake
    target = fake.inject_message(
        "look", attachments=[("cat.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")]
    )
    inter = await fake.message_command(
        "Edit with Flux Kontext", target, app_permissions=MEMBER_PERMISSIONS & ~ATTACH_FILES
    )
    conv = await refusal(fake, inter)

    assert "Attach Files" in conv.text, conv.text
    assert conv.modal is None
    assert ledger_rows(bot_process.env) == []
    assert kie_sim.count("generate") == 0
