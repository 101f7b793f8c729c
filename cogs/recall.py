"""/show (a result posted again, with its buttons) and /history (a member's last tasks)."""

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
from bot.i18n import tr
from bot.ledger import Task
from bot.ports import ResultImage
from bot.recall import GONE, HISTORY_FOR_MODERATORS, UNKNOWN, Recall, Viewer
from cogs.archive import DiscordArchive
from cogs.client import NO_PINGS, send_ephemeral
from cogs.requests import (
    Interaction,
    locale_of,
    origin_of,
    refused_for_permissions,
    server_id_of,
)
from cogs.result_message import result_actions, result_embed, result_filename

if TYPE_CHECKING:
    from cogs.client import KontextBot

log = logging.getLogger(__name__)

ENVELOPE = 16 * 1024  # room for the multipart envelope under the upload limit


def viewer_of(interaction: Interaction) -> Viewer:
    guild_id = server_id_of(interaction)
    return Viewer(
        user_id=interaction.user.id,
        guild_id=guild_id,
        # Outside servers nobody moderates: everyone sees only their own tasks.
        moderator=guild_id is not None and interaction.permissions.manage_messages,
    )


def _history_title(locale: str, *, own: bool, here: int | None) -> str:
    if own:
        if here is not None:
            return tr(locale, "Your last images here")
        return tr(locale, "Your last images outside servers")
    if here is not None:
        return tr(locale, "Last images of a member here")
    return tr(locale, "Last images of a member outside servers")


class RecallCommands(commands.Cog):
    def __init__(self, bot: KontextBot) -> None:
        self.bot = bot
        self.recall = Recall(
            ledger=bot.ledger,
            archive=DiscordArchive(bot),
            moderation=bot.moderation,
            downloads=bot.downloads,
            allow_private_urls=bot.settings.allow_private_urls,
        )

    @app_commands.command(
        name="show", description="Post one of your results again, with its buttons"
    )
    @app_commands.describe(task="The task (pick one of your recent tasks, or paste its id)")
    async def show(self, interaction: Interaction, task: Range[str, 1, 100]) -> None:
        found = await self.recall.task(task)
        origin = origin_of(interaction)
        showing = await self.recall.showing(
            found, viewer_of(interaction), channel_id=origin.channel_id, parent_id=origin.parent_id
        )
        if showing.refusal is not None or found is None:
            await send_ephemeral(interaction, showing.refusal or UNKNOWN)
            return
        if not showing.private and await refused_for_permissions(interaction):
            return
        try:
            # Fetching the image again may take longer than Discord's 3 seconds.
            await interaction.response.defer(thinking=True, ephemeral=showing.private)
        except discord.HTTPException as exc:
            log.warning("could not answer /show %s: %s %s", interaction.id, exc.status, exc.code)
            return
        image = await self.recall.result_image(found)
        if image is None:
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
            await send_ephemeral(interaction, GONE)
            return
        await self._post(interaction, found, image, private=showing.private)

    @show.autocomplete("task")
    async def task_choices(self, interaction: Interaction, current: str) -> list[Choice[str]]:
        choices = await self.recall.choices(viewer_of(interaction), current, locale_of(interaction))
        return [Choice(name=name, value=value) for name, value in choices]

    async def _post(
        self, interaction: Interaction, task: Task, image: ResultImage, *, private: bool
    ) -> None:
        data, extension = image.data, image.extension
        budget = max(64 * 1024, interaction.filesize_limit - ENVELOPE)
        if len(data) > budget:
            data, extension = await images.in_worker(images.fit_to_limit, data, budget)
        filename = result_filename(task, extension, spoiler=image.spoiler)
        parent = await self.recall.task(task.parent_task_id) if task.parent_task_id else None
        shown_at = task.delivered_at or task.completed_at or task.updated_at
        await interaction.followup.send(
            embed=result_embed(task, filename, now=shown_at, parent=parent),
            file=discord.File(io.BytesIO(data), filename=filename),
            view=result_actions(task),
            ephemeral=private,
            allowed_mentions=NO_PINGS,
        )

    @app_commands.command(name="history", description="Your last 10 images, privately")
    @app_commands.describe(member="Moderators: whose history to see")
    async def history(self, interaction: Interaction, member: discord.User | None = None) -> None:
        viewer = viewer_of(interaction)
        whose = member.id if member is not None else viewer.user_id
        if whose != viewer.user_id and not viewer.moderator:
            await send_ephemeral(interaction, HISTORY_FOR_MODERATORS)
            return
        locale = locale_of(interaction)
        embed = discord.Embed(
            title=_history_title(locale, own=whose == viewer.user_id, here=viewer.guild_id),
            description=await self.recall.history(viewer.guild_id, whose, locale),
            color=0x5865F2,
        )
        if whose != viewer.user_id:
            embed.add_field(name=tr(locale, "Member"), value=f"<@{whose}>")
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=NO_PINGS
        )


async def setup(bot: KontextBot) -> None:
    await bot.add_cog(RecallCommands(bot))
