"""The persistent actions on every result — "Re-roll", "Edit", "Compare" (edits) and the
"Reframe" select, with their prompt modals — and "Cancel" on a queued task's status."""

from __future__ import annotations

import io
import logging
import re
from typing import TYPE_CHECKING, Any, Self

import discord

from bot import custom_ids
from bot.i18n import Text, tr, translated
from bot.ledger import ParentAction, Task, TaskKind, TaskParams
from bot.validation import MAX_TOLERANCE_EDIT, InputRejected
from cogs.buttons import TaskButton
from cogs.client import send_ephemeral
from cogs.generate import ASPECT_CHOICES
from cogs.requests import (
    AnyInteraction,
    Interaction,
    PromptModal,
    kontext,
    locale_of,
    refused_for_permissions,
    submit_request,
)

if TYPE_CHECKING:
    from cogs.client import KontextBot

NOT_YOURS = Text(
    "This isn't yours: only the member who asked for this image "
    "(or a moderator) can use its buttons."
)
GONE = Text("This task no longer exists, so its buttons don't work any more.")
CANCELLED = Text("Cancelled. Your credits were given back.")
NOT_CANCELLABLE = Text("This task was already sent to KIE; it can't be cancelled.")
# A prompt for KIE, which follows English best: it stays English in every language.
REFRAME_PROMPT = "Extend the scene to fill the new frame; keep the subject and style unchanged"
OUTPUT_REMOVED = Text("A moderator removed this image, so it can't be compared.")

log = logging.getLogger(__name__)


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
        # The parent's input (its stored bytes, prepared again) is read after the answer.
        await submit_request(
            interaction,
            kind=parent.kind,
            build=lambda: parent.params,
            parent=parent,
            parent_action=ParentAction.REROLL,
            parents_input=True,
            count=parent.set_size,  # a set's Re-roll makes the whole set again
            ref_name=parent.ref_name,
        )


class EditButton(TaskButton, template=custom_ids.EDIT_TEMPLATE):
    LABEL = custom_ids.EDIT_LABEL
    STYLE = discord.ButtonStyle.primary
    EMOJI = "✏️"
    make_id = staticmethod(custom_ids.edit_id)

    async def clicked(self, interaction: Interaction) -> None:
        await _edit_result(
            interaction,
            self.task_id,
            title=tr(locale_of(interaction), "Edit this image"),
            action=ParentAction.EDIT,
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


async def _edit_result(
    interaction: Interaction,
    task_id: str,
    *,
    title: str,
    action: ParentAction,
    aspect_ratio: str | None = None,
    default: str | None = None,
) -> None:
    """Edit and Reframe: a prompt box, then an edit of the task's result (its KIE URL as the
    input), in a new frame for Reframe. Owner or moderator only."""
    parent = await _owned_task(interaction, task_id)
    if parent is None or await refused_for_permissions(interaction):
        return
    try:
        source = interaction.client.service.result_as_input(parent)
    except InputRejected as exc:
        await send_ephemeral(interaction, exc.user_message)
        return

    async def on_prompt(modal_interaction: Interaction, prompt: str) -> None:
        await submit_request(
            modal_interaction,
            kind=TaskKind.EDIT,
            build=lambda: _edit_params(
                modal_interaction, parent, prompt, aspect_ratio=aspect_ratio
            ),
            input_image_url=source,
            parent=parent,
            parent_action=action,
        )

    await interaction.response.send_modal(
        PromptModal(
            title=title,
            on_prompt=on_prompt,
            custom_id=custom_ids.modal_id(),
            default=default,
            locale=locale_of(interaction),
        )
    )


def _edit_params(
    interaction: Interaction, parent: Task, prompt: str, *, aspect_ratio: str | None = None
) -> TaskParams:
    """An edit of `parent`'s result with a new prompt (and frame), its other options kept."""
    p = parent.params
    return interaction.client.service.build_params(
        prompt=prompt,
        edit=True,
        aspect_ratio=aspect_ratio or p.aspect_ratio,
        model=p.model,
        output_format=p.output_format,
        enhance_prompt=p.enhance_prompt,
        safety_tolerance=min(p.safety_tolerance, MAX_TOLERANCE_EDIT),
    )


class ReframeSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]], template=custom_ids.REFRAME_TEMPLATE
):
    """The six aspect ratios under a result; a choice opens a prompt box (prefilled with
    REFRAME_PROMPT), then edits the result into that frame (KIE pads or crops)."""

    def __init__(self, task_id: str, *, locale: str | None = None) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=custom_ids.reframe_id(task_id),
                placeholder=tr(locale, custom_ids.REFRAME_PLACEHOLDER),
                options=[
                    # The same words as /imagine's aspect_ratio choices, in the task's language.
                    discord.SelectOption(
                        label=translated(locale, c.name, context="choice name") or c.name,
                        value=c.value,
                    )
                    for c in ASPECT_CHOICES
                ],
            ),
            row=1,
        )
        self.task_id = task_id

    @classmethod
    async def from_custom_id(
        cls, interaction: AnyInteraction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["task_id"])

    async def callback(self, interaction: AnyInteraction) -> None:
        await self.chosen(kontext(interaction), self.item.values[0])

    async def chosen(self, interaction: Interaction, ratio: str) -> None:
        await _edit_result(
            interaction,
            self.task_id,
            title=tr(locale_of(interaction), "Reframe to {ratio}", ratio=ratio),
            action=ParentAction.REFRAME,
            aspect_ratio=ratio,
            default=REFRAME_PROMPT,
        )


class CompareButton(TaskButton, template=custom_ids.COMPARE_TEMPLATE):
    """An edit's input and result side by side, shown privately to whoever clicks (it shows
    nothing the channel could not already see)."""

    LABEL = custom_ids.COMPARE_LABEL
    EMOJI = "↔️"
    make_id = staticmethod(custom_ids.compare_id)

    async def clicked(self, interaction: Interaction) -> None:
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.HTTPException as exc:
            log.warning("could not answer Compare on task %s: %s", self.task_id, exc.status)
            return
        service = interaction.client.service
        task = await service.get_task(self.task_id)
        if task is None or task.output_deleted_by is not None:
            await send_ephemeral(interaction, GONE if task is None else OUTPUT_REMOVED)
            return
        shown = interaction.message.attachments if interaction.message else []
        try:
            data = await service.compare.side_by_side(
                task,
                shown_result_url=next((a.url for a in shown if task.id in a.filename), None),
            )
        except InputRejected as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        name = f"{'SPOILER_' if task.spoiler else ''}compare-{task.id}.jpg"
        try:
            await interaction.followup.send(
                tr(locale_of(interaction), "Input (left) and result (right)."),
                file=discord.File(io.BytesIO(data), filename=name),
                ephemeral=True,
            )
        except discord.HTTPException as exc:
            log.warning("could not show the comparison of task %s: %s", task.id, exc.status)


ITEMS = (RerollButton, EditButton, CancelButton, ReframeSelect, CompareButton)


async def setup(bot: KontextBot) -> None:
    bot.add_dynamic_items(*ITEMS)


async def teardown(bot: KontextBot) -> None:
    bot.remove_dynamic_items(*ITEMS)
