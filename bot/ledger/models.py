"""The task model: what the ledger stores about each image request."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

from bot.flux import DEFAULT_MODEL


class TaskState(enum.StrEnum):
    QUEUED = "queued"  # accepted, waiting for its turn (scheduler)
    SUBMITTING = "submitting"  # upload/generate under way; no KIE task id yet
    GENERATING = "generating"  # KIE has the task (kie_task_id set); followed by the poll loop
    DELIVERING = "delivering"  # KIE finished; downloading and posting the image
    DONE = "done"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TaskState.DONE, TaskState.FAILED})
OPEN_STATES = frozenset(TaskState) - TERMINAL_STATES


class ParentAction(enum.StrEnum):
    """How a task came from its parent (`parent_task_id`); its details link back to it."""

    REROLL = "reroll"
    EDIT = "edit"
    REFRAME = "reframe"
    PICK = "pick"  # one image of a set, posted alone


class TaskKind(enum.StrEnum):
    IMAGINE = "imagine"
    EDIT = "edit"


@dataclass(frozen=True)
class TaskParams:
    """What the member asked for, in KIE's own vocabulary."""

    prompt: str
    model: str = DEFAULT_MODEL
    aspect_ratio: str | None = None  # None: KIE's default (16:9), or the input's ratio for edits
    output_format: str = "jpeg"
    enhance_prompt: bool = False
    safety_tolerance: int = 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "model": self.model,
            "aspect_ratio": self.aspect_ratio,
            "output_format": self.output_format,
            "enhance_prompt": self.enhance_prompt,
            "safety_tolerance": self.safety_tolerance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskParams:
        return cls(
            prompt=str(data["prompt"]),
            model=str(data.get("model") or DEFAULT_MODEL),
            aspect_ratio=data.get("aspect_ratio"),
            output_format=str(data.get("output_format") or "jpeg"),
            enhance_prompt=bool(data.get("enhance_prompt", False)),
            safety_tolerance=int(data.get("safety_tolerance", 2)),
        )


@dataclass(frozen=True)
class Task:
    id: str  # our own id: 12 lowercase hex characters; appears in custom ids and logs
    kind: TaskKind
    params: TaskParams
    requester_id: int
    guild_id: int | None
    channel_id: int
    application_id: int
    interaction_id: int
    interaction_token: str
    created_at: float  # unix seconds
    updated_at: float
    state: TaskState = TaskState.QUEUED
    reply_message_id: int | None = None  # the @original message, once known
    kie_task_id: str | None = None
    input_image_url: str | None = None  # KIE upload URL used as inputImage
    parent_task_id: str | None = None  # re-roll / edit of an earlier result
    callback_secret: str | None = None
    attempts: int = 0  # generate attempts (429s put the task back in the queue)
    submitted_at: float | None = None
    completed_at: float | None = None  # KIE reported the outcome
    delivered_at: float | None = None
    result_url: str | None = None
    result_message_id: int | None = None  # the message that carries the image
    error_code: str | None = None  # our own outcome code: see bot.outcomes
    error_message: str | None = None  # user-safe text
    cost: float = 0.0  # credits charged against quotas
    # Control state (schema 4; until then kept in a JSON `extra` bag):
    retry_at: float | None = None  # unix time of the next submission after a 429 / lost answer
    delivery_attempts: int = 0  # failed attempts to post the result
    rerollable: bool = True  # the failure message offers a re-roll button
    reply_gone: bool = False  # the @original reply was deleted: post anew in the channel
    upload_limit: int | None = None  # the channel's upload limit in bytes (None: the default)
    spoiler: bool = False  # the server posts results as spoilers
    refunded: bool = False  # the day's credits were given back (set once, compare-and-set)
    output_deleted_by: int | None = None  # the moderator who deleted the posted image
    # Sets (schema 5): the images of one request with `count` > 1 share a set id (the first
    # image's task id) and one message; `set_index` is the image's place in it (1-based).
    set_id: str | None = None
    set_index: int = 0  # 0: not part of a set
    set_size: int = 1
    private: bool = False  # every message of the task is ephemeral (only the member sees it)
    result_channel_id: int | None = None  # where the result message is, when not channel_id
    parent_action: ParentAction | None = None  # how it came from parent_task_id
    # Schema 6: the member's Discord locale (the language of this task's messages; None:
    # English), and the saved reference (/ref) the input came from.
    locale: str | None = None
    ref_name: str | None = None
    # Schema 7 (issue 15): the process working on the task while it is open, until when (unix
    # seconds by the database's clock); another process takes it over once the lease runs out.
    owner: str | None = None
    lease_until: float = 0.0

    @property
    def in_set(self) -> bool:
        return self.set_id is not None

    @property
    def input_key(self) -> str:
        """Under which task id the input image is stored: a set stores it once, for all."""
        return self.set_id or self.id

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    def with_changes(self, **changes: Any) -> Task:
        return replace(self, **changes)
