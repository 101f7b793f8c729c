"""The one in-memory record per open task: what the poll loop asks of it, and forgetting it."""

from __future__ import annotations

from bot.ledger.models import Task, TaskKind, TaskParams, TaskState
from bot.lifecycle.effects import Follow, ReleaseSlot, RememberNudge, Requeue
from bot.lifecycle.events import CallbackNudge, Policy, Submitted
from bot.lifecycle.open_tasks import EARLY_NUDGE_TTL, OpenTasks
from bot.lifecycle.table import decide

NOW = 1000.0  # monotonic
POLICY = Policy(poll_interval=2.0)


def task(task_id: str, state: TaskState = TaskState.GENERATING) -> Task:
    return Task(
        id=task_id,
        kind=TaskKind.IMAGINE,
        state=state,
        params=TaskParams(prompt="a cat"),
        requester_id=7,
        guild_id=None,
        channel_id=1,
        application_id=2,
        interaction_id=3,
        interaction_token="token",
        created_at=0.0,
        updated_at=0.0,
    )


def following(*ids: str, polls_per_second: int = 10) -> OpenTasks:
    """Tasks followed, each due at NOW minus its place in `ids` (the first is most overdue)."""
    tasks = OpenTasks(polls_per_second)
    for place, task_id in enumerate(ids):
        tasks.open(task(task_id))
        tasks.note(task_id, Follow(-float(len(ids) - place)), NOW)
    return tasks


def test_a_forgotten_task_is_asked_about_nowhere() -> None:
    """Forgetting is one call: no poll, no requeue, no token expiry and no wake-up is left."""
    tasks = following("t1")
    record = tasks.get("t1")
    assert record is not None
    record.token_deadline = NOW
    tasks.note("t1", Requeue(5.0, front=True), NOW)
    tasks.forget("t1")
    left = (
        tasks.get("t1"),
        tasks.start_polls(NOW + 10),
        tasks.wake_at(NOW),
        tasks.take_requeues_due(NOW + 10),
        tasks.take_out_of_reach(NOW + 10),
    )
    assert left == (None, [], None, [], [])


def test_polls_start_most_overdue_first_within_the_poll_rate() -> None:
    """Three polls due, two allowed per second: the two most overdue start."""
    tasks = following("t1", "t2", "t3", polls_per_second=2)
    assert tasks.start_polls(NOW) == ["t1", "t2"]


def test_a_busy_task_is_not_polled() -> None:
    """Work running on a task (a poll, a delivery) holds its next poll back."""
    tasks = following("t1", "t2")
    busy = tasks.get("t1")
    assert busy is not None
    busy.busy = True
    assert tasks.start_polls(NOW) == ["t2"]


def test_with_the_poll_rate_spent_the_loop_wakes_when_it_frees() -> None:
    """The next wake-up is a second after the first poll counted against the rate."""
    tasks = following("t1", "t2", polls_per_second=1)
    tasks.start_polls(NOW)
    assert tasks.wake_at(NOW + 0.1) == NOW + 1.0


def test_a_callbacks_poll_counts_against_the_poll_rate() -> None:
    """A poll started at once for a callback takes a place in the second's budget: the loop
    starts one poll fewer, and a callback finding the budget spent waits for the loop."""
    tasks = following("t1", "t2", polls_per_second=2)
    assert (tasks.start_poll(NOW), tasks.start_polls(NOW), tasks.start_poll(NOW)) == (
        True,
        ["t1"],
        False,
    )


def test_a_forgotten_task_ignores_record_effects() -> None:
    """A Follow for a task already forgotten (a late poll answer) makes no new record."""
    tasks = OpenTasks(10)
    tasks.note("gone", Follow(0.0), NOW)
    assert tasks.get("gone") is None


def test_effects_outside_the_record_are_left_to_the_runner() -> None:
    """Only effects on the record are carried out by it; a scheduler effect is not."""
    tasks = following("t1")
    assert tasks.note("t1", ReleaseSlot(), NOW) is False


def test_an_out_of_reach_task_is_given_up_once() -> None:
    """A token deadline that passed is handed over once, then cleared."""
    tasks = following("t1")
    record = tasks.get("t1")
    assert record is not None
    record.token_deadline = 50.0
    first, second = tasks.take_out_of_reach(60.0), tasks.take_out_of_reach(61.0)
    assert (first, second) == (["t1"], [])


def test_a_callback_before_submission_makes_following_start_with_a_check() -> None:
    """The table remembers a callback in SUBMITTING; the record's facts then make the first
    poll immediate."""
    tasks = OpenTasks(10)
    record = tasks.open(task("t1", TaskState.SUBMITTING))
    nudge = decide(record.state, CallbackNudge(), 0.0, record.facts(NOW, POLICY))
    for effect in nudge.then:
        tasks.note("t1", effect, NOW)
    submitted = decide(TaskState.SUBMITTING, Submitted("k1"), 0.0, record.facts(NOW + 1, POLICY))
    assert (nudge.then, submitted.then[0]) == ((RememberNudge(),), Follow(0.0))


def test_an_early_callback_is_forgotten_after_a_minute() -> None:
    """A callback remembered more than a minute ago no longer counts."""
    tasks = OpenTasks(10)
    record = tasks.open(task("t1", TaskState.SUBMITTING))
    tasks.note("t1", RememberNudge(), NOW)
    assert record.facts(NOW + EARLY_NUDGE_TTL + 1, POLICY).early_nudge is False


def test_following_uses_up_an_early_callback() -> None:
    """Once following began, a callback remembered before it no longer counts."""
    tasks = OpenTasks(10)
    record = tasks.open(task("t1", TaskState.SUBMITTING))
    tasks.note("t1", RememberNudge(), NOW)
    tasks.note("t1", Follow(0.0), NOW)
    assert record.facts(NOW, POLICY).early_nudge is False


def test_generating_since_lists_the_models_tasks_still_generating() -> None:
    """The submission times of the open tasks of a model that are generating, as last seen:
    not another model's, not one posting its result, not a forgotten one."""
    tasks = OpenTasks(polls_per_second=10)
    for task_id, state, model, submitted in (
        ("a", TaskState.GENERATING, "flux-kontext-pro", 10.0),
        ("b", TaskState.GENERATING, "flux-kontext-max", 11.0),
        ("c", TaskState.DELIVERING, "flux-kontext-pro", 12.0),
        ("d", TaskState.GENERATING, "flux-kontext-pro", 13.0),
    ):
        seen = task(task_id, state).with_changes(
            params=TaskParams(prompt="a cat", model=model), submitted_at=submitted
        )
        tasks.open(seen).seen(seen)
    tasks.forget("d")
    assert tasks.generating_since("flux-kontext-pro") == [10.0]
