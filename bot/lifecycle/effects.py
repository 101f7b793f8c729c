"""What the runner carries out once a decision is made, and the decision itself.

A `Decision` is carried out in this order:

1. `first`: at once, whatever happens to the write;
2. the write: when `to` is set, the state (with `changes`) as a compare-and-set from the state
   the decision was made in; a failure (`to` FAILED) from any open state, since any path may end
   a task. `expect` narrows the states the write may move from (a cancel holds only while the
   task is still queued, so of a cancel and a dispatch exactly one wins). Without `to`,
   `changes` alone are written as they are;
3. `then` once the write won (at once when there is no write), or `otherwise` when it lost:
   another path moved the task first, and what this decision meant to do is moot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.ledger.models import TaskState
from bot.outcomes import Failure


class Effect:
    """Base of every effect (a marker)."""


# ---- the queue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseSlot(Effect):
    """Give back the member's running slot in the scheduler."""


@dataclass(frozen=True)
class PauseSubmissions(Effect):
    """Submit nothing for the whole account for `seconds` (KIE's rate window)."""

    seconds: float


@dataclass(frozen=True)
class Requeue(Effect):
    """Put the task in the scheduler's queue after `after` seconds (0: now), at the front of
    its member's line or at the back."""

    after: float
    front: bool


@dataclass(frozen=True)
class MarkActive(Effect):
    """The task holds a running slot already (found open at start-up)."""


@dataclass(frozen=True)
class WatchToken(Effect):
    """Outside servers, watch the interaction token's deadline (TokenExpiring)."""


# ---- KIE --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submit(Effect):
    """Upload the input (edits) and create the KIE task."""


@dataclass(frozen=True)
class CountOrphanedCreate(Effect):
    """A create may have reached KIE without its answer: count it (operators alert on it)."""


@dataclass(frozen=True)
class Follow(Effect):
    """Poll record-info `after` seconds from now, with these counters; starts following the task
    if it was not followed yet (and consumes a remembered early callback). `pending_at`: the
    unix time KIE last had the task still generating, when the next poll is one of the
    schedule's (None when a callback asks for it: then KIE finished just now)."""

    after: float
    not_found: int = 0
    poll_errors: int = 0
    pending_at: float | None = None


@dataclass(frozen=True)
class StopFollowing(Effect):
    pass


@dataclass(frozen=True)
class FetchRecord(Effect):
    """Ask KIE's record-info about the task now."""


@dataclass(frozen=True)
class RememberNudge(Effect):
    """Keep a callback that came before following began, so following starts with a check."""


# ---- Discord ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShowStatus(Effect):
    """Show the task's status to the member (throttled by the publisher)."""


@dataclass(frozen=True)
class Deliver(Effect):
    """Download the result, fit it to the upload limit and post it."""


@dataclass(frozen=True)
class RetryDelivery(Effect):
    """Try the delivery again `after` seconds from now."""

    after: float


@dataclass(frozen=True)
class PublishFailure(Effect):
    """Show the member why the task failed."""


# ---- endings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settle(Effect):
    """The task ended as `outcome` ("done" or a failure's outcome): drop every in-memory record
    of it, count the outcome (after a success, refresh the duration estimate first)."""

    outcome: str


@dataclass(frozen=True)
class RunHooks(Effect):
    """Quotas and the mod-log: what a finished task means outside the lifecycle."""


@dataclass(frozen=True)
class Decision:
    to: TaskState | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)  # Task fields written with `to`
    failure: Failure | None = None  # with `to` FAILED: what the member is told
    first: tuple[Effect, ...] = ()
    then: tuple[Effect, ...] = ()
    otherwise: tuple[Effect, ...] = ()
    expect: frozenset[TaskState] | None = None  # with `to`: the states the write may move from
    rule: str = ""  # the rule that made it (logs, tests)


IGNORE = Decision(rule="ignore")
