"""The command tree's translator and the sync hash: a translation is part of what is synced, so a
changed translation changes the hash (and the bot syncs again)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from cogs.command_catalogue import CatalogueTranslator, tree_digest


class Renamed(app_commands.Translator):
    """Another catalogue's Japanese name for /imagine (as after a translator edits the .po)."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        if locale is discord.Locale.japanese and string.message == "imagine":
            return "画像をつくる"
        return None


def bot_with_imagine() -> commands.Bot:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())

    @bot.tree.command(
        name="imagine", description="Generate an image from a prompt with Flux Kontext"
    )
    @app_commands.describe(prompt="What to draw (English works best)")
    async def imagine(interaction: discord.Interaction, prompt: str) -> None:
        """Never run: the tree is only hashed here."""

    return bot


async def test_the_sync_hash_changes_with_the_translations() -> None:
    bot = bot_with_imagine()
    untranslated = await tree_digest(bot.tree, None)
    await bot.tree.set_translator(CatalogueTranslator())
    translated = await tree_digest(bot.tree, None)
    again = await tree_digest(bot.tree, None)
    await bot.tree.set_translator(Renamed())
    renamed = await tree_digest(bot.tree, None)
    assert again == translated
    assert len({untranslated, translated, renamed}) == 3


async def test_the_translator_gives_discord_the_catalogues_names() -> None:
    bot = bot_with_imagine()
    translator = CatalogueTranslator()
    imagine = bot.tree.get_commands()[0]
    payload = await imagine.get_translated_payload(bot.tree, translator)
    prompt = payload["options"][0]
    assert (
        payload["name_localizations"],
        prompt["name_localizations"]["es-ES"],
        "pt-BR" in prompt["description_localizations"],
    ) == (
        {"zh-CN": "生成", "es-ES": "imaginar", "es-419": "imaginar", "ja": "画像生成"},
        "instrucción",
        False,
    )
