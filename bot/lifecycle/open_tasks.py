"""One in-memory record per open task: what the runner knows about it beyond the ledger.

When it is next polled (and the poll counters), when it goes back to the queue, a callback that
came before following began, the interaction token's deadline, and whether work on it is
running. The runner owns the one `OpenTasks`; forgetting a task is one `forget`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bot.ledger.models import Task, TaskState
from bot.lifecycle.effects import Effect, Follow, RememberNudge, Requeue, StopFollowing
from bot.lifecycle.events import Facts, Policy
from bot.polling import PollPacer

# A callback that came before following began is kept this long (seconds).
EARLY_NUDGE_TTL = 60.0


@dataclass
class Following:
    """The task is generating at KIE and polled with record-info (times are monotonic)."""

    next_at: float
    not_found: int = 0  # record-info 422s in a row
    errors: int = 0  # record-info failures in a row
    pending_at: float | None = None  # unix time: Follow.pending_at
    status_shown_at: float = 0.0


@dataclass
class OpenTask:
    user_id: int
    state: TaskState  # as last read or written by the runner
    following: Following | None = None
    requeue_at: float | None = None  # monotonic: back to the queue then (after a refusal)
    early_nudge_at: float | None = None  # monotonic: a callback before following began
    token_deadline: float | None = None  # unix time: outside servers, the reply's last chance
    busy: bool = False  # work on the task is running: no poll or expiry starts meanwhile
    model: str | None = None  # as last read or written, with the submission's unix time
    submitted_at: float | None = None

    def seen(self, task: Task) -> None:
        """The task as the runner last read or wrote it."""
        self.state = task.state
        self.model = task.params.model
        self.submitted_at = task.submitted_at

    def follow(self, when: Follow, now: float) -> None:
        """Poll `when.after` seconds from `now` (monotonic), with the effect's counters."""
        self.early_nudge_at = None
        if self.following is None:
            self.following = Following(next_at=now, status_shown_at=now)
        self.following.next_at = now + when.after
        self.following.not_found = when.not_found
        self.following.errors = when.poll_errors
        self.following.pending_at = when.pending_at

    def facts(
        self, now: float, policy: Policy, task: Task | None = None, jitter: float = 1.0
    ) -> Facts:
        """What the decision table needs: this record's part, and the task's when given."""
        following = self.following
        early = self.early_nudge_at is not None and now - self.early_nudge_at <= EARLY_NUDGE_TTL
        return Facts(
            attempts=task.attempts if task else 0,
            started_at=(task.submitted_at or task.created_at) if task else 0.0,
            has_kie_task_id=bool(task and task.kie_task_id),
            delivery_attempts=task.delivery_attempts if task else 0,
            not_found=following.not_found if following else 0,
            poll_errors=following.errors if following else 0,
            status_age=now - following.status_shown_at if following else 0.0,
            early_nudge=early,
            pending_at=following.pending_at if following else None,
            private=bool(task and task.private),
            jitter=jitter,
            policy=policy,
        )


class OpenTasks:
    """The records of every open task, by task id, and the questions the poll loop asks;
    polls start within the account's poll rate (`polls_per_second`)."""

    def __init__(self, polls_per_second: int) -> None:
        self._records: dict[str, OpenTask] = {}
        self._pacer = PollPacer(polls_per_second)

    def open(self, task: Task) -> OpenTask:
        """The task's record, made when it is first seen (accepted, or resumed)."""
        record = self._records.get(task.id)
        if record is None:
            record = self._records[task.id] = OpenTask(task.requester_id, task.state)
        return record

    def get(self, task_id: str) -> OpenTask | None:
        return self._records.get(task_id)

    def forget(self, task_id: str) -> None:
        self._records.pop(task_id, None)

    def generating_since(self, model: str) -> list[float]:
        """When this process's tasks of `model` still generating were submitted (unix)."""
        return [
            r.submitted_at
            for r in self._records.values()
            if r.state is TaskState.GENERATING and r.model == model and r.submitted_at is not None
        ]

    def idle_ids(self) -> list[str]:
        """The open tasks no work is running on."""
        return [task_id for task_id, record in self._records.items() if not record.busy]

    def __len__(self) -> int:
        return len(self._records)

    def note(self, task_id: str, effect: Effect, now: float) -> bool:
        """Carry out `effect` if it only changes the task's record (a no-op once the task is
        forgotten), at monotonic `now`; False for any other effect."""
        record = self._records.get(task_id)
        match effect:
            case Follow():
                if record is not None:
                    record.follow(effect, now)
            case StopFollowing():
                if record is not None:
                    record.following = None
            case RememberNudge():
                if record is not None:
                    record.early_nudge_at = now
            case Requeue(after=after) if after > 0:
                if record is not None:
                    record.requeue_at = now + after
            case _:
                return False
        return True

    def _idle_following(self) -> Iterator[tuple[str, Following]]:
        for task_id, record in self._records.items():
            if record.following is not None and not record.busy:
                yield task_id, record.following

    def start_polls(self, now: float) -> list[str]:
        """The tasks to poll at monotonic `now`: those due, most overdue first, as many as the
        poll rate allows (counted as started)."""
        budget = max(0, self._pacer.budget(now))
        due = sorted((f.next_at, t) for t, f in self._idle_following() if f.next_at <= now)
        for _ in due[:budget]:
            self._pacer.started(now)
        return [task_id for _, task_id in due[:budget]]

    def start_poll(self, now: float) -> bool:
        """One poll outside `start_polls` (a callback's, at once) at monotonic `now`, if the
        poll rate allows: True and counted as started."""
        if self._pacer.budget(now) <= 0:
            return False
        self._pacer.started(now)
        return True

    def wake_at(self, now: float) -> float | None:
        """The next monotonic time a poll or a return to the queue is due (None: nothing)."""
        if self._pacer.budget(now) > 0:
            poll_at = min((f.next_at for _, f in self._idle_following()), default=None)
        else:
            poll_at = self._pacer.frees_at()
        requeues = [r.requeue_at for r in self._records.values() if r.requeue_at is not None]
        return min([*requeues, poll_at] if poll_at is not None else requeues, default=None)

    def take_requeues_due(self, now: float) -> list[tuple[str, int]]:
        """(task, user) of the tasks due back in the queue at monotonic `now`; clears their time."""
        due = []
        for task_id, record in self._records.items():
            if record.requeue_at is not None and record.requeue_at <= now:
                record.requeue_at = None
                due.append((task_id, record.user_id))
        return due

    def take_out_of_reach(self, now: float) -> list[str]:
        """Idle tasks whose interaction token runs out by unix time `now`; clears the deadline."""
        due = []
        for task_id, record in self._records.items():
            deadline = record.token_deadline
            if deadline is not None and deadline <= now and not record.busy:
                record.token_deadline = None
                due.append(task_id)
        return due
