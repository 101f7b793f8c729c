"""A fake Discord (gateway websocket + REST + CDN) that an unmodified discord.py 2.7.1 talks to.

Public API:
- ``FakeDiscord``: ``await fake.start()`` / ``await fake.stop()``; ``fake.api_url`` /
  ``fake.gateway_url``; world (``member``, ``moderator``, ``channel``, ``add_user``,
  ``add_channel``, ``inject_message``, ``add_cdn_file``); verbs (``slash``, ``message_command``,
  ``click``, ``select`` (a string select's values), ``submit_modal`` (text inputs and
  selects), ``autocomplete`` (the choices for a focused option: at most 25, name 1-100,
  value <= 100), ``inject``, ``drop_gateway``, ``fail_next`` (Discord's 429, or
  ``cloudflare=True``; ``when=`` narrows the match), ``clock.advance``);
  Discord's rules, on by default: the 3-second rule (``enforce_initial_response_deadline``),
  the rate-limit buckets (``rate_limits``, a ``DiscordRateLimits``; None turns them off),
  IDENTIFY intents (``allowed_intents``), message shapes (limits.py: 10 attachments, 5 action
  rows, select options and values, custom ids; 400 50035 with Discord's error tree);
  ``violations()`` lists what the client broke;
  waiting (``wait_until``, ``wait_for_call``, ``wait_for_identify``, ``wait_for_conversation``);
  views (``conversation``, ``channel_messages``, ``message``, ``calls``, ``unhandled``).
"""

from .conversation import AttachmentView, Conversation, MessageView
from .model import (
    ANNOUNCEMENT_CHANNEL,
    ATTACH_FILES,
    CATEGORY_CHANNEL,
    EMBED_LINKS,
    FORUM_CHANNEL,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    MEDIA_CHANNEL,
    MEMBER_PERMISSIONS,
    MODERATOR_PERMISSIONS,
    SEND_MESSAGES,
    STAGE_CHANNEL,
    TEXT_CHANNEL,
    VIEW_CHANNEL,
    VOICE_CHANNEL,
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
from .server import DiscordError, FakeDiscord, Fault, LateResponse

__all__ = [
    "ANNOUNCEMENT_CHANNEL",
    "ATTACH_FILES",
    "CATEGORY_CHANNEL",
    "EMBED_LINKS",
    "FORUM_CHANNEL",
    "MANAGE_GUILD",
    "MANAGE_MESSAGES",
    "MEDIA_CHANNEL",
    "MEMBER_PERMISSIONS",
    "MODERATOR_PERMISSIONS",
    "SEND_MESSAGES",
    "STAGE_CHANNEL",
    "TEXT_CHANNEL",
    "VIEW_CHANNEL",
    "VOICE_CHANNEL",
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
    "LateResponse",
    "MessageView",
    "UploadedFile",
]
