"""What the core hands over for people to see, and what it hears back: the Publisher port.

The core (runner, executors, moderation) depends only on these Protocols and values. The
Discord implementation lives in cogs/, beside the DynamicItems of the buttons it puts on
messages (cogs/publisher.py, cogs/modlog.py; bot/__main__ hands them to the client). It turns
Discord's REST error codes into a `Refusal`: no discord exception reaches the core.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.i18n import Message
from bot.ledger import Task


class Refusal(enum.StrEnum):
    """Why a message could not be published, as the adapter reports it."""

    EXPIRED = "expired"  # outside servers the interaction token ran out: nothing else reaches
    DELETED = "deleted"  # the reply is gone and there is no channel to post in
    TOO_LARGE = "too_large"  # over the upload limit even after re-encoding
    FORBIDDEN = "forbidden"  # the bot may not post there
    DM_CLOSED = "dm_closed"  # the member does not take direct messages from the bot
    REFUSED = "refused"  # any other refusal: trying again cannot help
    TRANSIENT = "transient"  # the platform did not answer properly: worth another try


@dataclass(frozen=True)
class Published:
    """The message is out; `message_id` is the message that shows it, in `channel_id` when
    that is not the task's channel (a private result sent by direct message)."""

    message_id: int
    channel_id: int | None = None


@dataclass(frozen=True)
class NotPublished:
    """The message could not be published; `detail` is for the log only."""

    refusal: Refusal
    detail: str = ""


PublishOutcome = Published | NotPublished


@dataclass(frozen=True)
class ResultImage:
    """A finished image, ready to post: its bytes and its file extension ("png", "jpg")."""

    data: bytes
    extension: str
    spoiler: bool = False


class Publisher(Protocol):
    """Shows a task to the member who asked for it: its status, its result, its failure."""

    status_context: Callable[[Task], dict[str, Any]]

    def show_status(self, task: Task) -> None:
        """Ask for the task's current status to be shown (throttled; fire and forget)."""

    async def post_result(self, task: Task, image: ResultImage) -> PublishOutcome:
        """Publish the result with its details and buttons."""

    async def post_failure(self, task: Task) -> PublishOutcome:
        """Show why the task failed."""

    def token_deadline(self, task: Task) -> float:
        """When a task outside servers must be given up so the member can still be told."""

    def forget(self, task_id: str) -> None:
        """Drop what is kept in memory about a finished task."""

    async def close(self) -> None:
        """Stop: pending status edits are dropped, the ones under way finish."""


class ModLogSink(Protocol):
    """Where moderation writes: a server's mod-log channel (outside servers, the operator's).

    Best effort: an entry that cannot be posted is logged by the adapter and not retried.
    """

    async def post_task(self, channel_id: int, guild_id: int | None, task: Task) -> PublishOutcome:
        """One compact entry for a finished task."""

    async def post_alert(
        self, channel_id: int, guild_id: int | None, text: Message
    ) -> PublishOutcome:
        """An alert to moderators (the bot's KIE credits), in the server's language."""


class ResultArchive(Protocol):
    """Where a delivered result can be found again on the platform (for /show)."""

    async def posted_image_url(self, task: Task) -> str | None:
        """A URL of the task's image on the message that delivered it; None when that message
        or its image is gone or out of the bot's reach (a private result, a DM)."""
