"""What can happen to a task (events) and what is known about it when it does (facts).

Events are plain values: the runner turns an answer, an exception or a timer into one of these,
and `bot.lifecycle.table` says what follows. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from bot.ports import Refusal


class Event:
    """Base of every task event (a marker: the table matches on the subclass)."""


# ---- submission -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted(Event):
    """The task was written to the ledger as QUEUED by a command."""


@dataclass(frozen=True)
class Dispatched(Event):
    """The scheduler gave the task its turn to be submitted."""


@dataclass(frozen=True)
class InputMissing(Event):
    """An edit's input image is neither uploaded to KIE nor stored any more."""


@dataclass(frozen=True)
class Submitted(Event):
    """KIE accepted the create and answered with its task id."""

    kie_task_id: str


@dataclass(frozen=True)
class RateLimited(Event):
    """KIE answered 429 to the upload or the create: it dropped the request."""


@dataclass(frozen=True)
class CreateAnswerLost(Event):
    """The request was sent but no usable answer came back (reset mid-answer, timeout, garbage).

    `maybe_created`: it was the create, so KIE may have made (and charged for) the task.
    """

    maybe_created: bool


@dataclass(frozen=True)
class CreateRefused(Event):
    """The upload or the create failed with KIE's `code` (None: no code); `retryable` as KIE's
    error class says (5xx, maintenance, a connection that was never made...)."""

    code: int | None
    retryable: bool


@dataclass(frozen=True)
class CancelRequested(Event):
    """The member (or a moderator) pressed Cancel: only a task not yet sent to KIE can end so."""


# ---- following --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollDue(Event):
    """The time to ask KIE about the task (record-info) has come."""


class Progress(enum.StrEnum):
    PENDING = "pending"  # KIE is still generating
    SUCCESS = "success"
    FAILED = "failed"  # create or generation failed on KIE's side


class RecordAnswer(Event):
    """Base of what a record-info call can bring (a marker)."""


@dataclass(frozen=True)
class RecordInfo(RecordAnswer):
    """KIE's record-info answer (or a callback's body, once confirmed)."""

    progress: Progress
    result_url: str | None = None
    error_code: int | None = None
    generation_seconds: float | None = None  # KIE's completeTime - createTime, when both given


@dataclass(frozen=True)
class RecordMissing(RecordAnswer):
    """record-info answered 422: KIE does not know the task id (yet, or any more)."""


@dataclass(frozen=True)
class RecordRefused(RecordAnswer):
    """record-info refused the API key (`code` 401): no poll can succeed until it is fixed."""

    code: int | None


@dataclass(frozen=True)
class RecordUnavailable(RecordAnswer):
    """record-info failed in a way that may pass (5xx, transport, garbage)."""


@dataclass(frozen=True)
class CallbackNudge(Event):
    """KIE's callback says the task finished: confirm with record-info."""


@dataclass(frozen=True)
class TokenExpiring(Event):
    """The interaction token (outside servers the only way to the member) is nearly spent."""


# ---- delivery ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchFailed(Event):
    """Downloading or reading the finished image failed; `permanent`: retrying cannot help."""

    permanent: bool


@dataclass(frozen=True)
class DeliveryRefused(Event):
    """Discord did not take the result; `kind` is the adapter's reading of why."""

    kind: Refusal


@dataclass(frozen=True)
class Delivered(Event):
    """The result was posted as message `message_id` (in `channel_id`, when that is not the
    task's channel: a private result sent by direct message)."""

    message_id: int
    channel_id: int | None = None


@dataclass(frozen=True)
class DeliveryRetryDue(Event):
    """The pause before another delivery attempt is over."""


# ---- restart ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restarted(Event):
    """The bot started and found this task open in the ledger."""


ALL_EVENTS: tuple[type[Event], ...] = (
    Accepted,
    Dispatched,
    InputMissing,
    Submitted,
    RateLimited,
    CreateAnswerLost,
    CreateRefused,
    CancelRequested,
    PollDue,
    RecordInfo,
    RecordMissing,
    RecordRefused,
    RecordUnavailable,
    CallbackNudge,
    TokenExpiring,
    FetchFailed,
    DeliveryRefused,
    Delivered,
    DeliveryRetryDue,
    Restarted,
)


# ---- facts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """The operator's settings the rules depend on, and the current duration estimate."""

    poll_interval: float = 2.0  # POLL_INTERVAL_SECONDS
    task_timeout: float = 600.0  # TASK_TIMEOUT_SECONDS
    callbacks: bool = False  # PUBLIC_BASE_URL is set: KIE calls back, polling is the safety net
    estimate: float | None = None  # the task's model: median duration of recent tasks (s)
    estimate_guessed: bool = False  # no history yet: `estimate` is the model's typical time
    estimate_early: float | None = None  # the model's fast tasks: 10th percentile (s)


@dataclass(frozen=True)
class Facts:
    """What is known about the task beyond its state, when the event arrives."""

    attempts: int = 0  # generate attempts so far (a 429 does not count)
    started_at: float = 0.0  # unix time the wait is measured from: submitted, else created
    has_kie_task_id: bool = False
    delivery_attempts: int = 0  # failed delivery attempts so far
    not_found: int = 0  # record-info 422s in a row while following
    poll_errors: int = 0  # record-info failures in a row while following
    status_age: float = 0.0  # seconds since the status was last shown while following
    early_nudge: bool = False  # a callback arrived before following began
    pending_at: float | None = None  # unix time KIE last said "generating" (Follow.pending_at)
    private: bool = False  # the task's messages are ephemeral; past the token, a DM brings it
    jitter: float = 1.0  # the runner's random factor in [0.5, 1.5) for retry delays
    policy: Policy = field(default_factory=Policy)
