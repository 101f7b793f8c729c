"""The fake holds every guild channel kind and the bot's per-channel permissions (raw HTTP)."""

from __future__ import annotations

from fakediscord import (
    ATTACH_FILES,
    CATEGORY_CHANNEL,
    EMBED_LINKS,
    FORUM_CHANNEL,
    MEDIA_CHANNEL,
    VIEW_CHANNEL,
    VOICE_CHANNEL,
    FakeDiscord,
)
from fakediscord.test_fake_rules import api


async def test_a_post_where_channels_have_no_message_list_answers_50008(
    discord_fake: FakeDiscord,
) -> None:
    """Categories, forums and media channels take no messages; a voice channel's chat does."""
    kinds = (CATEGORY_CHANNEL, FORUM_CHANNEL, MEDIA_CHANNEL)
    for kind in kinds:
        channel = discord_fake.add_channel(f"kind-{kind}", type=kind)
        status, body, _ = await api(
            discord_fake, "POST", f"/channels/{channel.id}/messages", {"content": "hi"}
        )
        assert (status, body["code"]) == (400, 50008), kind
    voice = discord_fake.add_channel("lounge", type=VOICE_CHANNEL)
    status, _, _ = await api(
        discord_fake, "POST", f"/channels/{voice.id}/messages", {"content": "hi"}
    )
    assert status == 200


async def test_the_bots_denied_permissions_refuse_its_posts(discord_fake: FakeDiscord) -> None:
    """No View Channel → 403/50001; no Attach Files → a post with a file gets 403/50013."""
    hidden = discord_fake.add_channel("hidden", bot_deny=VIEW_CHANNEL)
    status, body, _ = await api(
        discord_fake, "POST", f"/channels/{hidden.id}/messages", {"content": "hi"}
    )
    assert (status, body["code"]) == (403, 50001)

    no_files = discord_fake.add_channel("no-files", bot_deny=ATTACH_FILES)
    path = f"/channels/{no_files.id}/messages"
    status, body, _ = await api(
        discord_fake, "POST", path, {"content": "hi"}, files=[("a.png", b"x")]
    )
    assert (status, body["code"]) == (403, 50013)
    status, _, _ = await api(discord_fake, "POST", path, {"content": "hi"})
    assert status == 200


def test_channel_objects_and_app_permissions_carry_type_and_overwrites(
    discord_fake: FakeDiscord,
) -> None:
    """GUILD_CREATE, a resolved channel option and app_permissions show the kind and the deny."""
    forum = discord_fake.add_channel("showcase", type=FORUM_CHANNEL)
    no_embeds = discord_fake.add_channel("no-embeds", bot_deny=EMBED_LINKS)
    channels = {c["id"]: c for c in discord_fake.guild_obj()["channels"]}
    assert channels[str(forum.id)]["type"] == FORUM_CHANNEL
    assert channels[str(no_embeds.id)]["permission_overwrites"] == [
        {"id": str(discord_fake.bot_user.id), "type": 1, "allow": "0", "deny": str(EMBED_LINKS)}
    ]

    payload = discord_fake.build_slash("x", {"channel": forum}, channel=no_embeds)
    assert payload["data"]["resolved"]["channels"][str(forum.id)]["type"] == FORUM_CHANNEL
    assert not int(payload["app_permissions"]) & EMBED_LINKS
    assert int(payload["app_permissions"]) & ATTACH_FILES
