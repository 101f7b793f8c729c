"""/kontext-admin, /usage and the mod-log end to end (real bot, fake Discord, KIE simulator)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from e2e_helpers import COMMANDS_PUT, BotProcess
from fakediscord import (
    CATEGORY_CHANNEL,
    EMBED_LINKS,
    FORUM_CHANNEL,
    MANAGE_GUILD,
    STAGE_CHANNEL,
    VOICE_CHANNEL,
    Conversation,
    FakeChannel,
    FakeDiscord,
    FakeUser,
)

ADMIN = "kontext-admin"
BotFactory = Callable[..., Awaitable[BotProcess]]


async def admin(
    fake: FakeDiscord,
    sub: str,
    options: dict[str, Any] | None = None,
    *,
    group: str | None = None,
    user: FakeUser | None = None,
) -> Conversation:
    """Run a /kontext-admin subcommand (as the moderator by default); wait for the answer."""
    inter = await fake.slash(
        ADMIN, options, subcommand=sub, group=group, user=user or fake.moderator
    )
    return await fake.wait_for_conversation(inter, lambda c: c.text, timeout=10)


async def ask(
    fake: FakeDiscord, name: str, options: dict[str, Any] | None = None, **kw: Any
) -> Conversation:
    """Run a member's slash command and wait for its first visible answer."""
    inter = await fake.slash(name, options, **kw)
    return await fake.wait_for_conversation(
        inter, lambda c: c.text or (c.original and c.original.attachments), timeout=10
    )


async def image(fake: FakeDiscord, options: dict[str, Any], **kw: Any) -> Conversation:
    """A /imagine that must end with the image posted."""
    inter = await fake.slash("imagine", options, **kw)
    return await fake.wait_for_conversation(
        inter, lambda c: c.original is not None and c.original.attachments, timeout=20
    )


async def refused(fake: FakeDiscord, options: dict[str, Any], **kw: Any) -> str:
    """A /imagine that must be refused ephemerally; returns the refusal."""
    conv = await ask(fake, "imagine", options, **kw)
    assert conv.ephemeral, f"expected an ephemeral refusal, got {conv}"
    return conv.text


async def test_non_moderator_cannot_use_the_admin_group(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """The group needs Manage Server by default and is re-checked at run time for members."""
    put = discord_fake.find_calls("PUT", COMMANDS_PUT)[-1]
    group = next(c for c in put.json if c["name"] == ADMIN)
    assert int(group["default_member_permissions"]) == MANAGE_GUILD
    assert {"block", "unblock", "credits"} <= {o["name"] for o in group["options"]}
    assert len(group["options"]) <= 25
    assert any(c["name"] == "usage" for c in put.json)

    conv = await admin(discord_fake, "spoiler", {"enabled": True}, user=discord_fake.member)
    assert conv.ephemeral and "permission" in conv.text
    conv = await admin(
        discord_fake, "add", {"entry": "fox"}, group="blocked-words", user=discord_fake.member
    )
    assert conv.ephemeral and "permission" in conv.text
    done = await image(discord_fake, {"prompt": "a red fox"})
    assert not done.original.attachments[0].filename.startswith("SPOILER_")


async def test_each_setting_changes_behaviour(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """Channels, Max off, the tolerance cap, blocked words and spoilers each take effect."""
    art: FakeChannel = discord_fake.add_channel("art")
    await bot_factory()
    fake = discord_fake

    conv = await admin(fake, "add", {"channel": art}, group="channels")
    assert f"<#{art.id}>" in conv.text
    text = await refused(fake, {"prompt": "a cat"})
    assert f"<#{art.id}>" in text and "channel" in text
    await admin(fake, "all", group="channels")

    await admin(fake, "models", {"max": False})
    text = await refused(fake, {"prompt": "a cat", "model": "flux-kontext-max"})
    assert "Max" in text and "Pro" in text

    await admin(fake, "max-tolerance", {"value": 3})
    text = await refused(fake, {"prompt": "a cat", "safety_tolerance": 5})
    assert "at most 3" in text

    conv = await admin(fake, "add", {"entry": "re:("}, group="blocked-words")
    assert "doesn't compile" in conv.text
    await admin(fake, "add", {"entry": "dragon"}, group="blocked-words")
    text = await refused(fake, {"prompt": "a huge Dragon"})
    assert "blocked" in text
    assert kie_sim.count("generate") == 0

    show = await admin(fake, "show")
    assert "**Max model:** off" in show.text
    assert "**Highest safety tolerance:** 3" in show.text

    await admin(fake, "spoiler", {"enabled": True})
    done = await image(fake, {"prompt": "a dragonfly"}, channel=art)
    assert done.original.attachments[0].filename.startswith("SPOILER_")
    assert kie_sim.count("generate") == 1


async def test_quota_charged_exhausted_refunded_and_reset_by_a_moderator(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """5-credit images on a 10-credit allowance: a failure is refunded, the third is refused."""
    fake = discord_fake
    modlog = fake.add_channel("mod-log")
    await bot_factory(KIE_CREDITS_PRO="5", KIE_CREDITS_MAX="10")
    await admin(fake, "allowance", {"credits": 10})
    await admin(fake, "modlog", {"channel": modlog})

    await image(fake, {"prompt": "one"})
    usage = await ask(fake, "usage")
    assert usage.ephemeral and "used **5** of your **10**" in usage.text and "<t:" in usage.text

    inter = await fake.slash("imagine", {"prompt": "two [sim:fail]"})
    await fake.wait_for_conversation(inter, lambda c: "could not generate" in c.text, timeout=20)
    # The mod-log entry is written after the refund, and says so.
    await fake.wait_until(
        lambda: any("(refunded)" in m.text for m in fake.channel_messages(modlog.id)), 10
    )
    usage = await ask(fake, "usage")
    assert "used **5** of your **10**" in usage.text, usage.text

    await image(fake, {"prompt": "three"})
    text = await refused(fake, {"prompt": "four"})
    assert "10 daily credits" in text and "resets <t:" in text
    assert kie_sim.count("generate") == 3

    await admin(fake, "reset-quota", {"member": fake.member})
    await image(fake, {"prompt": "five"})


async def test_modlog_entries_and_their_buttons(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """Each task is logged with three buttons that only moderators may use."""
    fake = discord_fake
    modlog = fake.add_channel("mod-log")
    await bot_factory(KIE_CREDITS_PRO="5")
    await admin(fake, "modlog", {"channel": modlog})
    await admin(fake, "allowance", {"credits": 5})

    done = await image(fake, {"prompt": "a lighthouse at dusk"})
    entries = await fake.wait_until(lambda: fake.channel_messages(modlog.id), 10)
    entry = entries[0]
    assert [b["label"] for b in entry.buttons] == ["Delete output", "Block user", "Reset quota"]
    assert str(fake.member.id) in entry.text and "lighthouse" in entry.text
    assert "Delivered" in entry.text and "5 credits" in entry.text
    assert entry.embeds[0]["image"]["url"]
    assert entry.buttons[0]["custom_id"].startswith("kontext:modlog:delete:")

    for label in ("Delete output", "Block user", "Reset quota"):
        click = await fake.click(entry, label=label, user=fake.member)
        conv = await fake.wait_for_conversation(click, lambda c: c.text, timeout=10)
        assert conv.ephemeral and "moderators" in conv.text
    assert not done.original.deleted

    assert "5 daily credits" in await refused(fake, {"prompt": "again"})
    click = await fake.click(entry, label="Reset quota", user=fake.moderator)
    await fake.wait_for_conversation(click, lambda c: "reset" in c.text, timeout=10)
    await image(fake, {"prompt": "again"})

    click = await fake.click(entry, label="Delete output", user=fake.moderator)
    await fake.wait_until(lambda: fake.message(done.original.id).deleted, 10)
    await fake.wait_until(lambda: "Output deleted" in fake.message(entry.id).text, 10)
    assert "Delete output" not in [b["label"] for b in fake.message(entry.id).buttons]

    click = await fake.click(entry, label="Block user", user=fake.moderator)
    await fake.wait_for_conversation(click, lambda c: "blocked" in c.text, timeout=10)
    text = await refused(fake, {"prompt": "blocked?"})
    assert "blocked you" in text


async def test_content_policy_rejections_are_logged_and_cool_down_a_member(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """Content-filter rejections reach the mod-log; the third pauses the member, with a time."""
    fake = discord_fake
    modlog = fake.add_channel("mod-log")
    await bot_factory()
    await admin(fake, "modlog", {"channel": modlog})
    for i in range(3):
        inter = await fake.slash("imagine", {"prompt": f"bad {i} [sim:policy]"})
        await fake.wait_for_conversation(inter, lambda c: "content filter" in c.text, timeout=20)
    await fake.wait_until(lambda: len(fake.channel_messages(modlog.id)) >= 3, 10)
    assert all("content_policy" in m.text for m in fake.channel_messages(modlog.id))
    text = await refused(fake, {"prompt": "a kitten"})
    assert "content filter" in text and "try again <t:" in text
    assert kie_sim.count("generate") == 3


async def test_block_and_unblock(
    discord_fake: FakeDiscord, kie_sim: Any, bot_process: BotProcess
) -> None:
    """A blocked member is told so and gets no task; unblocking lets them back in."""
    fake = discord_fake
    conv = await admin(fake, "block", {"member": fake.member})
    assert f"<@{fake.member.id}>" in conv.text
    text = await refused(fake, {"prompt": "a cat"})
    assert "blocked you" in text
    usage = await ask(fake, "usage")
    assert "blocked" in usage.text
    assert kie_sim.count("generate") == 0
    await admin(fake, "unblock", {"member": fake.member})
    await image(fake, {"prompt": "a cat"})


async def test_low_credit_alert_is_sent_once(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """A 402 and low balance reads raise one alert; members hear "out of credits"; recovery
    re-arms it (the next low read alerts again)."""
    fake = discord_fake
    modlog = fake.add_channel("mod-log")
    await bot_factory(LOW_CREDIT_THRESHOLD="100")
    await admin(fake, "modlog", {"channel": modlog})
    kie_sim.set_credits(2)

    inter = await fake.slash("imagine", {"prompt": "a cat"})
    await fake.wait_for_conversation(inter, lambda c: "out of KIE credits" in c.text, timeout=20)

    def alerts() -> list[Any]:
        return [m for m in fake.channel_messages(modlog.id) if "KIE credits" in m.text]

    async def read_balance() -> str:
        """/kontext-admin credits; its answer follows the read that would raise an alert."""
        conv = await admin(fake, "credits")
        await fake.wait_until(lambda: "KIE balance" in conv.text, 10, what="the balance")
        return conv.text

    await fake.wait_until(alerts, 10)
    text = await refused(fake, {"prompt": "another cat"})
    assert "out of KIE credits" in text
    assert "**2**" in await read_balance()
    await read_balance()  # under the threshold again: no second alert
    assert len(alerts()) == 1

    kie_sim.set_credits(1000)
    await read_balance()  # recovery re-arms the alert
    await image(fake, {"prompt": "a cat, again"})
    kie_sim.set_credits(50)
    assert "**50**" in await read_balance()
    assert len(alerts()) == 2


def synced_channel_types(fake: FakeDiscord, *path: str) -> list[int]:
    """The ``channel_types`` the bot synced for the ``channel`` option of /kontext-admin *path."""
    options = next(c for c in fake.find_calls("PUT", COMMANDS_PUT)[-1].json if c["name"] == ADMIN)
    for name in path:
        options = next(o for o in options["options"] if o["name"] == name)
    channel = next(o for o in options["options"] if o["name"] == "channel")
    return sorted(channel["channel_types"])


async def test_modlog_refuses_channels_without_a_message_list(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """A category, a voice channel or a forum is refused as the mod-log, privately, unsaved."""
    fake = discord_fake
    others = [
        fake.add_channel("Art", type=CATEGORY_CHANNEL),
        fake.add_channel("Lounge", type=VOICE_CHANNEL),
        fake.add_channel("showcase", type=FORUM_CHANNEL),
    ]
    await bot_factory()
    assert synced_channel_types(fake, "modlog") == [0, 5]

    for channel in others:
        conv = await admin(fake, "modlog", {"channel": channel})
        assert conv.ephemeral and "text or announcement channel" in conv.text, conv.text
    show = await admin(fake, "show")
    assert "**Mod-log:** off" in show.text


async def test_modlog_names_the_permission_the_bot_lacks(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """A mod-log where the bot lacks Embed Links is refused, naming it; a good one is saved."""
    fake = discord_fake
    no_embeds = fake.add_channel("mod-log-no-embeds", bot_deny=EMBED_LINKS)
    modlog = fake.add_channel("mod-log")
    await bot_factory()

    conv = await admin(fake, "modlog", {"channel": no_embeds})
    assert conv.ephemeral and "Embed Links" in conv.text, conv.text
    assert "Send Messages" not in conv.text
    show = await admin(fake, "show")
    assert "**Mod-log:** off" in show.text

    conv = await admin(fake, "modlog", {"channel": modlog})
    assert f"<#{modlog.id}>" in conv.text
    show = await admin(fake, "show")
    assert f"**Mod-log:** <#{modlog.id}>" in show.text


async def test_channels_add_takes_channels_where_members_run_commands(
    discord_fake: FakeDiscord, kie_sim: Any, bot_factory: BotFactory
) -> None:
    """A category or stage is refused; a voice channel (its text chat) and a forum are allowed."""
    fake = discord_fake
    category = fake.add_channel("Art", type=CATEGORY_CHANNEL)
    stage = fake.add_channel("Town hall", type=STAGE_CHANNEL)
    voice = fake.add_channel("Lounge", type=VOICE_CHANNEL)
    forum = fake.add_channel("showcase", type=FORUM_CHANNEL)
    await bot_factory()
    assert synced_channel_types(fake, "channels", "add") == [0, 2, 5, 15, 16]

    for channel, kind in ((category, "a category"), (stage, "a stage channel")):
        conv = await admin(fake, "add", {"channel": channel}, group="channels")
        assert conv.ephemeral and f"is {kind}, where members can't" in conv.text, conv.text
    for channel in (voice, forum):
        conv = await admin(fake, "add", {"channel": channel}, group="channels")
        assert f"<#{channel.id}>" in conv.text and "now works only in" in conv.text, conv.text
    show = await admin(fake, "show")
    assert f"**Channels:** <#{voice.id}>, <#{forum.id}>" in show.text

    await image(fake, {"prompt": "a cat in the lounge"}, channel=voice)
