"""The channels /kontext-admin settings take: what Discord's picker offers, and the run-time checks.

Discord's client offers only the option's ``channel_types``, but a raw interaction can carry any
channel, so each command checks the type again and answers a wrong one privately.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.app_commands import AppCommandChannel, AppCommandThread

from bot.i18n import N_, Message, Plural, Text
from cogs.client import KontextBot
from cogs.requests import Interaction

ChannelType = discord.ChannelType
# The mod-log is a message list the bot posts embeds and images into.
MODLOG_TYPES = (ChannelType.text, ChannelType.news)
# Members run commands in a text or announcement channel, in a voice channel's text chat and in
# the posts (threads) of a forum or media channel.
COMMAND_TYPES = (
    ChannelType.text,
    ChannelType.news,
    ChannelType.voice,
    ChannelType.forum,
    ChannelType.media,
)
# What the bot needs in the mod-log channel: (discord.Permissions attribute, Discord's name).
MODLOG_PERMISSIONS = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
    ("attach_files", "Attach Files"),
)
THREAD_TYPES = (ChannelType.public_thread, ChannelType.private_thread, ChannelType.news_thread)
KINDS = {
    ChannelType.category: N_("a category"),
    ChannelType.voice: N_("a voice channel"),
    ChannelType.stage_voice: N_("a stage channel"),
    ChannelType.forum: N_("a forum"),
    ChannelType.media: N_("a media channel"),
    **dict.fromkeys(THREAD_TYPES, N_("a thread")),
}


class ChannelOfTypes(app_commands.Transformer[KontextBot]):
    """A channel option Discord's picker limits to ``types``; the value is passed on as sent."""

    def __init__(self, *types: discord.ChannelType) -> None:
        super().__init__()
        self._types = list(types)

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return self._types

    async def transform(self, interaction: Interaction, value: Any, /) -> Any:
        return value


AnyChannel = AppCommandChannel | AppCommandThread
ModlogChannel = app_commands.Transform[AnyChannel, ChannelOfTypes(*MODLOG_TYPES)]
CommandChannel = app_commands.Transform[AnyChannel, ChannelOfTypes(*COMMAND_TYPES)]


def _type_of(channel: object) -> discord.ChannelType | None:
    """The channel's type, or None when Discord sent no resolved channel (a bare id)."""
    return channel.type if isinstance(channel, AppCommandChannel | AppCommandThread) else None


def _kind(channel_type: discord.ChannelType | None) -> Text:
    if channel_type is None:
        return Text("not readable")
    return Text(KINDS.get(channel_type, N_("a channel of another kind")))


def _modlog_type_refusal(channel: AnyChannel) -> Text | None:
    """Why ``channel`` can't hold the mod-log, or None when its type can."""
    channel_type = _type_of(channel)
    if channel_type in MODLOG_TYPES:
        return None
    return Text(
        "{channel} is {kind}: the mod-log needs a text or announcement channel. "
        "Nothing was changed.",
        channel=f"<#{channel.id}>",
        kind=_kind(channel_type),
    )


def command_channel_refusal(channel: AnyChannel) -> Text | None:
    """Why members can't run commands in ``channel``, or None when they can."""
    channel_type = _type_of(channel)
    if channel_type in COMMAND_TYPES:
        return None
    if channel_type in THREAD_TYPES:
        return Text(
            "{channel} is a thread: allow the channel it belongs to instead, "
            "and its threads are allowed with it. Nothing was changed.",
            channel=f"<#{channel.id}>",
        )
    return Text(
        "{channel} is {kind}, where members can't run commands. "
        "Pick a text, announcement, voice, forum or media channel "
        "(a category's channels are added one by one). Nothing was changed.",
        channel=f"<#{channel.id}>",
        kind=_kind(channel_type),
    )


def _missing_modlog_permissions(interaction: Interaction, channel: AnyChannel) -> list[str]:
    """Discord's names of the permissions the bot lacks to post the mod-log in ``channel``.

    Read from the guild cache, which holds every channel the bot can see: a channel missing
    from it is one the bot can't view.
    """
    guild = interaction.guild
    target = guild.get_channel(channel.id) if guild is not None else None
    me = guild.me if guild is not None else None
    perms = (
        target.permissions_for(me)
        if target is not None and me is not None
        else discord.Permissions.none()
    )
    return [name for attr, name in MODLOG_PERMISSIONS if not getattr(perms, attr)]


def _missing_permissions_text(channel: AnyChannel, missing: list[str]) -> Plural:
    return Plural(
        "The bot can't post the mod-log in {channel}: it lacks {names} there. "
        "Give the bot it in that channel, then set it again. Nothing was changed.",
        "The bot can't post the mod-log in {channel}: it lacks {names} there. "
        "Give the bot them in that channel, then set it again. Nothing was changed.",
        len(missing),
        channel=f"<#{channel.id}>",
        names=", ".join(missing),
    )


def modlog_problem(interaction: Interaction, channel: AnyChannel) -> Message | None:
    """Why the mod-log can't go to ``channel`` (its type, the bot's permissions), or None."""
    refusal = _modlog_type_refusal(channel)
    if refusal is not None:
        return refusal
    missing = _missing_modlog_permissions(interaction, channel)
    return _missing_permissions_text(channel, missing) if missing else None
