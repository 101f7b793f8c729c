"""What a task's messages look like: the status embed, the result's details and its actions.

The one place that builds them, for every path that shows a task: the Publisher's edits and
posts, a pick from a set, /show.
"""

from __future__ import annotations

import re

import discord

from bot import custom_ids
from bot.flux import model_name
from bot.i18n import tr
from bot.ledger import ParentAction, Task, TaskKind, TaskState
from bot.recall import message_link
from bot.status import StatusView, format_duration, prompt_excerpt
from cogs.results import (
    CancelButton,
    CompareButton,
    EditButton,
    ReframeSelect,
    RerollButton,
)

_RESULT_FILE = re.compile(rf"^(?:SPOILER_)?kontext-({custom_ids.TASK_ID_PATTERN})\.\w+$")


def result_filename(task: Task, extension: str, *, spoiler: bool) -> str:
    return f"{'SPOILER_' if spoiler else ''}kontext-{task.id}.{extension}"


def attachment_task_id(filename: str) -> str | None:
    """The task whose result an attachment is (see result_filename)."""
    match = _RESULT_FILE.match(filename)
    return match[1] if match else None


def status_embed(view: StatusView) -> discord.Embed:
    embed = discord.Embed(title=view.title, description=view.body, color=view.color)
    embed.set_footer(text=view.footer)
    return embed


def result_embed(
    task: Task, filename: str, *, now: float, parent: Task | None = None
) -> discord.Embed:
    """The details under a finished image (`filename`: its attachment in the same message;
    `parent`: the task it came from, `task.parent_task_id`, when the ledger still has it).
    In the task's language."""
    p = task.params
    locale = task.locale
    took = format_duration(max(0.0, now - task.created_at), locale)
    edit = task.kind == TaskKind.EDIT
    embed = discord.Embed(
        title=tr(locale, "Edit ready") if edit else tr(locale, "Image ready"),
        description=prompt_excerpt(p.prompt, 900),
        color=0x2ECC71,
    )
    embed.add_field(name=tr(locale, "Model"), value=model_name(p.model))
    embed.add_field(
        name=tr(locale, "Aspect ratio"),
        value=p.aspect_ratio or (tr(locale, "input's") if edit else "16:9"),
    )
    embed.add_field(name=tr(locale, "Requested by"), value=f"<@{task.requester_id}>")
    embed.add_field(name=tr(locale, "Took"), value=took)
    if task.ref_name:
        embed.add_field(name=tr(locale, "Reference"), value=prompt_excerpt(task.ref_name, 32))
    if parent is not None:
        embed.add_field(name=tr(locale, "From"), value=parent_link(task, parent), inline=False)
    embed.set_image(url=f"attachment://{filename}")
    embed.set_footer(text=tr(locale, "Task {id}", id=task.id))
    return embed


def parent_link(task: Task, parent: Task) -> str:
    """Where a result came from: "Edit of [task abc](link to its message)", in the task's
    language."""
    locale = task.locale
    if parent.in_set:
        name = tr(locale, "set {id}", id=parent.set_id)
    else:
        name = tr(locale, "task {id}", id=parent.id)
    link = message_link(parent)
    source = name if link is None else f"[{name}]({link})"
    match task.parent_action:
        case ParentAction.REROLL:
            return tr(locale, "Re-roll of {source}", source=source)
        case ParentAction.EDIT:
            return tr(locale, "Edit of {source}", source=source)
        case ParentAction.REFRAME:
            ratio = task.params.aspect_ratio or tr(locale, "same frame")
            return tr(locale, "Reframe ({ratio}) of {source}", ratio=ratio, source=source)
        case ParentAction.PICK:
            return tr(locale, "Pick {index} of {source}", index=parent.set_index, source=source)
        case _:
            return tr(locale, "From {source}", source=source)


def status_actions(task: Task) -> discord.ui.View:
    """Cancel while the task is queued; once it is at KIE the next status edit drops it."""
    view = discord.ui.View(timeout=None)
    if task.state == TaskState.QUEUED:
        view.add_item(CancelButton(task.id, locale=task.locale))
    view.stop()
    return view


def result_actions(task: Task) -> discord.ui.View:
    """Every action on a finished single result: Re-roll, Edit, Compare (edits), and the
    Reframe select in a row of its own."""
    view = _actions(task, reroll=True, edit=True, compare=task.kind == TaskKind.EDIT)
    view.add_item(ReframeSelect(task.id, locale=task.locale))
    return view


def failure_actions(task: Task) -> discord.ui.View:
    """A failed task offers a re-roll where trying again can help."""
    return _actions(task, reroll=task.rerollable, edit=False)


def _actions(task: Task, *, reroll: bool, edit: bool, compare: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    if reroll:
        view.add_item(RerollButton(task.id, locale=task.locale))
    if edit:
        view.add_item(EditButton(task.id, locale=task.locale))
    if compare:
        view.add_item(CompareButton(task.id, locale=task.locale))
    # The clicks are handled by these DynamicItems (cogs/results.py), which survive restarts;
    # a finished view is sent without being stored in memory for every result ever posted.
    view.stop()
    return view
