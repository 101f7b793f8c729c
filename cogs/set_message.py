"""A set's one message (`count` > 1): its status, its images as they arrive, failures named.

Every image of a set is its own task with its own lifecycle; they share the reply. Each
delivery reads the message as Discord has it, keeps the images already there (by attachment
id, in the set's order) and adds its own, so an image whose post went out before a restart is
found in the message and never posted twice. The DiscordPublisher holds the set's lock around
every call here.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import discord

from bot.ledger import Task, TaskState, TaskStore
from bot.status import StatusView, render_set_status
from cogs.picks import set_actions
from cogs.replies import Replies
from cogs.result_message import attachment_task_id, status_embed


class SetMessages:
    def __init__(self, ledger: TaskStore, replies: Replies, clock: Callable[[], float]) -> None:
        self._ledger = ledger
        self._replies = replies
        self._clock = clock
        # Set id -> the tasks whose image is in the message (as this process last saw it).
        self._delivered: dict[str, set[str]] = {}

    async def status(
        self, task: Task, *, estimate: float | None
    ) -> tuple[StatusView, discord.ui.View] | None:
        """The set's status and buttons now; None once every image is finished (the last
        delivery or failure showed the final state)."""
        members, delivered = await self._members(task)
        if all(m.terminal for m in members):
            return None
        view = render_set_status(members, delivered=delivered, now=self._clock(), estimate=estimate)
        return view, set_actions(members, delivered)

    async def post_image(self, task: Task, data: bytes, filename: str) -> int:
        """Add the image of `task` to the set's message; its id. The Publisher's exceptions."""
        members, _ = await self._members(task)
        message = await self._replies.fetch(task)
        present = _results_in(message)
        delivered = self._delivered.setdefault(self._key(task), set())
        delivered.update(present)
        if task.id in present:
            return message.id  # posted before a restart: never twice
        files: list[discord.File | discord.Attachment] = []
        for member in members:
            if member.id == task.id:
                files.append(discord.File(io.BytesIO(data), filename=filename))
            elif member.id in present:
                files.append(present[member.id])
        now_in = frozenset(delivered | {task.id} | _done(members))
        await self._replies.edit(
            task,
            embed=self._embed(members, now_in),
            content=f"<@{task.requester_id}>",
            attachments=files,
            view=set_actions(members, now_in),
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(task.requester_id)]),
        )
        delivered.add(task.id)
        self._forget_when_finished(task, members)
        return message.id

    async def show_failure(self, task: Task) -> int:
        """Name the failed image in the set's message; the images there stay."""
        members, delivered = await self._members(task)
        message_id = await self._replies.edit(
            task,
            embed=self._embed(members, delivered),
            content=None,
            attachments=None,
            view=set_actions(members, delivered),
        )
        self._forget_when_finished(task, members)
        return message_id

    def _forget_when_finished(self, task: Task, members: Sequence[Task]) -> None:
        """After the set's last image (delivered or failed) nothing more is kept about it."""
        if all(m.terminal or m.id == task.id for m in members):
            self._delivered.pop(self._key(task), None)

    async def _members(self, task: Task) -> tuple[list[Task], frozenset[str]]:
        members = await self._ledger.set_members(self._key(task))
        seen = self._delivered.get(self._key(task), set())
        return members, frozenset(seen | _done(members))

    def _embed(self, members: Sequence[Task], delivered: frozenset[str]) -> discord.Embed:
        return status_embed(render_set_status(members, delivered=delivered, now=self._clock()))

    @staticmethod
    def _key(task: Task) -> str:
        return task.set_id or task.id


def _done(members: Sequence[Task]) -> set[str]:
    return {m.id for m in members if m.state is TaskState.DONE}


def _results_in(message: discord.Message) -> dict[str, discord.Attachment]:
    found: dict[str, Any] = {}
    for attachment in message.attachments:
        task_id = attachment_task_id(attachment.filename)
        if task_id is not None:
            found[task_id] = attachment
    return found
