"""The mod-log on Discord: one compact entry per finished task, and the bot's credit alerts.

The core's ModLogSink (bot.ports): it only sends new messages to a server's configured mod-log
channel through the channel endpoints. Each entry's buttons are the DynamicItems defined here
(registered by cogs/admin.py), so a click works after a restart. A refusal comes back as a
`NotPublished`, logged here.
"""

from __future__ import annotations

import logging

import discord

from bot import custom_ids
from bot.flux import model_name
from bot.i18n import N_, Message, Text, render, tr
from bot.ledger import Task, TaskKind, TaskState
from bot.moderation.policy import fmt_credits
from bot.ports import NotPublished, Published, PublishOutcome
from bot.status import prompt_excerpt
from cogs.buttons import TaskButton
from cogs.client import send_ephemeral
from cogs.publisher import refused
from cogs.requests import Interaction

log = logging.getLogger(__name__)

OUTCOME_TEXT = {
    "done": N_("Delivered"),
    "content_policy": N_("Rejected by KIE's content filter"),
    "out_of_credits": N_("KIE is out of credits"),
}
COLORS = {"done": 0x2ECC71, "content_policy": 0xE67E22}
FAILED_COLOR = 0xE74C3C
NOT_A_MODLOG_MODERATOR = Text(
    "Only moderators (Manage Messages or Manage Server) can use the mod-log buttons."
)
GONE = Text("This task no longer exists.")
NO_PINGS = discord.AllowedMentions.none()


def outcome_of(task: Task) -> str:
    if task.state == TaskState.DONE:
        return "done"
    return task.error_code or "failed"


def task_embed(task: Task, locale: str | None = None) -> discord.Embed:
    """The mod-log entry for a finished task, in the server's `locale` (pure: no I/O)."""
    outcome = outcome_of(task)
    kind = tr(locale, "Image edit") if task.kind == TaskKind.EDIT else tr(locale, "Image")
    text = (
        tr(locale, OUTCOME_TEXT[outcome])
        if outcome in OUTCOME_TEXT
        else tr(locale, "Failed ({outcome})", outcome=outcome.replace("_", " "))
    )
    embed = discord.Embed(
        title=f"{kind} · {text}",
        description=prompt_excerpt(task.params.prompt, 300),
        color=COLORS.get(outcome, FAILED_COLOR),
    )
    requester = f"<@{task.requester_id}> ({task.requester_id})"
    embed.add_field(name=tr(locale, "Requester"), value=requester)
    if task.guild_id is None:
        where = tr(locale, "Outside servers (DM or private channel {id})", id=task.channel_id)
        embed.add_field(name=tr(locale, "Channel"), value=where)
    else:
        embed.add_field(name=tr(locale, "Channel"), value=f"<#{task.channel_id}>")
    embed.add_field(name=tr(locale, "Model"), value=model_name(task.params.model))
    cost = fmt_credits(task.cost)
    embed.add_field(
        name=tr(locale, "Cost"),
        value=tr(locale, "{cost} credits (refunded)", cost=cost)
        if task.refunded
        else tr(locale, "{cost} credits", cost=cost),
    )
    embed.add_field(name=tr(locale, "Outcome"), value=outcome)
    if task.private:
        embed.add_field(name=tr(locale, "Private"), value=tr(locale, "yes: only the member saw it"))
    if task.input_image_url and task.input_image_url.startswith(("https://", "http://")):
        embed.set_thumbnail(url=task.input_image_url)
    if task.state == TaskState.DONE and task.result_url:
        embed.set_image(url=task.result_url)
    embed.set_footer(text=f"Task {task.id}")
    return embed


def task_buttons(
    task: Task, *, deletable: bool = True, locale: str | None = None
) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    # An ephemeral result is beyond the bot's reach; a private one sent by DM is not.
    ephemeral = task.private and task.result_channel_id is None
    if deletable and task.state == TaskState.DONE and task.result_message_id and not ephemeral:
        view.add_item(ModlogDelete(task.id, locale=locale))
    view.add_item(ModlogBlock(task.id, locale=locale))
    view.add_item(ModlogReset(task.id, locale=locale))
    # Clicks go to the DynamicItems below; nothing is kept in memory per entry.
    view.stop()
    return view


class DiscordModLog:
    """Posts mod-log entries through the bot's channel endpoints."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    def _server_locale(self, guild_id: int | None) -> str | None:
        """The server's language (its "preferred locale"); None: English."""
        guild = self._client.get_guild(guild_id) if guild_id is not None else None
        return str(guild.preferred_locale) if guild is not None else None

    async def post_task(self, channel_id: int, guild_id: int | None, task: Task) -> PublishOutcome:
        """`guild_id` None: a task from outside servers, to DM_MODLOG_CHANNEL_ID. Its entry has
        no buttons (they act on a server); the operator uses `python -m bot block`."""
        channel = self._client.get_partial_messageable(channel_id, guild_id=guild_id)
        locale = self._server_locale(guild_id)
        view = None if task.guild_id is None else task_buttons(task, locale=locale)
        embed = task_embed(task, locale)
        try:
            if view is None:
                message = await channel.send(embed=embed, allowed_mentions=NO_PINGS)
            else:
                message = await channel.send(embed=embed, view=view, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            return _not_posted(f"mod-log entry for task {task.id}", refused(exc))
        return Published(message.id)

    async def post_alert(
        self, channel_id: int, guild_id: int | None, text: Message
    ) -> PublishOutcome:
        channel = self._client.get_partial_messageable(channel_id, guild_id=guild_id)
        locale = self._server_locale(guild_id)
        embed = discord.Embed(
            title=tr(locale, "KIE credits"), description=render(text, locale), color=0xE67E22
        )
        try:
            message = await channel.send(embed=embed, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            return _not_posted(f"credit alert to guild {guild_id}", refused(exc))
        return Published(message.id)


def _not_posted(what: str, outcome: NotPublished) -> NotPublished:
    log.warning("%s failed: %s (%s)", what, outcome.refusal, outcome.detail)
    return outcome


# ---- mod-log buttons -------------------------------------------------------------------------


async def _modlog_task(interaction: Interaction, task_id: str) -> Task | None:
    perms = interaction.permissions
    if not (perms.manage_messages or perms.manage_guild):
        await send_ephemeral(interaction, NOT_A_MODLOG_MODERATOR)
        return None
    task = await interaction.client.service.get_task(task_id)
    if task is None or task.guild_id != interaction.guild_id:
        await send_ephemeral(interaction, GONE)
        return None
    return task


class ModlogDelete(TaskButton, template=custom_ids.DELETE_TEMPLATE):
    LABEL = custom_ids.DELETE_LABEL
    STYLE = discord.ButtonStyle.danger
    make_id = staticmethod(custom_ids.delete_id)

    async def clicked(self, interaction: Interaction) -> None:
        task = await _modlog_task(interaction, self.task_id)
        if task is None:
            return
        if not task.result_message_id:
            await send_ephemeral(interaction, Text("This task has no posted image to delete."))
            return
        channel = interaction.client.get_partial_messageable(
            task.result_channel_id or task.channel_id,
            guild_id=None if task.result_channel_id else task.guild_id,
        )
        try:
            await channel.get_partial_message(task.result_message_id).delete()
        except discord.NotFound:
            pass  # already gone: the note below still records who cleared it
        except discord.HTTPException as exc:
            log.warning("deleting the output of task %s failed: %s", task.id, exc.status)
            await send_ephemeral(
                interaction, Text("The image couldn't be deleted (the bot may lack permission).")
            )
            return
        await interaction.client.moderation.note_output_deleted(task, by=interaction.user.id)
        locale = str(interaction.guild_locale) if interaction.guild_locale else None
        embed = (
            interaction.message.embeds[0]
            if interaction.message and interaction.message.embeds
            else task_embed(task, locale)
        )
        embed.add_field(
            name=tr(locale, "Output deleted"),
            value=tr(locale, "by {moderator}", moderator=f"<@{interaction.user.id}>"),
            inline=False,
        )
        embed.set_image(url=None)
        await interaction.response.edit_message(
            embed=embed, view=task_buttons(task, deletable=False, locale=locale)
        )


class ModlogBlock(TaskButton, template=custom_ids.BLOCK_TEMPLATE):
    LABEL = custom_ids.BLOCK_LABEL
    make_id = staticmethod(custom_ids.block_id)

    async def clicked(self, interaction: Interaction) -> None:
        task = await _modlog_task(interaction, self.task_id)
        if task is None or task.guild_id is None:
            return
        await interaction.client.moderation.block(
            task.guild_id, task.requester_id, by=interaction.user.id
        )
        await send_ephemeral(
            interaction,
            Text(
                "{member} is now blocked from the image bot in this server. "
                "Undo with /kontext-admin unblock.",
                member=f"<@{task.requester_id}>",
            ),
        )


class ModlogReset(TaskButton, template=custom_ids.RESET_TEMPLATE):
    LABEL = custom_ids.RESET_LABEL
    make_id = staticmethod(custom_ids.reset_id)

    async def clicked(self, interaction: Interaction) -> None:
        task = await _modlog_task(interaction, self.task_id)
        if task is None or task.guild_id is None:
            return
        await interaction.client.moderation.reset_quota(task.guild_id, task.requester_id)
        await send_ephemeral(
            interaction,
            Text("{member}'s credits for today were reset.", member=f"<@{task.requester_id}>"),
        )


DYNAMIC_ITEMS = (ModlogDelete, ModlogBlock, ModlogReset)
