"""The server's language (`FakeDiscord.guild_locale`) is sent as Discord sends it: the guild's
`preferred_locale` in GUILD_CREATE and `guild_locale` (and `guild.locale`) in interactions."""

from __future__ import annotations

from fakediscord import FakeDiscord


async def test_the_servers_locale_is_in_the_guild_and_its_interactions(
    discord_fake: FakeDiscord,
) -> None:
    discord_fake.guild_locale = "ja"
    slash = discord_fake.build_slash("imagine", {"prompt": "x"})
    assert (
        discord_fake.guild_obj()["preferred_locale"],
        slash["guild_locale"],
        slash["guild"]["locale"],
        slash["locale"],
    ) == ("ja", "ja", "ja", "en-US")
