"""How the runner works beside other processes (issue 15): it takes up tasks it did not create
in this run (after a restart, from a process that died: its lease ran out), hears of callbacks
another process received, and takes its turn in the account's shared create budget.

A part of Runner (bot/runner.py), kept apart so each class stays readable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from bot.executors import ResultDeliverer
from bot.ledger import LedgerError, Task, TaskState
from bot.lifecycle.events import CallbackNudge, Event, PollDue, Restarted
from bot.lifecycle.open_tasks import OpenTasks
from bot.logs import task_context
from bot.scheduler import Scheduler, Ticket
from bot.shared_work import CREATE_BUDGET, POLL_BUDGET, SharedWork
from bot.supervisor import Supervisor

log = logging.getLogger("bot.runner")


# The background tasks of a process beside others (a shared ledger).
BESIDE_OTHERS: Final = ("leases", "create_turns")


class TakingUp:
    """Mixed into Runner, which sets these."""

    shared: SharedWork
    _open: OpenTasks
    _scheduler: Scheduler
    _wake: asyncio.Event
    _stopping: bool
    _apply: Callable[[Task, Event], Awaitable[Task | None]]
    _apply_now: Callable[..., None]
    _update_queue_metrics: Callable[[], None]
    _creates_wanted: asyncio.Event
    _supervisor: Supervisor
    _dispatched: Callable[[Ticket], None]
    _deliverer: ResultDeliverer
    _spawn: Callable[[str | None, Coroutine[Any, Any, None]], None]

    async def _start_beside_others(self) -> None:
        """On a shared ledger: hear others' callbacks, keep leases, take create turns."""
        if not self.shared.shared:
            return
        await self.shared.listen(self._nudged_elsewhere)
        self._supervisor.start("leases", self._keep_leases)
        self._supervisor.start("create_turns", self._take_creates_in_turn)

    async def _release_leases(self) -> None:
        """A clean stop: another process takes this one's open tasks at once."""
        try:
            await self.shared.release()
        except LedgerError as exc:
            log.warning("could not give back this process's task leases: %s", exc)

    def nudge(self, task_id: str) -> bool:
        """A callback says this task finished: the table says what that means (poll now, or
        remember it until following begins), from the task's record alone. False when the
        task is not open in this process."""
        if self._open.get(task_id) is None:
            return False
        self._apply_now(task_id, CallbackNudge())
        self._wake.set()
        return True

    async def called_back(self, task: Task, result_url: str | None) -> None:
        """This process received (and verified) KIE's callback for `task` (as the ledger had it
        when the callback came), naming `result_url`: act on it here, or tell the process that
        owns it."""
        if not self._take_callback(task, result_url):
            await self.shared.tell_owner(task.id)

    def _take_callback(self, task: Task, result_url: str | None) -> bool:
        """Generating here: the URL is prefetched (posted only if record-info names the same
        URL) and record-info asked at once with this task, within the poll rate, or else
        nudged as `nudge` does. False when the task is not open in this process."""
        record = self._open.get(task.id)
        if record is None:
            return False
        generating = record.state == task.state == TaskState.GENERATING
        polled = (
            generating
            and record.following is not None
            and not record.busy
            and self._open.start_poll(time.monotonic())
        )
        if polled:  # record-info first: it is on the way to the post, the download beside it
            self._spawn(task.id, self._poll_called_back(task))
        if generating and result_url:
            self._deliverer.prefetch(task.id, result_url)
        return True if polled else self.nudge(task.id)

    async def _poll_called_back(self, task: Task) -> None:
        await self.shared.take_slot(POLL_BUDGET)
        with task_context(task.id, task.guild_id, task.requester_id):
            await self._apply(task, PollDue())

    def _nudged_elsewhere(self, task_id: str) -> None:
        if self.nudge(task_id):
            log.info("KIE callback for task %s received by another process", task_id)

    async def _resume(self) -> None:
        tasks = await self.shared.claim_at_start()
        if tasks:
            log.info("resuming %d open task(s)", len(tasks))
        await self._adopt(tasks)

    async def _adopt(self, tasks: list[Task]) -> None:
        """Take up open tasks from the ledger (after a restart, or from a process that died)
        as a restart does: a task KIE already has is followed, never sent again."""
        for task in tasks:
            if self._open.get(task.id) is not None:
                continue
            self._open.open(task)
            with task_context(task.id, task.guild_id, task.requester_id):
                await self._apply(task, Restarted())
        self._update_queue_metrics()
        self._wake.set()

    async def _keep_leases(self) -> None:
        """Renew this process's leases every `renew_every` seconds, and look for tasks of
        processes that stopped renewing every `takeover_every` seconds."""
        renew_at = 0.0
        while not self._stopping:
            await asyncio.sleep(self.shared.takeover_every)
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + self.shared.renew_every
                await self._renew_leases()
            await self._adopt(await self.shared.take_over())

    async def _renew_leases(self) -> None:
        """Renew; forget the tasks this process no longer holds (another took them over after
        it stalled past its lease, or ended them)."""
        # Read before renewing: a task created while the renewal runs is not in `held`.
        known = self._open.idle_ids()
        held = await self.shared.renew()
        for task_id in known:
            record = self._open.get(task_id)
            if task_id in held or record is None or record.busy:
                continue
            log.warning(
                "task %s is no longer this process's (taken over, or ended by another "
                "process); leaving it",
                task_id,
            )
            self._scheduler.remove(task_id)
            self._open.forget(task_id)

    async def _take_creates_in_turn(self) -> None:
        """On a shared ledger: ask for a create slot for the member this process's fair queue
        serves next (the ledger gives it to the member served longest ago, across processes),
        and once granted take that member's task: one slot asked for at a time."""
        while not self._stopping:
            user_id = self._scheduler.next_user()
            if user_id is None:
                await self._creates_wanted.wait()
                self._creates_wanted.clear()
                continue
            wait = await self.shared.try_slot(CREATE_BUDGET, member=user_id)
            if wait:
                await asyncio.sleep(wait)
            elif (ticket := self._scheduler.take()) is not None:
                self._dispatched(ticket)
