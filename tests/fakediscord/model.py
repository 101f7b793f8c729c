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


@dataclass
class FakeChannel:
    """A guild text channel. ``bot_can_post=False`` makes channel posts answer 403/50013."""

    id: int
    name: str
    guild_id: int
    position: int = 0
    bot_can_post: bool = True

    def channel_obj(self, bot_id: int) -> dict[str, Any]:
        overwrites = []
        if not self.bot_can_post:
            overwrites.append(
                {"id": str(bot_id), "type": 1, "allow": "0", "deny": str(SEND_MESSAGES)}
            )
        return {
            "id": str(self.id),
            "type": 0,
            "name": self.name,
            "position": self.position,
            "guild_id": str(self.guild_id),
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "permission_overwrites": overwrites,
            "flags": 0,
        }


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
    """One interaction callback (``type`` 4/5/6/7/9) and its ``data``."""

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
