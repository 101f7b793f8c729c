"""The message command "Translate text in image": an edit of the message's first image that
rewrites its visible text into a language the member picks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import custom_ids
from bot.i18n import N_, tr
from bot.image_text import (
    MAX_LANGUAGE_CHARS,
    TRANSLATE_MODEL,
    chosen_language,
    language_of_locale,
    languages_offered,
    translation_prompt,
)
from bot.ledger import TaskKind
from cogs.client import send_ephemeral
from cogs.requests import (
    AnyInteraction,
    Interaction,
    KontextModal,
    first_image_url,
    kontext,
    refused_for_permissions,
    submit_request,
)

if TYPE_CHECKING:
    from cogs.client import KontextBot

log = logging.getLogger(__name__)

TRANSLATE_MENU_NAME = N_("Translate text in image")
NO_IMAGE = N_("That message has no image to translate. Pick a message with an image attached.")


class LanguageModal(KontextModal):
    """Asks for the target language: a list of Discord's languages (the member's own chosen
    already) and a box for any other, which wins when filled."""

    def __init__(
        self,
        *,
        locale: str,
        on_language: Callable[[Interaction, str], Coroutine[Any, Any, None]],
    ) -> None:
        super().__init__(
            title=tr(locale, TRANSLATE_MENU_NAME), timeout=15 * 60, custom_id=custom_ids.modal_id()
        )
        own = language_of_locale(locale)
        self.listed: discord.ui.Select[LanguageModal] = discord.ui.Select(
            custom_id="language",
            options=[
                discord.SelectOption(
                    label=language.label, value=language.code, default=language is own
                )
                for language in languages_offered(locale)
            ],
        )
        self.typed: discord.ui.TextInput[LanguageModal] = discord.ui.TextInput(
            custom_id="other",
            placeholder=tr(locale, "e.g. Latin, Catalan, Hebrew"),
            max_length=MAX_LANGUAGE_CHARS,
            required=False,
        )
        self.add_item(discord.ui.Label(text=tr(locale, "Language"), component=self.listed))
        self.add_item(
            discord.ui.Label(
                text=tr(locale, "Other language"),
                description=tr(locale, "Not in the list? Type it here (this wins over the list)."),
                component=self.typed,
            )
        )
        self._on_language = on_language

    async def on_submit(self, interaction: AnyInteraction, /) -> None:
        listed = self.listed.values[0] if self.listed.values else None
        await self._on_language(kontext(interaction), chosen_language(listed, self.typed.value))


class TranslateText(commands.Cog):
    def __init__(self, bot: KontextBot) -> None:
        self.bot = bot
        self.context_menu = app_commands.ContextMenu(
            name=TRANSLATE_MENU_NAME, callback=self.translate_from_message
        )
        self.bot.tree.add_command(self.context_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.context_menu.name, type=self.context_menu.type)

    async def translate_from_message(
        self, interaction: Interaction, message: discord.Message
    ) -> None:
        if await refused_for_permissions(interaction):
            return
        found = first_image_url(message)
        if found is None:
            await send_ephemeral(interaction, tr(str(interaction.locale), NO_IMAGE))
            return
        url, size = found
        service = self.bot.service

        async def on_language(modal_interaction: Interaction, language: str) -> None:
            prompt = translation_prompt(language)
            await submit_request(
                modal_interaction,
                kind=TaskKind.EDIT,
                build=lambda: service.build_params(prompt=prompt, edit=True, model=TRANSLATE_MODEL),
                image_url=url,
                image_size=size,
            )

        modal = LanguageModal(locale=str(interaction.locale), on_language=on_language)
        await interaction.response.send_modal(modal)


async def setup(bot: KontextBot) -> None:
    await bot.add_cog(TranslateText(bot))
