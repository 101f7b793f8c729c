"""The fake's data: clock, snowflakes, recorded calls, users, channels, messages, interactions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
INTERACTION_TOKEN_TTL = 15 * 60.0

# Permission bits used by the fake.
ADD_REACTIONS = 1 << 6
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
MEMBER_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | ADD_REACTIONS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_APPLICATION_COMMANDS
)
MODERATOR_PERMISSIONS = MANAGE_MESSAGES | MANAGE_GUILD
# What Discord grants an app in a DM or a private channel (no roles there).
PRIVATE_CHANNEL_APP_PERMISSIONS = (
    VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY
)

EPHEMERAL = 1 << 6
LOADING = 1 << 7


class FakeClock:
    """Wall-clock time plus an offset the test moves with ``advance``."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        """Seconds since the Unix epoch, as the fake sees it."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (ages interaction tokens)."""
        self.offset += seconds


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def snowflake_time(snowflake: int) -> float:
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000.0


@dataclass
class UploadedFile:
    """One ``files[n]`` part of a multipart request."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Call:
    """One HTTP request the fake received, and what it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[UploadedFile]
    status: int = 0
    time: float = 0.0
    response: Any = None
    kind: str = "rest"

    def __repr__(self) -> str:
        return f"<Call {self.method} {self.path} -> {self.status}>"


@dataclass
class GatewayFrame:
    """One gateway payload, ``direction`` is "recv" (from the client) or "send"."""

    direction: str
    op: int
    t: str | None
    d: Any
    time: float


@dataclass
class CdnFile:
    id: int
    filename: str
    data: bytes
    content_type: str


@dataclass
class FakeUser:
    """A guild member (or the bot). ``permissions`` is the guild-level bitfield."""

    id: int
    username: str
    permissions: int
    roles: list[int] = field(default_factory=list)
    bot: bool = False
    dms_closed: bool = False  # the member refuses DMs from the bot: sends there answer 50007
    locale: str = "en-US"  # the Discord client's language: every interaction's `locale`

    def user_obj(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.username,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }

    def member_obj(self, joined_at: str, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user": self.user_obj(),
            "roles": [str(r) for r in self.roles],
            "flags": 0,
            "joined_at": joined_at,
            "deaf": False,
            "mute": False,
            "nick": None,
            "avatar": None,
            "premium_since": None,
            "pending": False,
        }
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


# Guild channel types (Discord's ChannelType) and the fields each adds to a channel object.
TEXT_CHANNEL = 0
VOICE_CHANNEL = 2
CATEGORY_CHANNEL = 4
ANNOUNCEMENT_CHANNEL = 5
STAGE_CHANNEL = 13
FORUM_CHANNEL = 15
MEDIA_CHANNEL = 16
_TEXT_FIELDS: dict[str, Any] = {"topic": None, "rate_limit_per_user": 0, "last_message_id": None}
_VOICE_FIELDS: dict[str, Any] = {
    "bitrate": 64000,
    "user_limit": 0,
    "rtc_region": None,
    "rate_limit_per_user": 0,
    "last_message_id": None,
}
_FORUM_FIELDS: dict[str, Any] = {
    **_TEXT_FIELDS,
    "available_tags": [],
    "default_reaction_emoji": None,
    "default_sort_order": None,
    "default_thread_rate_limit_per_user": 0,
}
GUILD_CHANNEL_FIELDS: dict[int, dict[str, Any]] = {
    TEXT_CHANNEL: _TEXT_FIELDS,
    ANNOUNCEMENT_CHANNEL: _TEXT_FIELDS,
    VOICE_CHANNEL: {**_VOICE_FIELDS, "video_quality_mode": 1},
    STAGE_CHANNEL: {**_VOICE_FIELDS, "topic": None},
    CATEGORY_CHANNEL: {},
    FORUM_CHANNEL: {**_FORUM_FIELDS, "default_forum_layout": 0},
    MEDIA_CHANNEL: _FORUM_FIELDS,
}
# Channels without a message list of their own: a post there answers 400/50008.
NO_MESSAGES_CHANNEL_TYPES = (CATEGORY_CHANNEL, FORUM_CHANNEL, MEDIA_CHANNEL)

# Channel types (Discord's ChannelType) the fake knows.
DM_CHANNEL = 1
GROUP_DM_CHANNEL = 3
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = (PUBLIC_THREAD, PRIVATE_THREAD)

# Interaction contexts (Discord's InteractionContextType).
CONTEXT_GUILD = 0
CONTEXT_BOT_DM = 1
CONTEXT_PRIVATE_CHANNEL = 2


@dataclass
class FakeChannel:
    """A channel. ``bot_can_post=False`` makes channel posts answer 403/50013.

    ``type``: 0 text, 2 voice, 4 category, 5 announcement, 13 stage, 15 forum, 16 media (and the
    DM/thread types below). ``bot_deny`` holds permission bits a member overwrite denies the bot
    in this channel (e.g. ``EMBED_LINKS``); it shows in GUILD_CREATE and in ``app_permissions``.

    ``guild_id`` is None for a DM or a group DM; a thread has ``parent_id``. ``bot_has_access``
    False (a private channel the bot is not in: user-installed use) makes every channel
    endpoint answer 403/50001 Missing Access.
    """

    id: int
    name: str
    guild_id: int | None
    position: int = 0
    bot_can_post: bool = True
    type: int = 0
    parent_id: int | None = None
    bot_has_access: bool = True
    recipients: list[dict[str, Any]] = field(default_factory=list)
    bot_deny: int = 0  # permission bits denied to the bot here (a member overwrite)

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def is_private(self) -> bool:
        """A DM or group DM (no guild)."""
        return self.guild_id is None

    def channel_obj(self, bot_id: int) -> dict[str, Any]:
        if self.is_private:
            return {
                "id": str(self.id),
                "type": self.type,
                "last_message_id": None,
                "recipients": list(self.recipients),
                "flags": 0,
                **({"name": self.name} if self.type == GROUP_DM_CHANNEL else {}),
            }
        if self.is_thread:
            return {
                "id": str(self.id),
                "type": self.type,
                "name": self.name,
                "guild_id": str(self.guild_id),
                "parent_id": str(self.parent_id),
                "owner_id": str(bot_id),
                "rate_limit_per_user": 0,
                "last_message_id": None,
                "message_count": 0,
                "member_count": 1,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": "2026-01-01T00:00:00+00:00",
                    "locked": False,
                    **({"invitable": True} if self.type == PRIVATE_THREAD else {}),
                },
                "flags": 0,
            }
        overwrites = []
        if self.bot_denied:
            overwrites.append(
                {"id": str(bot_id), "type": 1, "allow": "0", "deny": str(self.bot_denied)}
            )
        return {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "guild_id": str(self.guild_id),
            "parent_id": str(self.parent_id) if self.parent_id is not None else None,
            "nsfw": False,
            "permission_overwrites": overwrites,
            "flags": 0,
            **GUILD_CHANNEL_FIELDS.get(self.type, GUILD_CHANNEL_FIELDS[TEXT_CHANNEL]),
        }

    @property
    def bot_denied(self) -> int:
        """Permission bits an overwrite denies the bot in this channel."""
        return self.bot_deny | (0 if self.bot_can_post else SEND_MESSAGES)


@dataclass
class FakeMessage:
    """A message as the fake stores it; ``history`` holds earlier versions (wire dicts)."""

    id: int
    channel_id: int
    author: dict[str, Any]
    kind: str  # "original" | "followup" | "channel" | "user"
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    timestamp: str = ""
    edited_timestamp: str | None = None
    deleted: bool = False
    interaction_id: int | None = None
    message_reference: dict[str, Any] | None = None
    webhook_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    nonce: Any = None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": 0 if self.kind in ("channel", "user") else 20,
            "content": self.content,
            "channel_id": str(self.channel_id),
            "author": self.author,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [dict(a) for a in self.attachments],
            "embeds": [dict(e) for e in self.embeds],
            "components": list(self.components),
            "pinned": False,
            "flags": self.flags,
        }
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
            data["type"] = 19
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.nonce is not None:
            data["nonce"] = self.nonce
        return data


@dataclass
class CallbackRecord:
    """One interaction callback (``type`` 4/5/6/7/8/9) and its ``data``."""

    type: int
    data: dict[str, Any]
    call: Call


@dataclass
class FakeInteraction:
    """An injected interaction and what the bot did with it."""

    id: int
    token: str
    type: int
    payload: dict[str, Any]
    created_at: float
    user: FakeUser
    channel_id: int
    attachment_size_limit: int
    responses: list[CallbackRecord] = field(default_factory=list)
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    message_id: int | None = None  # the message a component/modal interaction came from
    target_message_id: int | None = None  # message context menu target

    @property
    def acknowledged(self) -> bool:
        return bool(self.responses)

    @property
    def response_type(self) -> int | None:
        return self.responses[0].type if self.responses else None

    def __repr__(self) -> str:
        return f"<FakeInteraction id={self.id} type={self.type}>"
