"""The mod-log: one compact entry per finished task, and the bot's credit alerts.

This is the one place outside bot/delivery.py that posts to Discord from the core; it only
sends new messages to a server's configured mod-log channel through the channel endpoints (the
clicks on its buttons are handled by the DynamicItems in cogs/admin.py).
"""

from __future__ import annotations

import logging
from typing import Protocol

import discord

from bot import custom_ids as ids
from bot.flux import model_name
from bot.ledger import Task, TaskKind, TaskState
from bot.moderation.policy import fmt_credits
from bot.status import prompt_excerpt

log = logging.getLogger(__name__)

OUTCOME_TEXT = {
    "done": "Delivered",
    "content_policy": "Rejected by KIE's content filter",
    "out_of_credits": "KIE is out of credits",
}
COLORS = {"done": 0x2ECC71, "content_policy": 0xE67E22}
FAILED_COLOR = 0xE74C3C


class ModLogSink(Protocol):
    """Where moderation writes: the mod-log channel of a server."""

    async def post_task(self, channel_id: int, guild_id: int | None, task: Task) -> None: ...

    async def post_alert(self, channel_id: int, guild_id: int | None, text: str) -> None: ...


def outcome_of(task: Task) -> str:
    if task.state == TaskState.DONE:
        return "done"
    return task.error_code or "failed"


def task_embed(task: Task) -> discord.Embed:
    """The mod-log entry for a finished task (pure: no I/O)."""
    outcome = outcome_of(task)
    kind = "Edit" if task.kind == TaskKind.EDIT else "Image"
    text = OUTCOME_TEXT.get(outcome, f"Failed ({outcome.replace('_', ' ')})")
    embed = discord.Embed(
        title=f"{kind} · {text}",
        description=prompt_excerpt(task.params.prompt, 300),
        color=COLORS.get(outcome, FAILED_COLOR),
    )
    embed.add_field(name="Requester", value=f"<@{task.requester_id}> ({task.requester_id})")
    if task.guild_id is None:
        where = f"Outside servers (DM or private channel {task.channel_id})"
        embed.add_field(name="Channel", value=where)
    else:
        embed.add_field(name="Channel", value=f"<#{task.channel_id}>")
    embed.add_field(name="Model", value=model_name(task.params.model))
    cost = fmt_credits(task.cost)
    if task.refunded:
        cost += " (refunded)"
    embed.add_field(name="Cost", value=f"{cost} credits")
    embed.add_field(name="Outcome", value=outcome)
    if task.input_image_url and task.input_image_url.startswith(("https://", "http://")):
        embed.set_thumbnail(url=task.input_image_url)
    if task.state == TaskState.DONE and task.result_url:
        embed.set_image(url=task.result_url)
    embed.set_footer(text=f"Task {task.id}")
    return embed


def task_buttons(task: Task, *, deletable: bool = True) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    if deletable and task.state == TaskState.DONE and task.result_message_id:
        view.add_item(
            discord.ui.Button(
                label=ids.DELETE_LABEL,
                style=discord.ButtonStyle.danger,
                custom_id=ids.delete_id(task.id),
            )
        )
    view.add_item(
        discord.ui.Button(
            label=ids.BLOCK_LABEL,
            style=discord.ButtonStyle.secondary,
            custom_id=ids.block_id(task.id),
        )
    )
    view.add_item(
        discord.ui.Button(
            label=ids.RESET_LABEL,
            style=discord.ButtonStyle.secondary,
            custom_id=ids.reset_id(task.id),
        )
    )
    # Clicks go to the DynamicItems in cogs/admin.py; nothing is kept in memory per entry.
    view.stop()
    return view


class DiscordModLog:
    """Posts mod-log entries through the bot's channel endpoints."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def post_task(self, channel_id: int, guild_id: int | None, task: Task) -> None:
        """`guild_id` None: a task from outside servers, to DM_MODLOG_CHANNEL_ID. Its entry has
        no buttons (they act on a server); the operator uses `python -m bot block`."""
        channel = self._client.get_partial_messageable(channel_id, guild_id=guild_id)
        if task.guild_id is None:
            await channel.send(
                embed=task_embed(task), allowed_mentions=discord.AllowedMentions.none()
            )
            return
        await channel.send(
            embed=task_embed(task),
            view=task_buttons(task),
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def post_alert(self, channel_id: int, guild_id: int | None, text: str) -> None:
        channel = self._client.get_partial_messageable(channel_id, guild_id=guild_id)
        embed = discord.Embed(title="KIE credits", description=text, color=0xE67E22)
        await channel.send(embed=embed, allowed_mentions=discord.AllowedMentions.none())
