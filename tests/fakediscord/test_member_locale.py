"""Every interaction carries its member's Discord locale (`locale`, the client's language) and
the server's (`guild_locale`), as Discord sends them."""

from __future__ import annotations

from fakediscord import FakeDiscord


async def test_an_interaction_carries_the_members_locale(discord_fake: FakeDiscord) -> None:
    """A member whose Discord is in Spanish sends `locale: es-ES`; the server stays en-US."""
    lucia = discord_fake.add_user("lucia")
    lucia.locale = "es-ES"
    target = discord_fake.inject_message("a sign")

    slash = discord_fake.build_slash("imagine", {"prompt": "x"}, user=lucia)
    menu = discord_fake.build_message_command("Edit with Flux Kontext", target, user=lucia)
    default = discord_fake.build_slash("imagine", {"prompt": "x"})

    assert [p["locale"] for p in (slash, menu, default)] == ["es-ES", "es-ES", "en-US"]
    assert slash["guild_locale"] == "en-US"
