"""A fake Discord (gateway websocket + REST + CDN) that an unmodified discord.py 2.7.1 talks to.

Public API:
- ``FakeDiscord``: ``await fake.start()`` / ``await fake.stop()``; ``fake.api_url`` /
  ``fake.gateway_url``; world (``member``, ``moderator``, ``channel``, ``add_user``,
  ``add_channel``, ``inject_message``, ``add_cdn_file``); verbs (``slash``, ``message_command``,
  ``click``, ``submit_modal``, ``inject``, ``drop_gateway``, ``fail_next``, ``clock.advance``,
  ``rate_limits = DiscordRateLimits()`` to enforce Discord's buckets);
  waiting (``wait_until``, ``wait_for_call``, ``wait_for_identify``, ``wait_for_conversation``);
  views (``conversation``, ``channel_messages``, ``message``, ``calls``, ``unhandled``).
"""

from .conversation import AttachmentView, Conversation, MessageView
from .model import (
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    MEMBER_PERMISSIONS,
    MODERATOR_PERMISSIONS,
    SEND_MESSAGES,
    Call,
    CallbackRecord,
    FakeChannel,
    FakeClock,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    GatewayFrame,
    UploadedFile,
)
from .ratelimit import DiscordRateLimits
from .server import DiscordError, FakeDiscord, Fault

__all__ = [
    "MANAGE_GUILD",
    "MANAGE_MESSAGES",
    "MEMBER_PERMISSIONS",
    "MODERATOR_PERMISSIONS",
    "SEND_MESSAGES",
    "AttachmentView",
    "Call",
    "CallbackRecord",
    "Conversation",
    "DiscordError",
    "DiscordRateLimits",
    "FakeChannel",
    "FakeClock",
    "FakeDiscord",
    "FakeInteraction",
    "FakeMessage",
    "FakeUser",
    "Fault",
    "GatewayFrame",
    "MessageView",
    "UploadedFile",
]
