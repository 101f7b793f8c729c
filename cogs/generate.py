"""/imagine, /edit and the "Edit with Flux Kontext" message command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot import custom_ids
from bot.flux import MODEL_NAMES
from bot.i18n import N_, Text, tr
from bot.ledger import TaskKind
from bot.moderation.policy import MAX_COUNT
from bot.validation import MAX_PROMPT_CHARS
from cogs.client import send_ephemeral
from cogs.refs import ref_choices
from cogs.requests import (
    Interaction,
    PromptModal,
    first_image_url,
    locale_of,
    refused_for_permissions,
    submit_request,
)

if TYPE_CHECKING:
    from cogs.client import KontextBot

ASPECT_CHOICES = [
    Choice(name="21:9 — ultra-wide", value="21:9"),
    Choice(name="16:9 — widescreen", value="16:9"),
    Choice(name="4:3 — landscape", value="4:3"),
    Choice(name="1:1 — square", value="1:1"),
    Choice(name="3:4 — portrait", value="3:4"),
    Choice(name="9:16 — tall", value="9:16"),
]
MODEL_CHOICES = [Choice(name=name, value=model) for model, name in MODEL_NAMES.items()]
FORMAT_CHOICES = [Choice(name="JPEG", value="jpeg"), Choice(name="PNG", value="png")]
CONTEXT_MENU_NAME = N_("Edit with Flux Kontext")

_DESCRIBE = {
    "prompt": "What to draw (English works best)",
    "aspect_ratio": "Shape of the image",
    "model": "Pro (standard) or Max (better for complex scenes)",
    "output_format": "File format of the result",
    "enhance_prompt": "Let the model enrich your prompt (slower)",
    "count": f"How many images, 1 to {MAX_COUNT}, in one message (each costs its own credits)",
    "private": "Only you see the result",
}
_DESCRIBE_EDIT = _DESCRIBE | {
    "prompt": "The change to make; name images by position: “put the hat from image 2 on image 1”",
}


class Generate(commands.Cog):
    def __init__(self, bot: KontextBot) -> None:
        self.bot = bot
        self.context_menu = app_commands.ContextMenu(
            name=CONTEXT_MENU_NAME, callback=self.edit_from_message
        )
        self.bot.tree.add_command(self.context_menu)

    async def cog_load(self) -> None:
        # Requests are admitted from memory before they are answered (bot.moderation.early):
        # loaded here, with the commands, before the first interaction can arrive.
        if not self.bot.sync_only:
            await self.bot.moderation.early.start(self.bot.supervisor)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.context_menu.name, type=self.context_menu.type)

    @app_commands.command(
        name="imagine", description="Generate an image from a prompt with Flux Kontext"
    )
    @app_commands.describe(
        **_DESCRIBE,
        safety_tolerance="0 = strictest, 6 = most permissive (default 2; at most 2 with ref)",
        ref="A saved reference (/ref) as the image to work from: an edit of it",
    )
    @app_commands.choices(
        aspect_ratio=ASPECT_CHOICES, model=MODEL_CHOICES, output_format=FORMAT_CHOICES
    )
    async def imagine(
        self,
        interaction: Interaction,
        prompt: Range[str, 1, MAX_PROMPT_CHARS],
        aspect_ratio: str | None = None,
        model: str | None = None,
        output_format: str | None = None,
        enhance_prompt: bool | None = None,
        safety_tolerance: Range[int, 0, 6] | None = None,
        count: Range[int, 1, MAX_COUNT] | None = None,
        private: bool | None = None,
        ref: Range[str, 1, 100] | None = None,
    ) -> None:
        service = self.bot.service
        await submit_request(
            interaction,
            kind=TaskKind.IMAGINE if ref is None else TaskKind.EDIT,
            build=lambda: service.build_params(
                prompt=prompt,
                edit=ref is not None,
                aspect_ratio=aspect_ratio,
                model=model,
                output_format=output_format,
                enhance_prompt=enhance_prompt,
                safety_tolerance=safety_tolerance,
            ),
            count=count,
            private=private,
            ref_name=ref,
        )

    @app_commands.command(
        name="edit", description="Edit an image by instruction; add up to 3 more to combine them"
    )
    @app_commands.describe(
        image="The image to edit (PNG, JPEG or WebP; GIF/BMP/AVIF are converted)",
        **_DESCRIBE_EDIT,
        safety_tolerance="0 = strictest, 2 = most permissive for edits (default 2)",
        image2="Image 2, placed right of image 1; the prompt can say “image 2”",
        image3="Image 3: with 3 or 4 images they sit in a 2×2 grid, left to right, then down",
        image4="Image 4, bottom right of the grid",
        ref="A saved reference (/ref), placed after your images as the last one",
    )
    @app_commands.choices(
        aspect_ratio=ASPECT_CHOICES, model=MODEL_CHOICES, output_format=FORMAT_CHOICES
    )
    async def edit(
        self,
        interaction: Interaction,
        image: discord.Attachment,
        prompt: Range[str, 1, MAX_PROMPT_CHARS],
        aspect_ratio: str | None = None,
        model: str | None = None,
        output_format: str | None = None,
        enhance_prompt: bool | None = None,
        safety_tolerance: Range[int, 0, 2] | None = None,
        count: Range[int, 1, MAX_COUNT] | None = None,
        private: bool | None = None,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        ref: Range[str, 1, 100] | None = None,
    ) -> None:
        service = self.bot.service
        more = [(extra.url, extra.size) for extra in (image2, image3, image4) if extra is not None]
        await submit_request(
            interaction,
            kind=TaskKind.EDIT,
            build=lambda: service.build_params(
                prompt=prompt,
                edit=True,
                aspect_ratio=aspect_ratio,
                model=model,
                output_format=output_format,
                enhance_prompt=enhance_prompt,
                safety_tolerance=safety_tolerance,
            ),
            image_url=image.url,
            image_size=image.size,
            more_images=more,
            count=count,
            private=private,
            ref_name=ref,
        )

    @imagine.autocomplete("ref")
    @edit.autocomplete("ref")
    async def reference_choices(self, interaction: Interaction, current: str) -> list[Choice[str]]:
        return await ref_choices(interaction, current)

    async def edit_from_message(self, interaction: Interaction, message: discord.Message) -> None:
        if await refused_for_permissions(interaction):
            return
        found = first_image_url(message)
        if found is None:
            await send_ephemeral(
                interaction,
                Text("That message has no image to edit. Pick a message with an image attached."),
            )
            return
        url, size = found
        service = self.bot.service

        async def on_prompt(modal_interaction: Interaction, prompt: str) -> None:
            await submit_request(
                modal_interaction,
                kind=TaskKind.EDIT,
                build=lambda: service.build_params(prompt=prompt, edit=True),
                image_url=url,
                image_size=size,
            )

        locale = locale_of(interaction)
        modal = PromptModal(
            title=tr(locale, CONTEXT_MENU_NAME),
            on_prompt=on_prompt,
            custom_id=custom_ids.modal_id(),
            locale=locale,
        )
        await interaction.response.send_modal(modal)


async def setup(bot: KontextBot) -> None:
    await bot.add_cog(Generate(bot))
