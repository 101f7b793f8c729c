"""/ref save, /ref list, /ref show, /ref delete: a server's saved reference images."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot import images
from bot.i18n import Text, tr
from bot.ledger import RefSummary
from bot.moderation import Denied
from bot.refs import (
    MAX_REF_NAME,
    MAX_REF_NOTE,
    OUTSIDE_SERVERS,
    RefRejected,
    name_for_file,
    shown_name,
)
from bot.status import prompt_excerpt
from bot.validation import InputRejected
from cogs.client import NO_PINGS, send_ephemeral
from cogs.requests import (
    Interaction,
    check_sizes,
    locale_of,
    origin_of,
    refused_for_permissions,
    server_id_of,
)

if TYPE_CHECKING:
    from cogs.client import KontextBot

log = logging.getLogger(__name__)

LIST_CHARS = 3800  # an embed's description holds 4096
ENVELOPE = 16 * 1024  # room for the multipart envelope under the upload limit (as /show)


def _server(interaction: Interaction) -> int:
    guild_id = server_id_of(interaction)
    if guild_id is None:
        raise RefRejected(OUTSIDE_SERVERS)
    return guild_id


def _listing(refs: list[RefSummary], limit: int, locale: str) -> str:
    lines = []
    for ref in refs:
        note = f" — {prompt_excerpt(ref.note, 80)}" if ref.note else ""
        size = f"{ref.size / 1024:.0f} KB"
        lines.append(f"**{shown_name(ref.name)}** — <@{ref.owner_id}> ({size}){note}")
    text = ""
    for shown, line in enumerate(lines):
        if len(text) + len(line) > LIST_CHARS:
            text += tr(locale, "… and {count} more", count=len(lines) - shown)
            break
        text += line + "\n"
    summary = tr(locale, "{count} of {limit} saved references.", count=len(refs), limit=limit)
    return f"{text}\n{summary}"


@app_commands.guild_only()
@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
class RefCommands(
    commands.GroupCog,
    group_name="ref",
    group_description="This server's saved reference images (characters, products, styles)",
):
    def __init__(self, bot: KontextBot) -> None:
        self.bot = bot
        super().__init__()

    async def _refused_here(self, interaction: Interaction) -> bool:
        """Saving or posting a reference keeps the rules of asking for an image: a blocked
        member, or a channel the server does not use the bot in, is refused privately."""
        origin = origin_of(interaction)
        try:
            await self.bot.moderation.admit(origin.asker())
        except Denied as exc:
            await send_ephemeral(interaction, exc.refusal.message)
            return True
        return False

    @app_commands.command(name="save", description="Save an image as a reference for this server")
    @app_commands.describe(
        name=f"A name for it (unique in this server, at most {MAX_REF_NAME} characters)",
        image="The reference image (PNG, JPEG or WebP; GIF/BMP/AVIF are converted)",
        note="What it shows, for the list (optional)",
    )
    async def save(
        self,
        interaction: Interaction,
        name: Range[str, 1, MAX_REF_NAME],
        image: discord.Attachment,
        note: Range[str, 1, MAX_REF_NOTE] | None = None,
    ) -> None:
        refs = self.bot.refs
        try:
            guild_id = _server(interaction)
            clean, clean_note = refs.clean_name(name), refs.clean_note(note)
            check_sizes([(image.url, image.size)])
            await refs.check_free(guild_id, clean)
        except InputRejected as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        if await self._refused_here(interaction):
            return
        # Downloading and checking the image may take longer than Discord's 3 seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            prepared = await self.bot.service.fetch_input(image.url)
            await refs.save(guild_id, interaction.user.id, clean, clean_note, prepared)
        except InputRejected as exc:
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
            await send_ephemeral(interaction, exc.user_message)
            return
        saved = tr(
            locale_of(interaction),
            "Saved **{name}**. Use it with `/imagine ref:` or `/edit ref:`.",
            name=shown_name(clean),
        )
        await interaction.edit_original_response(content=saved, allowed_mentions=NO_PINGS)

    @app_commands.command(name="list", description="The references saved in this server")
    async def list_refs(self, interaction: Interaction) -> None:
        guild_id = server_id_of(interaction)
        if guild_id is None:
            await send_ephemeral(interaction, OUTSIDE_SERVERS)
            return
        refs = await self.bot.refs.listing(guild_id)
        limit = (await self.bot.moderation.settings_for(guild_id)).max_refs
        if not refs:
            await send_ephemeral(interaction, Text("No references are saved here yet: /ref save."))
            return
        locale = locale_of(interaction)
        embed = discord.Embed(
            title=tr(locale, "Saved references"),
            description=_listing(refs, limit, locale),
            color=0x5865F2,
        )
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=NO_PINGS
        )

    @app_commands.command(name="show", description="Post a saved reference with its note")
    @app_commands.describe(name="The reference")
    async def show(self, interaction: Interaction, name: Range[str, 1, 100]) -> None:
        try:
            ref = await self.bot.refs.find(server_id_of(interaction), name)
        except InputRejected as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        if await self._refused_here(interaction) or await refused_for_permissions(interaction):
            return
        data, filename = ref.data, ref.filename
        budget = max(64 * 1024, interaction.filesize_limit - ENVELOPE)
        if len(data) > budget:
            # Shrinking a large image may take longer than Discord's 3 seconds.
            await interaction.response.defer(thinking=True)
            data, extension = await images.in_worker(images.fit_to_limit, data, budget)
            filename = f"{name_for_file(ref.name)}.{extension}"
        locale = locale_of(interaction)
        embed = discord.Embed(
            title=tr(locale, "Reference: {name}", name=shown_name(ref.name)), color=0x5865F2
        )
        if ref.note:
            embed.description = prompt_excerpt(ref.note, MAX_REF_NOTE)
        embed.add_field(name=tr(locale, "Saved by"), value=f"<@{ref.owner_id}>")
        embed.set_image(url=f"attachment://{filename}")
        file = discord.File(io.BytesIO(data), filename=filename)
        if interaction.response.is_done():
            await interaction.followup.send(embed=embed, file=file, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(
                embed=embed, file=file, allowed_mentions=NO_PINGS
            )

    @app_commands.command(name="delete", description="Delete a saved reference (yours, or any)")
    @app_commands.describe(name="The reference (members delete their own; moderators any)")
    async def delete(self, interaction: Interaction, name: Range[str, 1, 100]) -> None:
        try:
            deleted = await self.bot.refs.delete(
                _server(interaction),
                name,
                user_id=interaction.user.id,
                can_manage_messages=interaction.permissions.manage_messages,
            )
        except InputRejected as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        await send_ephemeral(
            interaction, Text("Deleted **{name}**.", name=shown_name(deleted.name))
        )

    @show.autocomplete("name")
    @delete.autocomplete("name")
    async def name_choices(self, interaction: Interaction, current: str) -> list[Choice[str]]:
        return await ref_choices(interaction, current)


async def ref_choices(interaction: Interaction, current: str) -> list[Choice[str]]:
    """The server's reference names containing what was typed (the `name:` and `ref:` options)."""
    names = await interaction.client.refs.names(server_id_of(interaction), current)
    return [Choice(name=name, value=name) for name in names]


async def setup(bot: KontextBot) -> None:
    await bot.add_cog(RefCommands(bot))
