"""What happens to a task next: one table of (state, event, guard) -> rule, and nothing else.

`decide(state, event, now, facts)` is pure: it returns a `Decision` (the state to write, the
fields written with it, and the effects to carry out; see `bot.lifecycle.effects`) and does no
I/O. The first row whose state, event and guard match makes the decision; the last row of each
(state, event) pair has no guard, so every pair has an answer, stale events (the task moved on
while the answer was on its way) included. Every retry and failure rule of the runner is a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.ledger.models import OPEN_STATES, TERMINAL_STATES, TaskState
from bot.lifecycle.effects import (
    IGNORE,
    CountOrphanedCreate,
    Decision,
    Deliver,
    Effect,
    FetchRecord,
    Follow,
    MarkActive,
    PauseSubmissions,
    PublishFailure,
    ReleaseSlot,
    RememberNudge,
    Requeue,
    RetryDelivery,
    RunHooks,
    Settle,
    ShowStatus,
    StopFollowing,
    Submit,
    WatchToken,
)
from bot.lifecycle.events import (
    Accepted,
    CallbackNudge,
    CancelRequested,
    CreateAnswerLost,
    CreateRefused,
    Delivered,
    DeliveryRefused,
    DeliveryRetryDue,
    Dispatched,
    Event,
    Facts,
    FetchFailed,
    InputMissing,
    Policy,
    PollDue,
    Progress,
    RateLimited,
    RecordAnswer,
    RecordInfo,
    RecordMissing,
    RecordRefused,
    RecordUnavailable,
    Restarted,
    Submitted,
    TokenExpiring,
)
from bot.outcomes import Outcome, failure, outcome_for_kie_code
from bot.polling import next_poll_delay
from bot.ports import Refusal

RATE_LIMIT_PAUSE = 10.0  # KIE drops a create over the limit: wait out a whole window
MAX_SUBMIT_ATTEMPTS = 3  # generate calls for one task (429s do not count)
SUBMIT_RETRY_BASE = 2.0  # seconds before the 2nd attempt; doubles, times the jitter
SUBMIT_RETRY_MAX = 60.0
MAX_DELIVERY_ATTEMPTS = 4
DELIVERY_RETRY_BASE = 2.0  # seconds, doubled per failed attempt (8, 16, 32)
NOT_FOUND_GRACE = 60.0  # KIE may not know a fresh task id yet
NOT_FOUND_LIMIT = 3  # 422s in a row, past the grace, before KIE is taken at its word
POLL_BACKOFF_MAX = 30.0  # record-info errors double the poll interval up to this
STATUS_REFRESH = 10.0  # "generating — N s elapsed" refresh while a task runs

Q, S, G, D = TaskState.QUEUED, TaskState.SUBMITTING, TaskState.GENERATING, TaskState.DELIVERING
TERMINAL = TERMINAL_STATES
EVERY = frozenset(TaskState)
BEFORE_KIE = frozenset({Q, S})
UNDELIVERED = frozenset({Q, S, G})

Guard = Callable[[Any, Facts, float], bool]
Rule = Callable[[Any, Facts, float], Decision]


# ---- guards -----------------------------------------------------------------------------------


def always(event: Any, facts: Facts, now: float) -> bool:
    return True


def has_kie_task(event: Any, facts: Facts, now: float) -> bool:
    return facts.has_kie_task_id


def no_kie_task(event: Any, facts: Facts, now: float) -> bool:
    return not facts.has_kie_task_id


def timed_out(event: PollDue, facts: Facts, now: float) -> bool:
    return now - facts.started_at > facts.policy.task_timeout


def submit_retry_left(event: CreateRefused, facts: Facts, now: float) -> bool:
    return event.retryable and facts.attempts < MAX_SUBMIT_ATTEMPTS


def pending(event: RecordInfo, facts: Facts, now: float) -> bool:
    return event.progress == Progress.PENDING


def succeeded_with_url(event: RecordInfo, facts: Facts, now: float) -> bool:
    return event.progress == Progress.SUCCESS and bool(event.result_url)


def succeeded(event: RecordInfo, facts: Facts, now: float) -> bool:
    return event.progress == Progress.SUCCESS


def kie_500_retry_left(event: RecordInfo, facts: Facts, now: float) -> bool:
    return event.error_code == 500 and facts.attempts < MAX_SUBMIT_ATTEMPTS


def missing_for_good(event: RecordMissing, facts: Facts, now: float) -> bool:
    return now - facts.started_at > NOT_FOUND_GRACE and facts.not_found + 1 >= NOT_FOUND_LIMIT


def fetch_retry_left(event: FetchFailed, facts: Facts, now: float) -> bool:
    return not event.permanent and facts.delivery_attempts + 1 < MAX_DELIVERY_ATTEMPTS


def post_retry_left(event: DeliveryRefused, facts: Facts, now: float) -> bool:
    return event.kind == Refusal.TRANSIENT and facts.delivery_attempts + 1 < MAX_DELIVERY_ATTEMPTS


def expired(event: DeliveryRefused, facts: Facts, now: float) -> bool:
    return event.kind == Refusal.EXPIRED


def forbidden(event: DeliveryRefused, facts: Facts, now: float) -> bool:
    return event.kind == Refusal.FORBIDDEN


def dms_closed(event: DeliveryRefused, facts: Facts, now: float) -> bool:
    return event.kind == Refusal.DM_CLOSED


def private(event: Any, facts: Facts, now: float) -> bool:
    return facts.private


# ---- rules ------------------------------------------------------------------------------------


def ignore(event: Any, facts: Facts, now: float) -> Decision:
    return IGNORE


def fail(outcome: Outcome) -> Rule:
    """Fail the task. Its ending drops every in-memory record of it (following included)."""

    def rule(event: Any, facts: Facts, now: float) -> Decision:
        return _failed(outcome)

    rule.__name__ = f"fail_{outcome.value}"
    return rule


def _failed(outcome: Outcome, first: tuple[Effect, ...] = ()) -> Decision:
    return Decision(
        to=TaskState.FAILED,
        failure=failure(outcome),
        first=first,
        then=(Settle(outcome.value), PublishFailure(), RunHooks()),
    )


def accept(event: Accepted, facts: Facts, now: float) -> Decision:
    return Decision(then=(Requeue(0.0, front=False), WatchToken(), ShowStatus()))


def start_submission(event: Dispatched, facts: Facts, now: float) -> Decision:
    return Decision(
        to=S,
        changes={"attempts": facts.attempts + 1, "retry_at": None},
        then=(ShowStatus(), Submit()),
        otherwise=(ReleaseSlot(),),
    )


def cancel_queued(event: CancelRequested, facts: Facts, now: float) -> Decision:
    """Cancelled before KIE saw it: the write holds only if the task is still queued, so a
    dispatch that moved it first wins instead (and the member is told it was sent)."""
    return replace(_failed(Outcome.CANCELLED), expect=frozenset({Q}))


def give_back_turn(event: Any, facts: Facts, now: float) -> Decision:
    return Decision(then=(ReleaseSlot(),))


def start_following(event: Submitted, facts: Facts, now: float) -> Decision:
    follow = (
        Follow(0.0) if facts.early_nudge else Follow(_poll_delay(0.0, facts.policy), pending_at=now)
    )
    return Decision(
        to=G,
        changes={"kie_task_id": event.kie_task_id, "submitted_at": now},
        then=(follow, ShowStatus()),
    )


def wait_out_rate_window(event: RateLimited, facts: Facts, now: float) -> Decision:
    """KIE dropped the create: the whole account waits out the window, the task keeps its place
    at the front, and its status says when it retries. The attempt does not count."""
    return Decision(
        to=Q,
        changes={"attempts": facts.attempts - 1, "retry_at": now + RATE_LIMIT_PAUSE},
        first=(ReleaseSlot(), PauseSubmissions(RATE_LIMIT_PAUSE)),
        then=(Requeue(0.0, front=True), ShowStatus()),
    )


def give_up_unanswered(event: CreateAnswerLost, facts: Facts, now: float) -> Decision:
    """KIE has no idempotency key: resending a create whose answer was lost could make (and
    charge) a second image, so the member is told instead."""
    counted = (CountOrphanedCreate(),) if event.maybe_created else ()
    return _failed(Outcome.NO_ANSWER, (ReleaseSlot(), *counted))


def retry_submission_later(event: CreateRefused, facts: Facts, now: float) -> Decision:
    backoff = SUBMIT_RETRY_BASE * 2 ** (facts.attempts - 1)
    delay = min(SUBMIT_RETRY_MAX, backoff) * facts.jitter
    return Decision(
        to=Q,
        changes={"retry_at": now + delay},
        first=(ReleaseSlot(),),
        then=(Requeue(delay, front=True), ShowStatus()),
    )


def refused_for_good(event: CreateRefused, facts: Facts, now: float) -> Decision:
    return _failed(outcome_for_kie_code(event.code), (ReleaseSlot(),))


def poll_record(event: PollDue, facts: Facts, now: float) -> Decision:
    return Decision(then=(FetchRecord(),))


def stop_following(event: Any, facts: Facts, now: float) -> Decision:
    return Decision(then=(StopFollowing(),))


def keep_polling(event: RecordInfo, facts: Facts, now: float) -> Decision:
    after = _poll_delay(now - facts.started_at, facts.policy)
    refresh = (ShowStatus(),) if facts.status_age >= STATUS_REFRESH else ()
    return Decision(then=(Follow(after, not_found=facts.not_found, pending_at=now), *refresh))


def start_delivery(event: RecordInfo, facts: Facts, now: float) -> Decision:
    """`completed_at`: KIE's finish, as well as it is known (the durations the poll schedule is
    built on are made of it: the time of the poll that saw it would feed the schedule's own
    lateness back into it): the submission plus KIE's own generation time when record-info
    gives it; else halfway between the poll that saw the task still generating and this one;
    now after a callback."""
    return Decision(
        to=D,
        changes={"result_url": event.result_url, "completed_at": _finished_at(event, facts, now)},
        first=(StopFollowing(),),
        then=(Deliver(),),
    )


def _finished_at(event: RecordInfo, facts: Facts, now: float) -> float:
    if event.generation_seconds is not None and facts.started_at > 0:
        return min(now, facts.started_at + event.generation_seconds)
    return now if facts.pending_at is None else (facts.pending_at + now) / 2


def resubmit(event: RecordInfo, facts: Facts, now: float) -> Decision:
    """An internal error on KIE's side: a fresh task usually goes through."""
    return Decision(
        to=Q,
        changes={"kie_task_id": None, "submitted_at": None},
        first=(StopFollowing(),),
        then=(ReleaseSlot(), Requeue(0.0, front=True), ShowStatus()),
    )


def failed_at_kie(event: RecordInfo | RecordRefused, facts: Facts, now: float) -> Decision:
    code = event.error_code if isinstance(event, RecordInfo) else event.code
    return _failed(outcome_for_kie_code(code))


def poll_again_later(event: RecordMissing, facts: Facts, now: float) -> Decision:
    follow = Follow(
        facts.policy.poll_interval, facts.not_found + 1, facts.poll_errors, facts.pending_at
    )
    return Decision(then=(follow,))


def back_off_polling(event: RecordUnavailable, facts: Facts, now: float) -> Decision:
    errors = facts.poll_errors + 1
    after = min(POLL_BACKOFF_MAX, facts.policy.poll_interval * 2**errors)
    return Decision(then=(Follow(after, facts.not_found, errors, facts.pending_at),))


def poll_now(event: CallbackNudge, facts: Facts, now: float) -> Decision:
    return Decision(then=(Follow(0.0, facts.not_found, facts.poll_errors),))


def remember_nudge(event: CallbackNudge, facts: Facts, now: float) -> Decision:
    return Decision(then=(RememberNudge(),))


def finish_done(event: Delivered, facts: Facts, now: float) -> Decision:
    changes: dict[str, Any] = {"delivered_at": now, "result_message_id": event.message_id}
    if event.channel_id is not None:
        changes["result_channel_id"] = event.channel_id
    return Decision(to=TaskState.DONE, changes=changes, then=(Settle("done"), RunHooks()))


def leave_to_dm(event: TokenExpiring, facts: Facts, now: float) -> Decision:
    """A private task is not given up with its token: its result will come by DM."""
    return Decision()


def retry_delivery(event: Any, facts: Facts, now: float) -> Decision:
    attempts = facts.delivery_attempts + 1
    return Decision(
        changes={"delivery_attempts": attempts},
        then=(RetryDelivery(DELIVERY_RETRY_BASE * 2**attempts),),
    )


def deliver(event: Any, facts: Facts, now: float) -> Decision:
    return Decision(then=(Deliver(),))


def resume_following(event: Restarted, facts: Facts, now: float) -> Decision:
    """KIE already has the task (its id is recorded): it is followed, never submitted twice."""
    return Decision(to=G, first=(WatchToken(),), then=(MarkActive(), Follow(0.0)))


def resume_queued(event: Restarted, facts: Facts, now: float) -> Decision:
    return Decision(then=(WatchToken(), Requeue(0.0, front=False)))


def resubmit_after_restart(event: Restarted, facts: Facts, now: float) -> Decision:
    """The create may or may not have reached KIE; with no task id recorded there is nothing
    to follow, so the task is submitted again."""
    return Decision(to=Q, first=(WatchToken(),), then=(Requeue(0.0, front=False),))


def resume_generating(event: Restarted, facts: Facts, now: float) -> Decision:
    return Decision(then=(WatchToken(), MarkActive(), Follow(0.0)))


def resume_delivering(event: Restarted, facts: Facts, now: float) -> Decision:
    return Decision(then=(WatchToken(), MarkActive(), Deliver()))


def _poll_delay(elapsed: float, policy: Policy) -> float:
    return next_poll_delay(
        elapsed,
        policy.estimate,
        policy.poll_interval,
        callbacks=policy.callbacks,
        guessed=policy.estimate_guessed,
        early=policy.estimate_early,
    )


# ---- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    states: frozenset[TaskState]
    event: type[Event]
    when: Guard
    rule: Rule


States = TaskState | frozenset[TaskState]

# fmt: off
_ROWS: tuple[tuple[States, type[Event], Guard, Rule], ...] = (
    # state       event              guard               rule
    (Q,           Accepted,          always,             accept),
    (Q,           Dispatched,        always,             start_submission),
    (EVERY - {Q}, Dispatched,        always,             give_back_turn),
    (Q,           CancelRequested,   always,             cancel_queued),
    (S,           InputMissing,      always,             fail(Outcome.INPUT_UNAVAILABLE)),
    (S,           Submitted,         always,             start_following),
    (S,           RateLimited,       always,             wait_out_rate_window),
    (S,           CreateAnswerLost,  always,             give_up_unanswered),
    (S,           CreateRefused,     submit_retry_left,  retry_submission_later),
    (S,           CreateRefused,     always,             refused_for_good),
    (G,           PollDue,           no_kie_task,        stop_following),
    (G,           PollDue,           timed_out,          fail(Outcome.TIMED_OUT)),
    (G,           PollDue,           always,             poll_record),
    (EVERY - {G}, PollDue,           always,             stop_following),
    (G,           RecordInfo,        pending,            keep_polling),
    (G,           RecordInfo,        succeeded_with_url, start_delivery),
    (G,           RecordInfo,        succeeded,          fail(Outcome.RESULT_UNAVAILABLE)),
    (G,           RecordInfo,        kie_500_retry_left, resubmit),
    (G,           RecordInfo,        always,             failed_at_kie),
    (G,           RecordMissing,     missing_for_good,   fail(Outcome.INTERNAL_ERROR)),
    (G,           RecordMissing,     always,             poll_again_later),
    (G,           RecordRefused,     always,             failed_at_kie),
    (G,           RecordUnavailable, always,             back_off_polling),
    (EVERY - {G}, RecordAnswer,      always,             stop_following),
    (G,           CallbackNudge,     always,             poll_now),
    (BEFORE_KIE,  CallbackNudge,     always,             remember_nudge),
    (UNDELIVERED, TokenExpiring,     private,            leave_to_dm),
    (UNDELIVERED, TokenExpiring,     always,             fail(Outcome.TOO_LATE)),
    (D,           FetchFailed,       fetch_retry_left,   retry_delivery),
    (D,           FetchFailed,       always,             fail(Outcome.RESULT_UNAVAILABLE)),
    (D,           DeliveryRefused,   expired,            fail(Outcome.TOO_LATE)),
    (D,           DeliveryRefused,   forbidden,          fail(Outcome.CANNOT_POST)),
    (D,           DeliveryRefused,   dms_closed,         fail(Outcome.DM_CLOSED)),
    (D,           DeliveryRefused,   post_retry_left,    retry_delivery),
    (D,           DeliveryRefused,   always,             fail(Outcome.RESULT_UNAVAILABLE)),
    (D,           Delivered,         always,             finish_done),
    (D,           DeliveryRetryDue,  always,             deliver),
    (BEFORE_KIE,  Restarted,         has_kie_task,       resume_following),
    (Q,           Restarted,         always,             resume_queued),
    (S,           Restarted,         always,             resubmit_after_restart),
    (G,           Restarted,         always,             resume_generating),
    (D,           Restarted,         always,             resume_delivering),
    # Stale: the task moved on while the event was on its way (its write would lose anyway).
    (OPEN_STATES, Event,             always,             ignore),
    # A finished task stays finished, whatever arrives.
    (TERMINAL,    Event,             always,             ignore),
)
# fmt: on
TABLE: tuple[Row, ...] = tuple(
    Row(s if isinstance(s, frozenset) else frozenset({s}), e, w, r) for s, e, w, r in _ROWS
)


def decide(state: TaskState, event: Event, now: float, facts: Facts | None = None) -> Decision:
    """The decision for `event` arriving while the task is in `state`, at unix time `now`."""
    known = facts or Facts()
    for row in TABLE:
        if state in row.states and isinstance(event, row.event) and row.when(event, known, now):
            decision = row.rule(event, known, now)
            return replace(decision, rule=decision.rule or row.rule.__name__)
    raise LookupError(f"no rule for {type(event).__name__} in {state}")  # pragma: no cover
