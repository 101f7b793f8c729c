"""A private task's way to its member once the interaction token is spent: a direct message.

A private task's messages are ephemeral, and only the interaction's webhook reaches those (for
15 minutes). Past that, or with the reply gone, the Publisher hands its result (or failure)
here: the bot opens its DM with the member and posts there, with the same details and buttons.
Discord's refusals pass through as exceptions (a member's closed DMs: 403, code 50007); the
Publisher reads them like any other post's.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import discord

from bot.ledger import Task, TaskStore
from bot.ports import Published
from cogs.result_message import result_actions, result_embed

log = logging.getLogger(__name__)


class DirectMessages:
    def __init__(
        self, client: discord.Client, ledger: TaskStore, clock: Callable[[], float]
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._clock = clock

    async def post_result(self, task: Task, data: bytes, filename: str) -> Published:
        """The finished image with its details and buttons, in the member's DM."""
        parent = await self._ledger.get(task.parent_task_id) if task.parent_task_id else None
        message = await self._send(
            task,
            embed=result_embed(task, filename, now=self._clock(), parent=parent),
            file=discord.File(io.BytesIO(data), filename=filename),
            view=result_actions(task),
            nonce=f"{task.id}dm",  # Discord de-duplicates a retried post by its nonce
        )
        log.info("task %s: private result sent by direct message %s", task.id, message.id)
        return Published(message.id, message.channel.id)

    async def post_failure(self, task: Task, embed: discord.Embed, view: discord.ui.View) -> int:
        """Why the task failed, in the member's DM."""
        message = await self._send(task, embed=embed, view=view, nonce=f"{task.id}df")
        return message.id

    async def _send(self, task: Task, **kwargs: Any) -> discord.Message:
        channel = await self._client.create_dm(discord.Object(task.requester_id))
        return await channel.send(allowed_mentions=discord.AllowedMentions.none(), **kwargs)
