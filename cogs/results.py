"""The persistent "Re-roll" and "Edit" buttons on every result, the Edit modal, and "Cancel" on
a queued task's status."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot import custom_ids
from bot.ledger import Task, TaskKind
from bot.validation import MAX_TOLERANCE_EDIT, InputRejected
from cogs.buttons import TaskButton
from cogs.client import send_ephemeral
from cogs.requests import (
    Interaction,
    PromptModal,
    refused_for_permissions,
    submit_request,
)

if TYPE_CHECKING:
    from cogs.client import KontextBot

NOT_YOURS = (
    "This isn't yours: only the member who asked for this image "
    "(or a moderator) can use its buttons."
)
GONE = "This task no longer exists, so its buttons don't work any more."
CANCELLED = "Cancelled. Your credits were given back."
NOT_CANCELLABLE = "This task was already sent to KIE; it can't be cancelled."


async def _owned_task(interaction: Interaction, task_id: str) -> Task | None:
    service = interaction.client.service
    task = await service.get_task(task_id)
    if task is None:
        await send_ephemeral(interaction, GONE)
        return None
    if not service.may_control(
        task, interaction.user.id, can_manage_messages=interaction.permissions.manage_messages
    ):
        await send_ephemeral(interaction, NOT_YOURS)
        return None
    return task


class RerollButton(TaskButton, template=custom_ids.REROLL_TEMPLATE):
    LABEL = custom_ids.REROLL_LABEL
    EMOJI = "🎲"
    make_id = staticmethod(custom_ids.reroll_id)

    async def clicked(self, interaction: Interaction) -> None:
        parent = await _owned_task(interaction, self.task_id)
        if parent is None:
            return
        service = interaction.client.service
        try:
            input_url, image = await service.reroll_source(parent)
        except InputRejected as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        await submit_request(
            interaction,
            kind=parent.kind,
            build=lambda: parent.params,
            input_image_url=input_url,
            parent_task_id=parent.id,
            prepared_image=image,
        )


class EditButton(TaskButton, template=custom_ids.EDIT_TEMPLATE):
    LABEL = custom_ids.EDIT_LABEL
    STYLE = discord.ButtonStyle.primary
    EMOJI = "✏️"
    make_id = staticmethod(custom_ids.edit_id)

    async def clicked(self, interaction: Interaction) -> None:
        parent = await _owned_task(interaction, self.task_id)
        if parent is None or await refused_for_permissions(interaction):
            return
        service = interaction.client.service
        try:
            source = service.result_as_input(parent)
        except InputRejected as exc:
            await send_ephemeral(interaction, exc.user_message)
            return

        async def on_prompt(modal_interaction: Interaction, prompt: str) -> None:
            await submit_request(
                modal_interaction,
                kind=TaskKind.EDIT,
                build=lambda: service.build_params(
                    prompt=prompt,
                    edit=True,
                    aspect_ratio=parent.params.aspect_ratio,
                    model=parent.params.model,
                    output_format=parent.params.output_format,
                    enhance_prompt=parent.params.enhance_prompt,
                    safety_tolerance=min(parent.params.safety_tolerance, MAX_TOLERANCE_EDIT),
                ),
                input_image_url=source,
                parent_task_id=parent.id,
            )

        await interaction.response.send_modal(
            PromptModal(
                title="Edit this image",
                on_prompt=on_prompt,
                custom_id=custom_ids.modal_id(),
            )
        )


class CancelButton(TaskButton, template=custom_ids.CANCEL_TEMPLATE):
    LABEL = custom_ids.CANCEL_LABEL
    STYLE = discord.ButtonStyle.danger
    make_id = staticmethod(custom_ids.cancel_id)

    async def clicked(self, interaction: Interaction) -> None:
        task = await _owned_task(interaction, self.task_id)
        if task is None:
            return
        cancelled = await interaction.client.service.cancel_task(task.id)
        await send_ephemeral(interaction, CANCELLED if cancelled else NOT_CANCELLABLE)


async def setup(bot: KontextBot) -> None:
    bot.add_dynamic_items(RerollButton, EditButton, CancelButton)


async def teardown(bot: KontextBot) -> None:
    bot.remove_dynamic_items(RerollButton, EditButton, CancelButton)
