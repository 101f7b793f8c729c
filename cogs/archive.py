"""The ResultArchive port on Discord: a delivered result's image, read back from its message."""

from __future__ import annotations

import logging

import aiohttp
import discord

from bot.ledger import Task
from cogs.result_message import attachment_task_id

log = logging.getLogger(__name__)

# No answer from Discord at all: the image is not found this time.
CONNECTION_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class DiscordArchive:
    """Fetches the bot's own result message (GET /channels/{id}/messages/{id}) and finds the
    task's attachment on it by name (`kontext-<task id>.<ext>`, maybe SPOILER_ prefixed; a
    set's message holds one per image)."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def posted_image_url(self, task: Task) -> str | None:
        if task.result_message_id is None or task.private or task.guild_id is None:
            return None  # ephemeral, or outside servers: no channel the bot may read
        channel = self._client.get_partial_messageable(
            task.result_channel_id or task.channel_id, guild_id=task.guild_id
        )
        try:
            message = await channel.fetch_message(task.result_message_id)
        except discord.HTTPException as exc:
            log.info("result message of task %s not read: %s %s", task.id, exc.status, exc.code)
            return None
        except CONNECTION_ERRORS as exc:
            log.info("result message of task %s not read: %s", task.id, type(exc).__name__)
            return None
        for attachment in message.attachments:
            if attachment_task_id(attachment.filename) == task.id:
                return attachment.url
        return None
