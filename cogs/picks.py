"""A set's buttons 1-4: post that image alone, as a result of its own with every action."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from bot import custom_ids
from bot.i18n import Message, Text, render
from bot.ledger import Task, TaskState
from cogs.buttons import TaskButton
from cogs.client import send_ephemeral
from cogs.requests import Interaction, locale_of, origin_of, refused_for_permissions
from cogs.result_message import (
    attachment_task_id,
    result_actions,
    result_embed,
    result_filename,
)
from cogs.results import CancelButton, RerollButton, _owned_task

if TYPE_CHECKING:
    from cogs.client import KontextBot

log = logging.getLogger(__name__)

NOT_IN_MESSAGE = Text("That image is no longer in this message, so it can't be posted alone.")
PICK_FAILED = Text("Discord did not take the image just now. Nothing was lost — try again.")


class PickButton(TaskButton, template=custom_ids.PICK_TEMPLATE):
    LABEL = "?"  # each button shows its image's number
    make_id = staticmethod(custom_ids.pick_id)

    def __init__(self, task_id: str, index: int = 0, *, ready: bool = True) -> None:
        super().__init__(task_id)
        if index:
            self.item.label = str(index)
        self.item.disabled = not ready

    async def clicked(self, interaction: Interaction) -> None:
        picked = await _owned_task(interaction, self.task_id)
        if picked is None or await refused_for_permissions(interaction):
            return
        message = interaction.message
        attachment = next(
            (
                a
                for a in (message.attachments if message is not None else [])
                if attachment_task_id(a.filename) == picked.id
            ),
            None,
        )
        if attachment is None:
            await send_ephemeral(interaction, NOT_IN_MESSAGE)
            return
        await post_pick(interaction, picked, attachment)


async def post_pick(interaction: Interaction, picked: Task, attachment: discord.Attachment) -> None:
    """Answer the click with the image alone (public, or private for a private set), as a new
    task whose parent is the picked image."""
    response = await interaction.response.defer(thinking=True, ephemeral=picked.private)
    reply_id = response.message_id if response is not None else None
    if reply_id is None:
        reply_id = (await interaction.original_response()).id
    service = interaction.client.service
    origin = origin_of(interaction)
    pick = await service.record_pick(
        picked,
        interaction=(origin.application_id, origin.interaction_id, origin.interaction_token),
        channel_id=origin.channel_id,
        reply_message_id=reply_id,
        locale=origin.locale,
    )
    extension = attachment.filename.rsplit(".", 1)[-1]
    filename = result_filename(pick, extension, spoiler=attachment.is_spoiler())
    try:
        data = await attachment.read()
        sent = await interaction.edit_original_response(
            content=f"<@{pick.requester_id}>",
            embed=result_embed(pick, filename, now=pick.created_at + _took(picked), parent=picked),
            attachments=[discord.File(io.BytesIO(data), filename=filename)],
            view=result_actions(pick),
            allowed_mentions=discord.AllowedMentions.none(),
        )
    except (discord.HTTPException, OSError) as exc:
        log.warning("pick %s of task %s could not be posted: %s", pick.id, picked.id, exc)
        await service.pick_failed(pick)
        await _say(interaction, PICK_FAILED)
        return
    await service.delivered(pick, sent.id, (data, filename))
    log.info("task %s: image %s of set %s posted alone", pick.id, picked.set_index, picked.set_id)


def set_actions(members: Sequence[Task], delivered: frozenset[str]) -> discord.ui.View:
    """Under a set: 1-4 (each usable once its image is in the message), then Cancel while
    images wait in the queue or Re-roll (the whole set again) once none is still coming."""
    view = discord.ui.View(timeout=None)
    for member in members:
        view.add_item(PickButton(member.id, member.set_index, ready=member.id in delivered))
    coming = [m for m in members if m.id not in delivered and not m.terminal]
    first = members[0]
    if any(m.state == TaskState.QUEUED for m in coming):
        view.add_item(CancelButton(first.set_id or first.id, locale=first.locale))
    elif not coming:
        view.add_item(RerollButton(first.set_id or first.id, locale=first.locale))
    view.stop()
    return view


def _took(picked: Task) -> float:
    """How long the picked image took: what a pick's details show (it took no time itself)."""
    finished = picked.delivered_at or picked.completed_at or picked.updated_at
    return max(0.0, finished - picked.created_at)


async def _say(interaction: Interaction, text: Message) -> None:
    try:
        await interaction.edit_original_response(
            content=render(text, locale_of(interaction)), embed=None, attachments=[]
        )
    except discord.HTTPException:
        await send_ephemeral(interaction, text)


async def setup(bot: KontextBot) -> None:
    bot.add_dynamic_items(PickButton)


async def teardown(bot: KontextBot) -> None:
    bot.remove_dynamic_items(PickButton)
