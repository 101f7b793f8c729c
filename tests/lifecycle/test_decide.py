"""The decision table: every (state, event) pair has one answer, and each rule has its numbers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.ledger.models import TaskState
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
    ALL_EVENTS,
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
    RecordInfo,
    RecordMissing,
    RecordRefused,
    RecordUnavailable,
    Refusal,
    Restarted,
    Submitted,
    TokenExpiring,
)
from bot.lifecycle.table import TABLE, decide
from bot.outcomes import Outcome, failure

NOW = 1_000_000.0
Q, S, G, D = TaskState.QUEUED, TaskState.SUBMITTING, TaskState.GENERATING, TaskState.DELIVERING
DONE, FAILED = TaskState.DONE, TaskState.FAILED
STATES = (Q, S, G, D, DONE, FAILED)


def typical(state: TaskState) -> Facts:
    """A task in `state` as it usually is: submitted once, and KIE's id known from GENERATING."""
    return Facts(attempts=1, started_at=NOW - 5, has_kie_task_id=state not in (Q, S))


SAMPLES: dict[type[Event], Event] = {
    Accepted: Accepted(),
    Dispatched: Dispatched(),
    InputMissing: InputMissing(),
    Submitted: Submitted("kie-1"),
    RateLimited: RateLimited(),
    CreateAnswerLost: CreateAnswerLost(maybe_created=True),
    CreateRefused: CreateRefused(500, retryable=True),
    CancelRequested: CancelRequested(),
    PollDue: PollDue(),
    RecordInfo: RecordInfo(Progress.PENDING),
    RecordMissing: RecordMissing(),
    RecordRefused: RecordRefused(401),
    RecordUnavailable: RecordUnavailable(),
    CallbackNudge: CallbackNudge(),
    TokenExpiring: TokenExpiring(),
    FetchFailed: FetchFailed(permanent=False),
    DeliveryRefused: DeliveryRefused(Refusal.TRANSIENT),
    Delivered: Delivered(77),
    DeliveryRetryDue: DeliveryRetryDue(),
    Restarted: Restarted(),
}

# The rule each live (state, event) pair of a typical task gets.
LIVE: dict[tuple[TaskState, type[Event]], str] = {
    (Q, Accepted): "accept",
    (Q, Dispatched): "start_submission",
    (Q, CancelRequested): "cancel_queued",
    (S, InputMissing): "fail_input_unavailable",
    (S, Submitted): "start_following",
    (S, RateLimited): "wait_out_rate_window",
    (S, CreateAnswerLost): "give_up_unanswered",
    (S, CreateRefused): "retry_submission_later",
    (G, PollDue): "poll_record",
    (G, RecordInfo): "keep_polling",
    (G, RecordMissing): "poll_again_later",
    (G, RecordRefused): "failed_at_kie",
    (G, RecordUnavailable): "back_off_polling",
    (Q, CallbackNudge): "remember_nudge",
    (S, CallbackNudge): "remember_nudge",
    (G, CallbackNudge): "poll_now",
    (Q, TokenExpiring): "fail_too_late",
    (S, TokenExpiring): "fail_too_late",
    (G, TokenExpiring): "fail_too_late",
    (D, FetchFailed): "retry_delivery",
    (D, DeliveryRefused): "retry_delivery",
    (D, Delivered): "finish_done",
    (D, DeliveryRetryDue): "deliver",
    (Q, Restarted): "resume_queued",
    (S, Restarted): "resubmit_after_restart",
    (G, Restarted): "resume_generating",
    (D, Restarted): "resume_delivering",
}
# Every other pair is stale (the task moved on) or finished: ignored, except for a cleanup.
STALE: dict[type[Event], str] = {
    Dispatched: "give_back_turn",
    PollDue: "stop_following",
    RecordInfo: "stop_following",
    RecordMissing: "stop_following",
    RecordRefused: "stop_following",
    RecordUnavailable: "stop_following",
}

PAIRS = [
    pytest.param(
        state,
        event_type,
        LIVE.get((state, event_type), STALE.get(event_type, "ignore")),
        id=f"{state}-{event_type.__name__}",
    )
    for event_type in ALL_EVENTS
    for state in STATES
]


def test_the_pairs_cover_every_state_and_event() -> None:
    """The pair tests below leave out no event and no state."""
    assert (len(PAIRS), set(SAMPLES), set(STATES)) == (
        len(ALL_EVENTS) * len(TaskState),
        set(ALL_EVENTS),
        set(TaskState),
    )


@pytest.mark.parametrize(("state", "event_type", "rule"), PAIRS)
def test_every_pair_has_its_rule(state: TaskState, event_type: type[Event], rule: str) -> None:
    """Each (state, event) pair of a typical task is decided by the expected rule."""
    assert decide(state, SAMPLES[event_type], NOW, typical(state)).rule == rule


def test_ignore_changes_nothing() -> None:
    """An ignored event writes nothing and carries out nothing."""
    assert decide(DONE, Submitted("kie-1"), NOW, typical(DONE)) == IGNORE


def test_every_pair_ends_in_a_row_without_a_guard() -> None:
    """Whatever the facts, some row answers: the last row for each pair is unguarded."""
    unguarded = {
        (state, event_type)
        for row in TABLE
        if row.when.__name__ == "always"
        for state in row.states
        for event_type in ALL_EVENTS
        if issubclass(event_type, row.event)
    }
    assert unguarded == {(s, e) for s in STATES for e in ALL_EVENTS}


# ---- the rules, with their numbers ------------------------------------------------------------


def ended(outcome: Outcome, *first: Effect) -> Decision:
    return Decision(
        to=FAILED,
        failure=failure(outcome),
        first=first,
        then=(Settle(outcome.value), PublishFailure(), RunHooks()),
    )


def facts(**changes: object) -> Facts:
    return replace(Facts(attempts=1, started_at=NOW - 5, has_kie_task_id=True), **changes)


CALLBACKS = Policy(callbacks=True)

# fmt: off
CASES = [
    # (id, state, event, facts, expected decision)
    ("accepted", Q, Accepted(), facts(),
     Decision(then=(Requeue(0.0, front=False), WatchToken(), ShowStatus()))),
    ("dispatched counts an attempt and clears the retry time", Q, Dispatched(), facts(attempts=1),
     Decision(to=S, changes={"attempts": 2, "retry_at": None}, then=(ShowStatus(), Submit()),
              otherwise=(ReleaseSlot(),))),
    ("input missing", S, InputMissing(), facts(), ended(Outcome.INPUT_UNAVAILABLE)),
    ("cancel while queued: cancelled, refunded, out of the queue; holds only if still queued",
     Q, CancelRequested(), facts(has_kie_task_id=False),
     replace(ended(Outcome.CANCELLED), expect=frozenset({Q}))),
    ("submitted: first poll after the base interval", S, Submitted("k9"), facts(),
     Decision(to=G, changes={"kie_task_id": "k9", "submitted_at": NOW},
              then=(Follow(2.0, pending_at=NOW), ShowStatus()))),
    ("submitted after an early callback: poll at once", S, Submitted("k9"), facts(early_nudge=True),
     Decision(to=G, changes={"kie_task_id": "k9", "submitted_at": NOW},
              then=(Follow(0.0), ShowStatus()))),
    ("submitted with callbacks: the slow safety-net poll", S, Submitted("k9"),
     facts(policy=CALLBACKS),
     Decision(to=G, changes={"kie_task_id": "k9", "submitted_at": NOW},
              then=(Follow(30.0, pending_at=NOW), ShowStatus()))),
    ("429: wait out the window; the attempt does not count", S, RateLimited(), facts(attempts=2),
     Decision(to=Q, changes={"attempts": 1, "retry_at": NOW + 10.0},
              first=(ReleaseSlot(), PauseSubmissions(10.0)),
              then=(Requeue(0.0, front=True), ShowStatus()))),
    ("create answer lost: not resent, counted", S, CreateAnswerLost(maybe_created=True), facts(),
     ended(Outcome.NO_ANSWER, ReleaseSlot(), CountOrphanedCreate())),
    ("upload answer lost: not resent", S, CreateAnswerLost(maybe_created=False), facts(),
     ended(Outcome.NO_ANSWER, ReleaseSlot())),
    ("retryable refusal, 1st attempt: 2 s times the jitter", S, CreateRefused(500, retryable=True),
     facts(attempts=1, jitter=0.5),
     Decision(to=Q, changes={"retry_at": NOW + 1.0}, first=(ReleaseSlot(),),
              then=(Requeue(1.0, front=True), ShowStatus()))),
    ("retryable refusal, 2nd attempt: 4 s times the jitter", S, CreateRefused(455, retryable=True),
     facts(attempts=2, jitter=1.5),
     Decision(to=Q, changes={"retry_at": NOW + 6.0}, first=(ReleaseSlot(),),
              then=(Requeue(6.0, front=True), ShowStatus()))),
    ("retryable refusal, attempts spent", S, CreateRefused(500, retryable=True),
     facts(attempts=3), ended(Outcome.INTERNAL_ERROR, ReleaseSlot())),
    ("out of credits: for good, no re-roll", S, CreateRefused(402, retryable=False), facts(),
     ended(Outcome.OUT_OF_CREDITS, ReleaseSlot())),
    ("a refusal without a code", S, CreateRefused(None, retryable=False), facts(),
     ended(Outcome.GENERATION_FAILED, ReleaseSlot())),
    ("poll without a KIE id: stop following", G, PollDue(), facts(has_kie_task_id=False),
     Decision(then=(StopFollowing(),))),
    ("poll at the timeout exactly: still polled", G, PollDue(), facts(started_at=NOW - 600),
     Decision(then=(FetchRecord(),))),
    ("poll past the timeout", G, PollDue(), facts(started_at=NOW - 600.5),
     ended(Outcome.TIMED_OUT)),
    ("pending: next poll, errors forgotten", G, RecordInfo(Progress.PENDING),
     facts(not_found=1, poll_errors=3, status_age=9.9),
     Decision(then=(Follow(2.0, not_found=1, pending_at=NOW),))),
    ("pending, status 10 s old: shown again", G, RecordInfo(Progress.PENDING),
     facts(status_age=10.0), Decision(then=(Follow(2.0, pending_at=NOW), ShowStatus()))),
    ("pending with an estimate: one look halfway", G, RecordInfo(Progress.PENDING),
     facts(started_at=NOW - 4, policy=Policy(estimate=20.0)),
     Decision(then=(Follow(6.0, pending_at=NOW),))),
    ("pending past halfway: next half a gap into the window (10 % before the estimate)", G,
     RecordInfo(Progress.PENDING), facts(started_at=NOW - 25, policy=Policy(estimate=50.0)),
     Decision(then=(Follow(21.0, pending_at=NOW),))),
    ("pending, the model's fast tasks known: one look at them", G, RecordInfo(Progress.PENDING),
     facts(started_at=NOW - 4, policy=Policy(estimate=50.0, estimate_early=30.0)),
     Decision(then=(Follow(26.0, pending_at=NOW),))),
    ("pending, no fast tasks: straight to the window", G, RecordInfo(Progress.PENDING),
     facts(started_at=NOW - 4, policy=Policy(estimate=50.0, estimate_early=45.5)),
     Decision(then=(Follow(42.0, pending_at=NOW),))),
    ("pending on a guessed estimate: gaps within 5 base intervals", G,
     RecordInfo(Progress.PENDING),
     facts(started_at=NOW - 4, policy=Policy(poll_interval=0.2, estimate=20.0,
                                             estimate_guessed=True)),
     Decision(then=(Follow(1.0, pending_at=NOW),))),
    ("success: deliver", G, RecordInfo(Progress.SUCCESS, result_url="https://r/x.png"), facts(),
     Decision(to=D, changes={"result_url": "https://r/x.png", "completed_at": NOW},
              first=(StopFollowing(),), then=(Deliver(),))),
    ("success seen by a scheduled poll: KIE finished halfway since the last 'generating'", G,
     RecordInfo(Progress.SUCCESS, result_url="https://r/x.png"), facts(pending_at=NOW - 4),
     Decision(to=D, changes={"result_url": "https://r/x.png", "completed_at": NOW - 2},
              first=(StopFollowing(),), then=(Deliver(),))),
    ("success with KIE's own times: submitted + KIE's generation time", G,
     RecordInfo(Progress.SUCCESS, result_url="https://r/x.png", generation_seconds=12.0),
     facts(started_at=NOW - 20, pending_at=NOW - 4),
     Decision(to=D, changes={"result_url": "https://r/x.png", "completed_at": NOW - 8},
              first=(StopFollowing(),), then=(Deliver(),))),
    ("callback while pending: the check it asks for forgets the last 'generating'", G,
     CallbackNudge(), facts(pending_at=NOW - 4), Decision(then=(Follow(0.0),))),
    ("record-info error: the last 'generating' is kept", G, RecordUnavailable(),
     facts(pending_at=NOW - 4), Decision(then=(Follow(4.0, 0, 1, NOW - 4),))),
    ("success without an image", G, RecordInfo(Progress.SUCCESS), facts(),
     ended(Outcome.RESULT_UNAVAILABLE)),
    ("KIE's 500, attempts left: a fresh task", G, RecordInfo(Progress.FAILED, error_code=500),
     facts(attempts=2),
     Decision(to=Q, changes={"kie_task_id": None, "submitted_at": None}, first=(StopFollowing(),),
              then=(ReleaseSlot(), Requeue(0.0, front=True), ShowStatus()))),
    ("KIE's 500, attempts spent", G, RecordInfo(Progress.FAILED, error_code=500),
     facts(attempts=3), ended(Outcome.INTERNAL_ERROR)),
    ("KIE's content filter", G, RecordInfo(Progress.FAILED, error_code=400), facts(),
     ended(Outcome.CONTENT_POLICY)),
    ("KIE failed without a code", G, RecordInfo(Progress.FAILED), facts(),
     ended(Outcome.GENERATION_FAILED)),
    ("not found within the grace", G, RecordMissing(),
     facts(started_at=NOW - 60, not_found=5, poll_errors=1),
     Decision(then=(Follow(2.0, not_found=6, poll_errors=1),))),
    ("not found past the grace, 2nd time", G, RecordMissing(),
     facts(started_at=NOW - 61, not_found=1),
     Decision(then=(Follow(2.0, not_found=2),))),
    ("not found past the grace, 3rd time", G, RecordMissing(),
     facts(started_at=NOW - 61, not_found=2), ended(Outcome.INTERNAL_ERROR)),
    ("the key refused while polling", G, RecordRefused(401), facts(), ended(Outcome.MISCONFIGURED)),
    ("record-info error: back off, doubling", G, RecordUnavailable(),
     facts(not_found=1, poll_errors=1), Decision(then=(Follow(8.0, not_found=1, poll_errors=2),))),
    ("record-info errors: at most 30 s", G, RecordUnavailable(), facts(poll_errors=4),
     Decision(then=(Follow(30.0, poll_errors=5),))),
    ("callback while following: poll now", G, CallbackNudge(), facts(not_found=1, poll_errors=2),
     Decision(then=(Follow(0.0, not_found=1, poll_errors=2),))),
    ("callback before following", S, CallbackNudge(), facts(), Decision(then=(RememberNudge(),))),
    ("token spent while generating", G, TokenExpiring(), facts(), ended(Outcome.TOO_LATE)),
    ("token spent on a private task: its result will come by DM", G, TokenExpiring(),
     facts(private=True), IGNORE),
    ("token spent while delivering: delivery keeps its last minute", D, TokenExpiring(), facts(),
     IGNORE),
    ("download failed: 1st retry in 4 s", D, FetchFailed(permanent=False), facts(),
     Decision(changes={"delivery_attempts": 1}, then=(RetryDelivery(4.0),))),
    ("download failed: 3rd retry in 16 s", D, FetchFailed(permanent=False),
     facts(delivery_attempts=2),
     Decision(changes={"delivery_attempts": 3}, then=(RetryDelivery(16.0),))),
    ("download failed, attempts spent", D, FetchFailed(permanent=False),
     facts(delivery_attempts=3), ended(Outcome.RESULT_UNAVAILABLE)),
    ("result expired at KIE: at once", D, FetchFailed(permanent=True), facts(),
     ended(Outcome.RESULT_UNAVAILABLE)),
    ("post: Discord 5xx, retried", D, DeliveryRefused(Refusal.TRANSIENT),
     facts(delivery_attempts=1),
     Decision(changes={"delivery_attempts": 2}, then=(RetryDelivery(8.0),))),
    ("post: Discord 5xx, attempts spent", D, DeliveryRefused(Refusal.TRANSIENT),
     facts(delivery_attempts=3), ended(Outcome.RESULT_UNAVAILABLE)),
    ("post: token expired", D, DeliveryRefused(Refusal.EXPIRED), facts(), ended(Outcome.TOO_LATE)),
    ("post: no permission", D, DeliveryRefused(Refusal.FORBIDDEN), facts(),
     ended(Outcome.CANNOT_POST)),
    ("post: a private result's DM, and the member's DMs are closed", D,
     DeliveryRefused(Refusal.DM_CLOSED), facts(), ended(Outcome.DM_CLOSED)),
    ("post: reply gone in a DM", D, DeliveryRefused(Refusal.DELETED), facts(),
     ended(Outcome.RESULT_UNAVAILABLE)),
    ("post: too large", D, DeliveryRefused(Refusal.TOO_LARGE), facts(),
     ended(Outcome.RESULT_UNAVAILABLE)),
    ("post: refused otherwise", D, DeliveryRefused(Refusal.REFUSED), facts(),
     ended(Outcome.RESULT_UNAVAILABLE)),
    ("delivered", D, Delivered(77), facts(),
     Decision(to=DONE, changes={"delivered_at": NOW, "result_message_id": 77},
              then=(Settle("done"), RunHooks()))),
    ("delivered by DM: the DM channel is where the result is", D, Delivered(77, 5), facts(),
     Decision(to=DONE, changes={"delivered_at": NOW, "result_message_id": 77,
                                "result_channel_id": 5},
              then=(Settle("done"), RunHooks()))),
    ("delivery retry due", D, DeliveryRetryDue(), facts(), Decision(then=(Deliver(),))),
    ("restart, queued", Q, Restarted(), facts(has_kie_task_id=False),
     Decision(then=(WatchToken(), Requeue(0.0, front=False)))),
    ("restart, queued with a KIE id: never submitted twice", Q, Restarted(), facts(),
     Decision(to=G, first=(WatchToken(),), then=(MarkActive(), Follow(0.0)))),
    ("restart, submitting without a KIE id: submitted again", S, Restarted(),
     facts(has_kie_task_id=False),
     Decision(to=Q, first=(WatchToken(),), then=(Requeue(0.0, front=False),))),
    ("restart, submitting with a KIE id: followed", S, Restarted(), facts(),
     Decision(to=G, first=(WatchToken(),), then=(MarkActive(), Follow(0.0)))),
    ("restart, generating: polled at once", G, Restarted(), facts(),
     Decision(then=(WatchToken(), MarkActive(), Follow(0.0)))),
    ("restart, delivering", D, Restarted(), facts(),
     Decision(then=(WatchToken(), MarkActive(), Deliver()))),
]
# fmt: on


@pytest.mark.parametrize(
    ("state", "event", "known", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_rule(state: TaskState, event: Event, known: Facts, expected: Decision) -> None:
    """Each rule: the state it writes, the fields with it, and its effects in order."""
    assert replace(decide(state, event, NOW, known), rule="") == replace(expected, rule="")


def test_failures_the_member_cannot_fix_by_rerolling_have_no_reroll() -> None:
    """Out of credits and cannot-post failures offer no Re-roll button."""
    decisions = [
        decide(S, CreateRefused(402, retryable=False), NOW, facts()),
        decide(D, DeliveryRefused(Refusal.FORBIDDEN), NOW, facts()),
    ]
    assert [d.failure.rerollable if d.failure else None for d in decisions] == [False, False]
