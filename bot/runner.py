"""The task lifecycle: submit, follow (one poll loop for every task), finish, resume after restart.

The ledger is the source of truth: each transition is written (compare-and-set on the state)
before it is acted on, so two paths (a callback and a poll, say) can never both deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from bot.config import Settings
from bot.durations import DURATION_SAMPLES, ModelDurations
from bot.executors import RecordReader, ResultDeliverer, Submitter
from bot.kie import KieClient
from bot.ledger import (
    CoordinationStore,
    RefStore,
    Task,
    TaskAndInputStore,
    TaskState,
    TaskStore,
)
from bot.ledger.models import OPEN_STATES
from bot.lifecycle.effects import (
    IGNORE,
    CountOrphanedCreate,
    Decision,
    Deliver,
    Effect,
    FetchRecord,
    MarkActive,
    PauseSubmissions,
    PublishFailure,
    ReleaseSlot,
    Requeue,
    RetryDelivery,
    RunHooks,
    Settle,
    ShowStatus,
    Submit,
    WatchToken,
)
from bot.lifecycle.events import (
    Accepted,
    CancelRequested,
    Delivered,
    DeliveryRetryDue,
    Dispatched,
    Event,
    Policy,
    PollDue,
    Submitted,
    TokenExpiring,
)
from bot.lifecycle.open_tasks import OpenTask, OpenTasks
from bot.lifecycle.table import MAX_SUBMIT_ATTEMPTS, decide
from bot.logs import task_context
from bot.metrics import Metrics
from bot.ports import Publisher
from bot.runner_takeup import BESIDE_OTHERS, TakingUp
from bot.scheduler import Scheduler, Ticket
from bot.shared_work import POLL_BUDGET, SharedWork
from bot.supervisor import Supervisor, WorkSet

log = logging.getLogger(__name__)

# The retry and failure rules (and their limits) are bot.lifecycle.table's.
__all__ = ["MAX_SUBMIT_ATTEMPTS", "Runner", "TaskHooks"]

HOUSEKEEPING_INTERVAL = 3600.0


class TaskHooks(Protocol):
    """Side effects of a finished task outside the lifecycle (quotas, the mod-log)."""

    async def task_finished(self, task: Task) -> None: ...


class _NoHooks:
    async def task_finished(self, task: Task) -> None:
        return None


def policy_of(settings: Settings) -> Policy:
    """The operator's settings the decision table reads (the estimate is refreshed later)."""
    return Policy(
        poll_interval=settings.poll_interval_seconds,
        task_timeout=settings.task_timeout_seconds,
        callbacks=settings.callbacks_enabled,
    )


class RunnerLedger(TaskAndInputStore, CoordinationStore, Protocol):
    """What the runner keeps its tasks in: tasks, inputs, and the processes' shared work."""


class Runner(TakingUp):
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: RunnerLedger,
        kie: KieClient,
        scheduler: Scheduler,
        delivery: Publisher,
        metrics: Metrics,
        hooks: TaskHooks | None = None,
        supervisor: Supervisor | None = None,
        clock: Callable[[], float] = time.time,
        refs: RefStore | None = None,  # the saved references an edit may take as input
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._scheduler = scheduler
        self._delivery = delivery
        self._metrics = metrics
        self._hooks: TaskHooks = hooks or _NoHooks()
        self._clock = clock
        self._wake = asyncio.Event()
        self._open = OpenTasks(settings.kie_max_polls_per_second)  # one record per open task
        self._work = WorkSet()
        self._submitter = Submitter(kie, ledger, ledger, settings, refs=refs, clock=clock)
        self._records = RecordReader(kie)
        self._deliverer = ResultDeliverer(kie, delivery, metrics)
        self._policy = policy_of(settings)
        self._durations = ModelDurations(self._open.generating_since, self._clock)  # estimates
        self.shared = SharedWork(ledger, settings)
        self._creates_wanted = asyncio.Event()  # a shared ledger's creates: one is ready
        self._supervisor = supervisor or Supervisor()
        self._stopping = False
        self.last_tick = time.monotonic()

    # ---- public interface ----------------------------------------------------------------

    async def start(self) -> None:
        self._durations.load(await self._ledger.recent_durations_by_model(DURATION_SAMPLES))
        await self._resume()
        self._supervisor.start("poll_loop", self._run)
        purge = functools.partial(purge_inputs_hourly, self._ledger, self._settings, self._clock)
        self._supervisor.start("housekeeping", purge)
        await self._start_beside_others()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await self._supervisor.stop("poll_loop", "housekeeping", *BESIDE_OTHERS)
        await self._work.cancel()
        await self._release_leases()

    def enqueue(self, task: Task) -> None:
        """A new task was written to the ledger as QUEUED: give it its turn."""
        self._open.open(task)
        self._apply_now(task.id, Accepted(), task)
        self._update_queue_metrics()
        self._wake.set()

    async def cancel(self, task_id: str) -> bool:
        """The member pressed Cancel: True if the task ended as cancelled (it was still queued),
        False if it had moved on (sent to KIE, or finished) and nothing changed."""
        task = await self._ledger.get(task_id)
        if task is None:
            return False
        with task_context(task.id, task.guild_id, task.requester_id):
            written = await self._apply(task, CancelRequested())
        self._wake.set()
        return written is not None and written.state != task.state

    def status_context(self, task: Task) -> dict[str, Any]:
        """What the status renderer needs beyond the task itself."""
        return {
            "queue_position": self._scheduler.position(task.id),
            "estimate": self._durations.measured(task.params.model),
            "retry_at": task.retry_at or None,
        }

    # ---- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self.last_tick = time.monotonic()
            try:
                self._dispatch()
                self._poll_due()
                self._expire_out_of_reach()
            except Exception:
                log.exception("poll loop iteration failed")
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the wait completes, and the loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sleep_time()):
                    await self._wake.wait()

    def _sleep_time(self) -> float:
        now = time.monotonic()
        times = [now + 1.0, self._open.wake_at(now)]  # at least once a second (health, timeouts)
        if (wait := self._scheduler.wait_time()) is not None:
            times.append(now + wait)
        return max(0.01, min(t for t in times if t is not None) - now)

    def _dispatch(self) -> None:
        for task_id, user_id in self._open.take_requeues_due(time.monotonic()):
            self._scheduler.push(task_id, user_id, front=True)
        if self.shared.shared:
            # Creates are taken in turn with the other processes (_take_creates_in_turn).
            if self._scheduler.next_user() is not None:
                self._creates_wanted.set()
            return
        moved = False
        while (ticket := self._scheduler.take()) is not None:
            moved = True
            self._dispatched(ticket, refresh=False)
        if moved:
            self._update_queue_metrics()
            self._spawn(None, self._refresh_queued())

    def _dispatched(self, ticket: Ticket, *, refresh: bool = True) -> None:
        """The scheduler gave `ticket` its turn: to KIE (queue metrics and statuses after)."""
        self._spawn(ticket.task_id, self._apply_to(ticket.task_id, Dispatched()))
        if refresh:
            self._update_queue_metrics()
            self._spawn(None, self._refresh_queued())

    def _poll_due(self) -> None:
        """Start the polls that are due, most overdue first, within the account's poll rate."""
        for task_id in self._open.start_polls(time.monotonic()):
            self._spawn(task_id, self._poll(task_id))

    def _expire_out_of_reach(self) -> None:
        """Outside servers the interaction token is the only way to the member: a task not
        delivered a minute before it runs out fails now, while the reply can still say so."""
        for task_id in self._open.take_out_of_reach(self._clock()):
            self._spawn(task_id, self._apply_to(task_id, TokenExpiring()))

    def _spawn(self, task_id: str | None, coro: Coroutine[Any, Any, None]) -> None:
        record = self._open.get(task_id) if task_id is not None else None
        if record is not None:
            record.busy = True

        def done() -> None:
            if record is not None:
                record.busy = False
            self._wake.set()

        self._work.spawn(coro, what=f"work on task {task_id}", on_done=done)

    # ---- decisions -----------------------------------------------------------------------------

    async def _apply_to(self, task_id: str, event: Event) -> None:
        """`_apply` to the task as the ledger has it now."""
        task = await self._ledger.get(task_id)
        if task is None:  # gone from the ledger
            self._scheduler.release(task_id)
            self._open.forget(task_id)
            return
        with task_context(task.id, task.guild_id, task.requester_id):
            await self._apply(task, event)

    async def _apply(self, task: Task, event: Event) -> Task | None:
        """Decide what `event` means for `task` (bot.lifecycle.table), write the transition,
        and carry out the effects; see bot.lifecycle.effects for the order."""
        record = self._open.get(task.id) or OpenTask(task.requester_id, task.state)
        policy = self._durations.policy(self._policy, task.params.model)
        facts = record.facts(time.monotonic(), policy, task, jitter=0.5 + random.random())
        decision = decide(task.state, event, self._clock(), facts)
        if decision is not IGNORE:
            log.debug("task %s: %s -> %s", task.id, type(event).__name__, decision.rule)
        for effect in decision.first:
            await self._carry_out(effect, task)
        written = await write_decision(self._ledger, task, decision, self._clock())
        if written is not None:
            record.seen(written)
        for effect in decision.then if written is not None else decision.otherwise:
            await self._carry_out(effect, written or task)
        return written

    def _apply_now(self, task_id: str, event: Event, task: Task | None = None) -> None:
        """`_apply` for an event whose decision writes nothing and waits for nothing; without
        `task` (a callback) the state and the facts are the task's record alone."""
        record = self._open.get(task_id)
        if record is None:
            return  # not open here: finished, or never this process's
        policy = self._durations.policy(self._policy, task.params.model) if task else self._policy
        facts = record.facts(time.monotonic(), policy, task)
        decision = decide(record.state, event, self._clock(), facts)
        assert decision.to is None and not decision.changes, decision.rule
        for effect in (*decision.first, *decision.then):
            self._carry_out_now(effect, task_id, record.user_id, task)

    async def _carry_out(self, effect: Effect, task: Task) -> None:
        match effect:
            case Submit():
                await self._send_to_kie(task)
            case FetchRecord():
                await self._fetch_record(task)
            case Deliver():
                self._spawn(task.id, self._deliver(task))
            case RetryDelivery(after=after):
                self._spawn(task.id, self._retry_delivery(task, after))
            case PublishFailure():
                await self._delivery.post_failure(task)
            case Settle(outcome=outcome):
                await self._settle(task, outcome)
            case RunHooks():
                await self._hooks.task_finished(task)
            case _:
                self._carry_out_now(effect, task.id, task.requester_id, task)

    def _carry_out_now(
        self, effect: Effect, task_id: str, user_id: int, task: Task | None = None
    ) -> None:
        """The effects that take no time; only WatchToken and ShowStatus need the task."""
        now = time.monotonic()
        if self._open.note(task_id, effect, now):
            return
        match effect:
            case ReleaseSlot():
                self._scheduler.release(task_id)
            case PauseSubmissions(seconds=seconds):
                self._scheduler.pause_until(now + seconds)
                log.warning("KIE rate limit hit; pausing submissions for %.0f s", seconds)
            case Requeue(front=front):
                self._scheduler.push(task_id, user_id, front=front)
            case MarkActive():
                self._scheduler.mark_active(task_id, user_id)
            case CountOrphanedCreate():
                self._metrics.kie_orphaned_creates.inc()
                log.warning(
                    "generate for task %s got no usable answer: KIE may have created it, and "
                    "its credits may be spent; not resending",
                    task_id,
                )
            case WatchToken() if task is not None:
                if task.guild_id is None and (record := self._open.get(task_id)) is not None:
                    record.token_deadline = self._delivery.token_deadline(task)
            case ShowStatus() if task is not None:
                self._delivery.show_status(task)
                if (record := self._open.get(task_id)) and record.following:
                    record.following.status_shown_at = now
            case _:
                raise TypeError(f"{effect!r} cannot be carried out here")

    # ---- submission --------------------------------------------------------------------------

    async def _send_to_kie(self, task: Task) -> None:
        event = await self._submitter.submit(task)
        if await self._apply(task, event) is not None and isinstance(event, Submitted):
            log.info("task %s submitted to KIE as %s", task.id, event.kie_task_id)

    # ---- following -----------------------------------------------------------------------------

    async def _poll(self, task_id: str) -> None:
        if (record := self._open.get(task_id)) is not None and record.following is not None:
            await self.shared.take_slot(POLL_BUDGET)
            await self._apply_to(task_id, PollDue())

    async def _fetch_record(self, task: Task) -> None:
        await self._apply(task, await self._records.read(task))

    # ---- delivery --------------------------------------------------------------------------------

    async def _deliver(self, task: Task) -> None:
        with task_context(task.id, task.guild_id, task.requester_id):
            event = await self._deliverer.deliver(task)
            if await self._apply(task, event) is not None and isinstance(event, Delivered):
                log.info("task %s delivered as message %s", task.id, event.message_id)

    async def _retry_delivery(self, task: Task, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._apply_to(task.id, DeliveryRetryDue())

    # ---- endings -----------------------------------------------------------------------------

    async def _settle(self, task: Task, outcome: str) -> None:
        self._scheduler.remove(task.id)  # queued or active
        self._open.forget(task.id)
        self._delivery.forget(task.id)
        self._update_queue_metrics()
        if outcome == "done":
            self._durations.finished(task)
            self._metrics.task_duration.observe(max(0.0, self._clock() - task.created_at))
        else:
            log.info("task %s failed: %s", task.id, outcome)
        self._metrics.task_outcomes.labels(outcome=outcome).inc()

    # ---- housekeeping ----------------------------------------------------------------------

    async def _refresh_queued(self) -> None:
        positions = self._scheduler.positions()
        for task_id in list(positions)[:50]:
            task = await self._ledger.get(task_id)
            if task is not None and task.state == TaskState.QUEUED:
                self._delivery.show_status(task)

    def _update_queue_metrics(self) -> None:
        self._metrics.queue_depth.set(self._scheduler.queued)


async def write_decision(
    ledger: TaskStore, task: Task, decision: Decision, now: float
) -> Task | None:
    """Write `decision` for `task`: a transition is a compare-and-set on the task's state (a
    failure on any open state); None when the task moved on meanwhile."""
    if decision.to is None:
        if not decision.changes:
            return task
        return await ledger.update(task.id, **decision.changes)
    if decision.to == TaskState.FAILED:
        assert decision.failure is not None
        why = decision.failure
        return await ledger.transition(
            task.id,
            decision.expect or OPEN_STATES,
            state=TaskState.FAILED,
            error_code=why.outcome.value,
            error_message=why.message,
            completed_at=task.completed_at or now,
            rerollable=why.rerollable,
        )
    return await ledger.transition(
        task.id, decision.expect or frozenset({task.state}), state=decision.to, **decision.changes
    )


async def purge_inputs_hourly(
    ledger: TaskAndInputStore, settings: Settings, clock: Callable[[], float]
) -> None:
    """Forget input images of finished tasks after INPUT_RETENTION_DAYS (they are what
    members sent, up to 20 MB each; re-rolls of older edits then ask for the image again),
    and the bot's copies of private results after the same time."""
    while True:
        cutoff = clock() - settings.input_retention_days * 86400
        purged = await ledger.purge_inputs(cutoff)
        copies = await ledger.purge_result_copies(cutoff)
        if purged or copies:
            log.info(
                "purged %d stored input image(s) and %d private result copies older than %g days",
                purged,
                copies,
                settings.input_retention_days,
            )
        await asyncio.sleep(HOUSEKEEPING_INTERVAL)
