"""The task lifecycle: submit, follow (one poll loop for every task), finish, resume after restart.

The ledger is the source of truth: each transition is written (compare-and-set on the state)
before it is acted on, so two paths (a callback and a poll, say) can never both deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.config import Settings
from bot.delivery import Delivery
from bot.executors import RecordReader, ResultDeliverer, Submitter
from bot.kie import KieClient
from bot.ledger import Task, TaskAndInputStore, TaskState
from bot.ledger.models import OPEN_STATES
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
    Delivered,
    DeliveryRetryDue,
    Dispatched,
    Event,
    Facts,
    Policy,
    PollDue,
    Restarted,
    Submitted,
    TokenExpiring,
)
from bot.lifecycle.table import MAX_SUBMIT_ATTEMPTS, decide
from bot.logs import task_context
from bot.metrics import Metrics
from bot.scheduler import Scheduler
from bot.status import estimate_duration
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


@dataclass
class _Follow:
    next_at: float  # monotonic
    not_found: int = 0
    errors: int = 0
    last_status: float = field(default_factory=time.monotonic)


class Runner:
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: TaskAndInputStore,
        kie: KieClient,
        scheduler: Scheduler,
        delivery: Delivery,
        metrics: Metrics,
        hooks: TaskHooks | None = None,
        supervisor: Supervisor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._kie = kie
        self._scheduler = scheduler
        self._delivery = delivery
        self._metrics = metrics
        self._hooks: TaskHooks = hooks or _NoHooks()
        self._clock = clock
        self._wake = asyncio.Event()
        self._follow: dict[str, _Follow] = {}
        self._retry_at: dict[str, tuple[float, int]] = {}  # task id -> (monotonic, user id)
        self._early_nudges: dict[str, float] = {}  # callbacks before following began (monotonic)
        self._token_deadlines: dict[str, float] = {}  # tasks outside servers (wall clock)
        self._busy: set[str] = set()
        self._work = WorkSet()
        self._submitter = Submitter(kie, ledger, ledger, settings)
        self._records = RecordReader(kie)
        self._deliverer = ResultDeliverer(kie, delivery, metrics)
        self._poll_starts: deque[float] = deque()  # record-info starts in the last second
        self._estimate: float | None = None
        self._supervisor = supervisor or Supervisor()
        self._stopping = False
        self.last_tick = time.monotonic()

    # ---- public interface ----------------------------------------------------------------

    async def start(self) -> None:
        await self._refresh_estimate()
        await self._resume()
        self._supervisor.start("poll_loop", self._run)
        self._supervisor.start("housekeeping", self._housekeeping_loop)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await self._supervisor.stop("poll_loop", "housekeeping")
        await self._work.cancel()

    def enqueue(self, task: Task) -> None:
        """A new task was written to the ledger as QUEUED: give it its turn."""
        self._apply_now(task, Accepted())
        self._update_queue_metrics()
        self._wake.set()

    def nudge(self, task_id: str) -> None:
        """A callback says this task finished: confirm with record-info now."""
        follow = self._follow.get(task_id)
        if follow is not None:
            follow.next_at = 0.0
            self._wake.set()
        else:
            self._remember_nudge(task_id)

    def _remember_nudge(self, task_id: str) -> None:
        # KIE can call back before the submission is recorded (a task that finishes at once):
        # remember it briefly, so following starts with a check, not the fallback.
        now = time.monotonic()
        for stale in [t for t, at in self._early_nudges.items() if now - at > 60]:
            del self._early_nudges[stale]
        self._early_nudges[task_id] = now

    def status_context(self, task: Task) -> dict[str, Any]:
        """What the status renderer needs beyond the task itself."""
        return {
            "queue_position": self._scheduler.position(task.id),
            "estimate": self._estimate,
            "retry_at": task.retry_at or None,
        }

    @property
    def open_count(self) -> int:
        return self._scheduler.queued + len(self._follow) + len(self._retry_at)

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
        candidates = [1.0]  # the loop ticks at least once a second (health, timeouts)
        wait = self._scheduler.wait_time()
        if wait is not None:
            candidates.append(wait)
        if self._poll_budget(now) > 0:
            candidates.extend(
                f.next_at - now for t, f in self._follow.items() if t not in self._busy
            )
        else:
            candidates.append(self._poll_starts[0] + 1.0 - now)
        candidates.extend(at - now for at, _ in self._retry_at.values())
        return max(0.01, min(candidates))

    def _dispatch(self) -> None:
        now = time.monotonic()
        for task_id, (at, user_id) in list(self._retry_at.items()):
            if at <= now:
                del self._retry_at[task_id]
                self._scheduler.push(task_id, user_id, front=True)
        moved = False
        while (ticket := self._scheduler.take()) is not None:
            moved = True
            self._spawn(ticket.task_id, self._submit(ticket.task_id))
        if moved:
            self._update_queue_metrics()
            self._spawn(None, self._refresh_queued())

    def _poll_due(self) -> None:
        """Start the polls that are due, most overdue first, within the account's poll rate."""
        now = time.monotonic()
        budget = self._poll_budget(now)
        if budget <= 0:
            return
        due = sorted(
            (follow.next_at, task_id)
            for task_id, follow in self._follow.items()
            if follow.next_at <= now and task_id not in self._busy
        )
        for _, task_id in due[:budget]:
            self._poll_starts.append(now)
            self._spawn(task_id, self._poll(task_id))

    def _watch_token(self, task: Task) -> None:
        if task.guild_id is None:
            self._token_deadlines[task.id] = self._delivery.token_deadline(task)

    def _expire_out_of_reach(self) -> None:
        """Outside servers the interaction token is the only way to the member: a task not
        delivered a minute before it runs out fails now, while the reply can still say so."""
        now = self._clock()
        for task_id, deadline in list(self._token_deadlines.items()):
            if deadline <= now and task_id not in self._busy:
                del self._token_deadlines[task_id]
                self._spawn(task_id, self._give_up_too_late(task_id))

    async def _give_up_too_late(self, task_id: str) -> None:
        task = await self._ledger.get(task_id)
        if task is not None:
            with task_context(task.id, task.guild_id, task.requester_id):
                await self._apply(task, TokenExpiring())

    def _poll_budget(self, now: float) -> int:
        while self._poll_starts and now - self._poll_starts[0] >= 1.0:
            self._poll_starts.popleft()
        return self._settings.kie_max_polls_per_second - len(self._poll_starts)

    def _spawn(self, task_id: str | None, coro: Coroutine[Any, Any, None]) -> None:
        if task_id is not None:
            self._busy.add(task_id)

        def done() -> None:
            if task_id is not None:
                self._busy.discard(task_id)
            self._wake.set()

        self._work.spawn(coro, what=f"work on task {task_id}", on_done=done)

    # ---- decisions -----------------------------------------------------------------------------

    async def _apply(self, task: Task, event: Event) -> Task | None:
        """Decide what `event` means for `task` (bot.lifecycle.table), write the transition,
        and carry out the effects; see bot.lifecycle.effects for the order."""
        decision = decide(task.state, event, self._clock(), self._facts(task))
        if decision is not IGNORE:
            log.debug("task %s: %s -> %s", task.id, type(event).__name__, decision.rule)
        for effect in decision.first:
            await self._carry_out(effect, task)
        written = await self._write(task, decision)
        for effect in decision.then if written is not None else decision.otherwise:
            await self._carry_out(effect, written or task)
        return written

    def _apply_now(self, task: Task, event: Event) -> None:
        """`_apply` for an event whose decision writes nothing and waits for nothing."""
        decision = decide(task.state, event, self._clock(), self._facts(task))
        assert decision.to is None and not decision.changes, decision.rule
        for effect in (*decision.first, *decision.then):
            self._carry_out_now(effect, task)

    def _facts(self, task: Task) -> Facts:
        follow = self._follow.get(task.id)
        return Facts(
            attempts=task.attempts,
            started_at=task.submitted_at or task.created_at,
            has_kie_task_id=bool(task.kie_task_id),
            delivery_attempts=task.delivery_attempts,
            not_found=follow.not_found if follow else 0,
            poll_errors=follow.errors if follow else 0,
            status_age=time.monotonic() - follow.last_status if follow else 0.0,
            early_nudge=task.id in self._early_nudges,
            jitter=0.5 + random.random(),
            policy=Policy(
                poll_interval=self._settings.poll_interval_seconds,
                task_timeout=self._settings.task_timeout_seconds,
                callbacks=self._settings.callbacks_enabled,
                estimate=self._estimate,
            ),
        )

    async def _write(self, task: Task, decision: Decision) -> Task | None:
        if decision.to is None:
            if not decision.changes:
                return task
            return await self._ledger.update(task.id, **decision.changes)
        if decision.to == TaskState.FAILED:
            assert decision.failure is not None
            why = decision.failure
            return await self._ledger.transition(
                task.id,
                OPEN_STATES,
                state=TaskState.FAILED,
                error_code=why.outcome.value,
                error_message=why.message,
                completed_at=task.completed_at or self._clock(),
                rerollable=why.rerollable,
            )
        return await self._ledger.transition(
            task.id, frozenset({task.state}), state=decision.to, **decision.changes
        )

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
                self._carry_out_now(effect, task)

    def _carry_out_now(self, effect: Effect, task: Task) -> None:
        match effect:
            case ReleaseSlot():
                self._scheduler.release(task.id)
            case PauseSubmissions(seconds=seconds):
                self._scheduler.pause_until(time.monotonic() + seconds)
                log.warning("KIE rate limit hit; pausing submissions for %.0f s", seconds)
            case Requeue(after=after) if after > 0:
                self._retry_at[task.id] = (time.monotonic() + after, task.requester_id)
            case Requeue(front=front):
                self._scheduler.push(task.id, task.requester_id, front=front)
            case MarkActive():
                self._scheduler.mark_active(task.id, task.requester_id)
            case WatchToken():
                self._watch_token(task)
            case CountOrphanedCreate():
                self._metrics.kie_orphaned_creates.inc()
                log.warning(
                    "generate for task %s got no usable answer: KIE may have created it, and "
                    "its credits may be spent; not resending",
                    task.id,
                )
            case Follow():
                self._follow_at(task.id, effect)
            case StopFollowing():
                self._follow.pop(task.id, None)
            case RememberNudge():
                self._remember_nudge(task.id)
            case ShowStatus():
                self._delivery.show_status(task)
                if (follow := self._follow.get(task.id)) is not None:
                    follow.last_status = time.monotonic()
            case _:
                raise TypeError(f"{effect!r} cannot be carried out here")

    # ---- submission --------------------------------------------------------------------------

    async def _submit(self, task_id: str) -> None:
        task = await self._ledger.get(task_id)
        if task is None:
            self._scheduler.release(task_id)
            return
        with task_context(task.id, task.guild_id, task.requester_id):
            await self._apply(task, Dispatched())

    async def _send_to_kie(self, task: Task) -> None:
        event = await self._submitter.submit(task)
        if await self._apply(task, event) is not None and isinstance(event, Submitted):
            log.info("task %s submitted to KIE as %s", task.id, event.kie_task_id)

    # ---- following -----------------------------------------------------------------------------

    def _follow_at(self, task_id: str, when: Follow) -> None:
        self._early_nudges.pop(task_id, None)
        follow = self._follow.setdefault(task_id, _Follow(next_at=0.0))
        follow.next_at = time.monotonic() + when.after
        follow.not_found = when.not_found
        follow.errors = when.poll_errors

    async def _poll(self, task_id: str) -> None:
        task = await self._ledger.get(task_id)
        if task is None or task_id not in self._follow:
            self._follow.pop(task_id, None)
            return
        with task_context(task.id, task.guild_id, task.requester_id):
            await self._apply(task, PollDue())

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
        current = await self._ledger.get(task.id)
        if current is not None:
            await self._apply(current, DeliveryRetryDue())

    # ---- endings -----------------------------------------------------------------------------

    async def _settle(self, task: Task, outcome: str) -> None:
        self._finished(task)
        if outcome == "done":
            # After the task is DONE, so the estimate counts it (it lagged one task behind).
            await self._refresh_estimate()
            self._metrics.task_duration.observe(max(0.0, self._clock() - task.created_at))
        else:
            log.info("task %s failed: %s", task.id, outcome)
        self._metrics.task_outcomes.labels(outcome=outcome).inc()

    def _finished(self, task: Task) -> None:
        self._scheduler.release(task.id)
        self._scheduler.remove(task.id)
        self._follow.pop(task.id, None)
        self._retry_at.pop(task.id, None)
        self._early_nudges.pop(task.id, None)
        self._token_deadlines.pop(task.id, None)
        self._delivery.forget(task.id)
        self._update_queue_metrics()

    # ---- restart and housekeeping --------------------------------------------------------------

    async def _resume(self) -> None:
        tasks = await self._ledger.open_tasks()
        if tasks:
            log.info("resuming %d open task(s)", len(tasks))
        for task in tasks:
            await self._apply(task, Restarted())
        self._update_queue_metrics()

    async def _housekeeping_loop(self) -> None:
        while True:
            await self._housekeeping()
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)

    async def _housekeeping(self) -> None:
        """Forget input images of finished tasks after INPUT_RETENTION_DAYS (they are what
        members sent, up to 20 MB each; re-rolls of older edits then ask for the image again)."""
        cutoff = self._clock() - self._settings.input_retention_days * 86400
        purged = await self._ledger.purge_inputs(cutoff)
        if purged:
            log.info(
                "purged %d stored input image(s) older than %g days",
                purged,
                self._settings.input_retention_days,
            )

    async def _refresh_estimate(self) -> None:
        self._estimate = estimate_duration(await self._ledger.recent_durations(50))

    async def _refresh_queued(self) -> None:
        positions = self._scheduler.positions()
        for task_id in list(positions)[:50]:
            task = await self._ledger.get(task_id)
            if task is not None and task.state == TaskState.QUEUED:
                self._delivery.show_status(task)

    def _update_queue_metrics(self) -> None:
        self._metrics.queue_depth.set(self._scheduler.queued)
