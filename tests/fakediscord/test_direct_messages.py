"""The fake's DMs and ephemeral messages, as private results use them: Create DM
(POST /users/@me/channels), a member's closed DMs (403 50007 on a send), and clicks on an
ephemeral message (Discord delivers them like any other)."""

from __future__ import annotations

from fakediscord import FakeDiscord
from fakediscord.test_fake_rules import api, cb, hook

DM_CHANNEL = 1


async def test_create_dm_returns_the_same_dm_channel_with_the_member(
    discord_fake: FakeDiscord,
) -> None:
    """Create DM answers the DM channel object (type 1, the member as recipient), the same
    channel every time, and the bot can post there."""
    member = discord_fake.member
    body = {"recipient_id": str(member.id)}
    status, first, _ = await api(discord_fake, "POST", "/users/@me/channels", body)
    _, second, _ = await api(discord_fake, "POST", "/users/@me/channels", body)
    sent, message, _ = await api(
        discord_fake, "POST", f"/channels/{first['id']}/messages", {"content": "hello"}
    )
    assert (status, first["type"], [r["id"] for r in first["recipients"]], second["id"]) == (
        200,
        DM_CHANNEL,
        [str(member.id)],
        first["id"],
    )
    assert (sent, message["channel_id"], "guild_id" in first) == (200, first["id"], False)


async def test_create_dm_refuses_an_unknown_recipient(discord_fake: FakeDiscord) -> None:
    status, body, _ = await api(
        discord_fake, "POST", "/users/@me/channels", {"recipient_id": "12345"}
    )
    assert (status, body["code"]) == (400, 50033)


async def test_closed_dms_refuse_the_bots_messages_with_50007(discord_fake: FakeDiscord) -> None:
    """Opening the DM still works; the send is refused as Discord does (403, 50007), and
    nothing is stored."""
    member = discord_fake.member
    member.dms_closed = True
    status, channel, _ = await api(
        discord_fake, "POST", "/users/@me/channels", {"recipient_id": str(member.id)}
    )
    sent, body, _ = await api(
        discord_fake, "POST", f"/channels/{channel['id']}/messages", {"content": "hello"}
    )
    assert (status, sent, body["code"], body["message"]) == (
        200,
        403,
        50007,
        "Cannot send messages to this user",
    )
    assert discord_fake.channel_messages(int(channel["id"])) == []


async def test_a_click_on_an_ephemeral_message_is_an_interaction_that_can_be_answered(
    discord_fake: FakeDiscord,
) -> None:
    """A button on an ephemeral reply can be clicked: the payload carries the message with
    its ephemeral flag, and the click can be answered (here: a new ephemeral message)."""
    inter = await discord_fake.slash("imagine", {"prompt": "x"})
    await api(discord_fake, "POST", cb(inter), {"type": 5, "data": {"flags": 64}}, auth=False)
    button = {"type": 2, "style": 2, "label": "Re-roll", "custom_id": "kontext:reroll:abc"}
    await api(
        discord_fake,
        "PATCH",
        hook(discord_fake, inter, "/messages/@original"),
        {"content": "done", "components": [{"type": 1, "components": [button]}]},
        auth=False,
    )
    reply = discord_fake.conversation(inter).original
    assert reply is not None

    click = await discord_fake.click(reply, label="Re-roll")
    status, _, _ = await api(
        discord_fake, "POST", cb(click), {"type": 5, "data": {"flags": 64}}, auth=False
    )
    answer = discord_fake.conversation(click)
    assert (reply.message.ephemeral, click.payload["message"]["flags"] & 64, status) == (
        True,
        64,
        200,
    )
    assert answer.ephemeral and answer.original is not None
