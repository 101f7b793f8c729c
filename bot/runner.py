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

from bot import images
from bot.config import Settings
from bot.delivery import Delivery, DeliveryFailed
from bot.kie import (
    GenerateRequest,
    KieAuthError,
    KieBadResponse,
    KieClient,
    KieConnectError,
    KieError,
    KieInsufficientCredits,
    KieRateLimited,
    KieTransportError,
    KieValidationError,
    SuccessFlag,
    TaskRecord,
)
from bot.ledger import Task, TaskAndInputStore, TaskKind, TaskState
from bot.logs import task_context
from bot.metrics import Metrics
from bot.outcomes import Failure, Outcome, failure, outcome_for_kie_code
from bot.polling import next_poll_delay
from bot.scheduler import Scheduler
from bot.status import estimate_duration
from bot.supervisor import Supervisor, WorkSet

log = logging.getLogger(__name__)

RATE_LIMIT_PAUSE = 10.0  # KIE drops a create over the limit: wait out a whole window
MAX_SUBMIT_ATTEMPTS = 3  # generate calls for one task (429s do not count)
MAX_DELIVERY_ATTEMPTS = 4
RESULT_MAX_BYTES = 50 * 1024 * 1024
NOT_FOUND_GRACE = 60.0  # KIE may not know a fresh task id yet
STATUS_REFRESH = 10.0  # "generating — N s elapsed" refresh while a task runs
POLL_CONCURRENCY = 16
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
    polls: int = 0
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
        self._poll_slots = asyncio.Semaphore(POLL_CONCURRENCY)
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
        self._scheduler.push(task.id, task.requester_id)
        self._watch_token(task)
        self._update_queue_metrics()
        self._delivery.show_status(task)
        self._wake.set()

    def nudge(self, task_id: str) -> None:
        """A callback says this task finished: confirm with record-info now."""
        follow = self._follow.get(task_id)
        if follow is not None:
            follow.next_at = 0.0
            self._wake.set()
        else:
            # KIE can call back before the submission is recorded (a task that finishes at
            # once): remember it briefly, so following starts with a check, not the fallback.
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
        if task is None or task.terminal or task.state == TaskState.DELIVERING:
            return  # a delivery under way still has the token's last minute
        with task_context(task.id, task.guild_id, task.requester_id):
            log.warning("task %s: interaction token nearly spent; giving up", task_id)
            await self._fail(task, failure(Outcome.TOO_LATE))

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

    # ---- submission --------------------------------------------------------------------------

    async def _submit(self, task_id: str) -> None:
        task = await self._ledger.get(task_id)
        if task is None or task.state != TaskState.QUEUED:
            self._scheduler.release(task_id)
            return
        with task_context(task.id, task.guild_id, task.requester_id):
            moved = await self._ledger.transition(
                task_id,
                frozenset({TaskState.QUEUED}),
                state=TaskState.SUBMITTING,
                attempts=task.attempts + 1,
                retry_at=None,
            )
            if moved is None:
                self._scheduler.release(task_id)
                return
            task = moved
            self._delivery.show_status(task)
            try:
                input_url = await self._input_url(task)
            except KieError as exc:
                await self._submit_failed(task, exc)
                return
            except _InputMissing:
                await self._fail(task, failure(Outcome.INPUT_UNAVAILABLE))
                return
            request = GenerateRequest(
                prompt=task.params.prompt,
                input_image=input_url,
                aspect_ratio=task.params.aspect_ratio,
                output_format=task.params.output_format,
                prompt_upsampling=task.params.enhance_prompt,
                model=task.params.model,
                callback_url=self._callback_url(task),
                safety_tolerance=task.params.safety_tolerance,
            )
            try:
                kie_task_id = await self._kie.generate(request)
            except KieError as exc:
                await self._submit_failed(task, exc)
                return
            now = self._clock()
            moved = await self._ledger.transition(
                task_id,
                frozenset({TaskState.SUBMITTING}),
                state=TaskState.GENERATING,
                kie_task_id=kie_task_id,
                submitted_at=now,
            )
            if moved is None:
                return
            log.info("task %s submitted to KIE as %s", task_id, kie_task_id)
            self._follow_task(moved, elapsed=0.0)
            self._delivery.show_status(moved)

    async def _input_url(self, task: Task) -> str | None:
        if task.kind != TaskKind.EDIT:
            return None
        if task.input_image_url:
            return task.input_image_url
        stored = await self._ledger.get_input(task.id)
        if stored is None:
            raise _InputMissing
        ext = stored.filename.rsplit(".", 1)[-1] if "." in stored.filename else "png"
        uploaded = await self._kie.upload_file(
            stored.data, f"{task.id}.{ext}", content_type=stored.content_type
        )
        await self._ledger.update(task.id, input_image_url=uploaded.download_url)
        return uploaded.download_url

    def _callback_url(self, task: Task) -> str | None:
        base = self._settings.public_base_url
        if base is None or not task.callback_secret:
            return None
        return f"{base}/kie/callback/{task.callback_secret}"

    async def _submit_failed(self, task: Task, exc: KieError) -> None:
        self._scheduler.release(task.id)
        if isinstance(exc, KieRateLimited):
            # KIE dropped the create: the whole account waits out the window, the task keeps
            # its place at the front, and its status says when it retries.
            retry_at = self._clock() + RATE_LIMIT_PAUSE
            self._scheduler.pause_until(time.monotonic() + RATE_LIMIT_PAUSE)
            log.warning("KIE rate limit hit; pausing submissions for %.0f s", RATE_LIMIT_PAUSE)
            requeued = await self._requeue(task, retry_at=retry_at, attempts=task.attempts - 1)
            if requeued is not None:
                self._scheduler.push(task.id, task.requester_id, front=True)
                self._delivery.show_status(requeued)
            return
        if _may_have_created(exc):
            # The create may have reached KIE before its answer was lost; KIE has no
            # idempotency key, so resending could make (and charge) a second image.
            self._metrics.kie_orphaned_creates.inc()
            log.warning(
                "generate for task %s got no usable answer (%s): KIE may have created it, and "
                "its credits may be spent; not resending",
                task.id,
                exc,
            )
            await self._fail(task, failure(Outcome.NO_ANSWER))
            return
        if isinstance(exc, KieTransportError) and not isinstance(exc, KieConnectError):
            # An upload that got no answer: the member is told, nothing is resent blindly.
            log.warning("%s for %s got no answer (%s); not resending", exc.endpoint, task.id, exc)
            await self._fail(task, failure(Outcome.NO_ANSWER))
            return
        if exc.retryable and task.attempts < MAX_SUBMIT_ATTEMPTS:
            delay = min(60.0, 2.0 * 2 ** (task.attempts - 1)) * (0.5 + random.random())
            log.warning("submission of %s failed (%s); retrying in %.1f s", task.id, exc, delay)
            requeued = await self._requeue(
                task, retry_at=self._clock() + delay, attempts=task.attempts
            )
            if requeued is not None:
                self._retry_at[task.id] = (time.monotonic() + delay, task.requester_id)
                self._delivery.show_status(requeued)
            return
        log.warning("submission of %s failed for good: %s", task.id, exc)
        await self._fail(task, self._failure_for(exc))

    async def _requeue(self, task: Task, *, retry_at: float, attempts: int) -> Task | None:
        return await self._ledger.transition(
            task.id,
            frozenset({TaskState.SUBMITTING}),
            state=TaskState.QUEUED,
            attempts=attempts,
            retry_at=retry_at,
        )

    # ---- following -----------------------------------------------------------------------------

    def _follow_task(self, task: Task, *, elapsed: float, now_: bool = False) -> None:
        early = self._early_nudges.pop(task.id, None) is not None
        delay = 0.0 if now_ or early else self._poll_delay(elapsed)
        self._follow[task.id] = _Follow(next_at=time.monotonic() + delay)

    def _poll_delay(self, elapsed: float) -> float:
        return next_poll_delay(
            elapsed,
            self._estimate,
            self._settings.poll_interval_seconds,
            callbacks=self._settings.callbacks_enabled,
        )

    async def _poll(self, task_id: str) -> None:
        follow = self._follow.get(task_id)
        task = await self._ledger.get(task_id)
        if (
            follow is None
            or task is None
            or task.state != TaskState.GENERATING
            or not task.kie_task_id
        ):
            self._follow.pop(task_id, None)
            return
        with task_context(task.id, task.guild_id, task.requester_id):
            elapsed = self._clock() - (task.submitted_at or task.created_at)
            if elapsed > self._settings.task_timeout_seconds:
                self._follow.pop(task_id, None)
                await self._fail(task, failure(Outcome.TIMED_OUT))
                return
            async with self._poll_slots:
                follow.polls += 1
                try:
                    record = await self._kie.record_info(task.kie_task_id)
                except KieValidationError:
                    follow.not_found += 1
                    if elapsed > NOT_FOUND_GRACE and follow.not_found >= 3:
                        self._follow.pop(task_id, None)
                        await self._fail(task, failure(Outcome.INTERNAL_ERROR))
                        return
                    follow.next_at = time.monotonic() + self._settings.poll_interval_seconds
                    return
                except KieAuthError as exc:
                    self._follow.pop(task_id, None)
                    await self._fail(task, self._failure_for(exc))
                    return
                except KieError as exc:
                    follow.errors += 1
                    backoff = min(30.0, self._settings.poll_interval_seconds * 2**follow.errors)
                    log.warning(
                        "record-info for %s failed (%s); next try in %.1f s", task_id, exc, backoff
                    )
                    follow.next_at = time.monotonic() + backoff
                    return
            follow.errors = 0
            await self._on_record(task, record, follow, elapsed)

    async def _on_record(
        self, task: Task, record: TaskRecord, follow: _Follow, elapsed: float
    ) -> None:
        if record.success_flag == SuccessFlag.GENERATING:
            follow.next_at = time.monotonic() + self._poll_delay(elapsed)
            if time.monotonic() - follow.last_status >= STATUS_REFRESH:
                follow.last_status = time.monotonic()
                self._delivery.show_status(task)
            return
        self._follow.pop(task.id, None)
        if record.success_flag == SuccessFlag.SUCCESS:
            url = record.result_image_url or record.origin_image_url
            if not url:
                await self._fail(task, failure(Outcome.RESULT_UNAVAILABLE))
                return
            moved = await self._ledger.transition(
                task.id,
                frozenset({TaskState.GENERATING}),
                state=TaskState.DELIVERING,
                result_url=url,
                completed_at=self._clock(),
            )
            if moved is not None:
                await self._deliver(moved)
            return
        code = record.error_code
        log.info(
            "KIE reports task %s failed: flag %s, code %s", task.id, int(record.success_flag), code
        )
        if code == 500 and task.attempts < MAX_SUBMIT_ATTEMPTS:
            # An internal error on KIE's side: a fresh task usually goes through.
            requeued = await self._ledger.transition(
                task.id,
                frozenset({TaskState.GENERATING}),
                state=TaskState.QUEUED,
                kie_task_id=None,
                submitted_at=None,
            )
            if requeued is not None:
                self._scheduler.release(task.id)
                self._scheduler.push(task.id, task.requester_id, front=True)
                self._delivery.show_status(requeued)
            return
        await self._fail(task, failure(outcome_for_kie_code(code)))

    # ---- delivery --------------------------------------------------------------------------------

    async def _deliver(self, task: Task) -> None:
        with task_context(task.id, task.guild_id, task.requester_id):
            assert task.result_url is not None
            detected = time.monotonic()
            try:
                data = await self._kie.fetch_result(task.result_url, max_bytes=RESULT_MAX_BYTES)
                _, _, fmt = await images.in_worker(images.probe, data)
            except (KieError, ValueError, images.ImageRejected) as exc:
                # A KIE error that retrying cannot fix (the result expired, or is too large)
                # ends the task now instead of after every delivery attempt.
                permanent = isinstance(exc, KieError) and not exc.retryable
                await self._delivery_problem(
                    task, f"result download failed: {exc}", permanent=permanent
                )
                return
            extension = "png" if fmt.lower() == "png" else "jpg"
            try:
                message_id = await self._delivery.post_result(
                    task, data, extension, spoiler=task.spoiler
                )
            except DeliveryFailed as exc:
                if exc.too_late:
                    await self._fail(task, failure(Outcome.TOO_LATE))
                    return
                await self._delivery_problem(task, str(exc), permanent=exc.permanent)
                return
            done = await self._ledger.transition(
                task.id,
                frozenset({TaskState.DELIVERING}),
                state=TaskState.DONE,
                delivered_at=self._clock(),
                result_message_id=message_id,
            )
            self._metrics.delivery_latency.observe(time.monotonic() - detected)
            if done is not None:
                self._finished(done)
                # After the task is DONE, so the estimate counts it (it lagged one task behind).
                await self._refresh_estimate()
                self._metrics.task_outcomes.labels(outcome="done").inc()
                self._metrics.task_duration.observe(max(0.0, self._clock() - done.created_at))
                log.info("task %s delivered as message %s", task.id, message_id)
                await self._hooks.task_finished(done)

    async def _delivery_problem(self, task: Task, reason: str, *, permanent: bool) -> None:
        attempts = task.delivery_attempts + 1
        if permanent or attempts >= MAX_DELIVERY_ATTEMPTS:
            log.warning("giving up on delivering %s: %s", task.id, reason)
            outcome = Outcome.CANNOT_POST if "permission" in reason else Outcome.RESULT_UNAVAILABLE
            await self._fail(task, failure(outcome))
            return
        delay = 2.0 * 2**attempts
        log.warning("delivery of %s failed (%s); retrying in %.0f s", task.id, reason, delay)
        updated = await self._ledger.update(task.id, delivery_attempts=attempts)
        self._spawn(task.id, self._retry_delivery(updated, delay))

    async def _retry_delivery(self, task: Task, delay: float) -> None:
        await asyncio.sleep(delay)
        current = await self._ledger.get(task.id)
        if current is not None and current.state == TaskState.DELIVERING:
            await self._deliver(current)

    # ---- endings -----------------------------------------------------------------------------

    async def _fail(self, task: Task, why: Failure) -> None:
        failed = await self._ledger.transition(
            task.id,
            frozenset(s for s in TaskState if not s.terminal),
            state=TaskState.FAILED,
            error_code=why.outcome.value,
            error_message=why.message,
            completed_at=task.completed_at or self._clock(),
            rerollable=why.rerollable,
        )
        if failed is None:
            return
        log.info("task %s failed: %s", task.id, why.outcome.value)
        self._finished(failed)
        self._metrics.task_outcomes.labels(outcome=why.outcome.value).inc()
        await self._delivery.post_failure(failed)
        await self._hooks.task_finished(failed)

    def _finished(self, task: Task) -> None:
        self._scheduler.release(task.id)
        self._scheduler.remove(task.id)
        self._follow.pop(task.id, None)
        self._retry_at.pop(task.id, None)
        self._early_nudges.pop(task.id, None)
        self._token_deadlines.pop(task.id, None)
        self._delivery.forget(task.id)
        self._update_queue_metrics()

    def _failure_for(self, exc: KieError) -> Failure:
        if isinstance(exc, KieInsufficientCredits):
            return failure(Outcome.OUT_OF_CREDITS)
        return failure(outcome_for_kie_code(exc.code))

    # ---- restart and housekeeping --------------------------------------------------------------

    async def _resume(self) -> None:
        tasks = await self._ledger.open_tasks()
        if tasks:
            log.info("resuming %d open task(s)", len(tasks))
        for stored in tasks:
            task = stored
            self._watch_token(task)
            if task.state in (TaskState.QUEUED, TaskState.SUBMITTING):
                if task.kie_task_id:
                    # KIE already has it: never submit twice.
                    task = await self._ledger.update(task.id, state=TaskState.GENERATING)
                else:
                    if task.state == TaskState.SUBMITTING:
                        # The generate call may or may not have reached KIE; with no task id
                        # recorded there is nothing to follow, so it is submitted again.
                        await self._ledger.update(task.id, state=TaskState.QUEUED)
                    self._scheduler.push(task.id, task.requester_id)
                    continue
            self._scheduler.mark_active(task.id, task.requester_id)
            if task.state == TaskState.GENERATING:
                self._follow_task(task, elapsed=0.0, now_=True)
            elif task.state == TaskState.DELIVERING:
                self._spawn(task.id, self._deliver(task))
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


class _InputMissing(Exception):
    pass


def _may_have_created(exc: KieError) -> bool:
    """A generate whose answer was lost or unreadable: KIE may have created the task."""
    if exc.endpoint != "generate":
        return False
    if isinstance(exc, KieBadResponse):
        return True
    return isinstance(exc, KieTransportError) and not isinstance(exc, KieConnectError)
