"""The task's reply on Discord: reached through the interaction webhook while its token lives,
then through the channel (the bot authored it); outside servers, and for a private task's
ephemeral reply, the token is all there is."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import discord

from bot.ledger import Task

TOKEN_LIFETIME = 15 * 60
TOKEN_MARGIN = 60  # switch to the channel endpoints a minute early
TOKEN_SAFETY = 5  # outside servers the token is all there is: use it until just before its end

# Discord's JSON error codes read here (its REST reference, "JSON Error Codes").
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
INVALID_WEBHOOK_TOKEN = 50027


class ReplyGone(Exception):
    """The task's reply no longer exists (deleted, or never recorded)."""


class ReplyUnreachable(Exception):
    """Outside servers, with the interaction token spent: no way left to reach the member."""


class Replies:
    def __init__(self, client: discord.Client, clock: Callable[[], float]) -> None:
        self._client = client
        self._clock = clock

    def token_fresh(self, task: Task) -> bool:
        """Whether to use the interaction webhook: in a server until a minute before the token
        expires (then the channel), outside servers until just before (there is nothing else)."""
        created = discord.utils.snowflake_time(task.interaction_id).timestamp()
        margin = TOKEN_MARGIN if task.guild_id is not None and not task.private else TOKEN_SAFETY
        return self._clock() - created < TOKEN_LIFETIME - margin

    @staticmethod
    def token_deadline(task: Task) -> float:
        """When a task outside servers must be given up, so the member can still be told."""
        created = discord.utils.snowflake_time(task.interaction_id).timestamp()
        return created + TOKEN_LIFETIME - TOKEN_MARGIN

    @staticmethod
    def check_reachable(task: Task) -> None:
        """Outside servers (the bot's DM, private channels) the bot has no channel access, and
        the channel endpoints never reach an ephemeral (private) reply."""
        if task.guild_id is None or task.private:
            raise ReplyUnreachable

    def by_dm(self, task: Task) -> bool:
        """A private task's result or failure goes by DM once its reply is out of reach."""
        return task.private and (task.reply_gone or not self.token_fresh(task))

    async def edit(
        self,
        task: Task,
        *,
        embed: discord.Embed,
        content: str | None,
        attachments: Sequence[discord.File | discord.Attachment] | None,
        view: discord.ui.View | None = None,
        allowed_mentions: discord.AllowedMentions | None = None,
    ) -> int:
        """Edit the task's reply through the webhook while the token lives, else the channel.
        `attachments`: the message's files after the edit (kept ones by their Attachment)."""
        if task.reply_message_id is None:
            raise ReplyGone
        kwargs: dict[str, Any] = {"embed": embed, "content": content}
        if attachments is not None:
            kwargs["attachments"] = list(attachments)
        if view is not None:
            kwargs["view"] = view
        kwargs["allowed_mentions"] = allowed_mentions or discord.AllowedMentions.none()
        try:
            if self.token_fresh(task):
                webhook = discord.Webhook.partial(
                    task.application_id, task.interaction_token, client=self._client
                )
                try:
                    await webhook.edit_message(task.reply_message_id, **kwargs)
                    return task.reply_message_id
                except discord.HTTPException as exc:
                    if exc.code != INVALID_WEBHOOK_TOKEN:  # fall through to the channel
                        raise
                # The failed attempt read the files to their end: rewind them, or the channel
                # edit would upload empty attachments.
                for file in attachments or ():
                    if isinstance(file, discord.File):
                        file.reset()
            self.check_reachable(task)
            message = self.channel(task).get_partial_message(task.reply_message_id)
            await message.edit(**kwargs)
            return task.reply_message_id
        except discord.NotFound as exc:
            if exc.code in (UNKNOWN_MESSAGE, UNKNOWN_WEBHOOK, 0):
                raise ReplyGone from None
            raise

    async def fetch(self, task: Task) -> discord.Message:
        """The task's reply as Discord has it now (webhook while the token lives, else the
        channel). ReplyGone when it was deleted; ReplyUnreachable outside servers past the
        token."""
        if task.reply_message_id is None:
            raise ReplyGone
        try:
            if self.token_fresh(task):
                webhook = discord.Webhook.partial(
                    task.application_id, task.interaction_token, client=self._client
                )
                try:
                    return await webhook.fetch_message(task.reply_message_id)
                except discord.HTTPException as exc:
                    if exc.code != INVALID_WEBHOOK_TOKEN:
                        raise
            self.check_reachable(task)
            return await self.channel(task).fetch_message(task.reply_message_id)
        except discord.NotFound as exc:
            if exc.code in (UNKNOWN_MESSAGE, UNKNOWN_WEBHOOK, 0):
                raise ReplyGone from None
            raise

    def channel(self, task: Task) -> discord.PartialMessageable:
        return self._client.get_partial_messageable(task.channel_id, guild_id=task.guild_id)
