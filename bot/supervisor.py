"""Background work that nobody awaits: kept alive, reported, and stopped on the way out.

- :class:`Supervisor` runs the bot's long-lived loops (the poll loop, the credit watcher, the
  housekeeping, the loop-lag monitor). One that raises is logged with its traceback and started
  again after a capped back-off; :meth:`Supervisor.health` says which are down for ``/healthz``.
- :class:`WorkSet` runs short pieces of work (one poll, one delivery, one status edit): it keeps
  a strong reference to each, logs an exception with its traceback, and cancels or awaits them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

FIRST_DELAY = 1.0
MAX_DELAY = 60.0
STABLE_AFTER = 60.0  # a run this long before failing starts the back-off afresh

Loop = Callable[[], Coroutine[Any, Any, None]]


def backoff_delay(attempt: int, *, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, …): doubling, capped."""
    return float(min(cap, first * 2 ** max(0, attempt - 1)))


@dataclass
class TaskHealth:
    """What ``/healthz`` shows of one supervised task."""

    state: str  # "running", "restarting" (failed, waiting for its restart) or "stopped"
    restarts: int = 0
    error: str | None = None  # the last failure, while restarting
    restart_at: float | None = None  # monotonic

    @property
    def ok(self) -> bool:
        return self.state != "restarting"

    def as_check(self, now: float) -> dict[str, Any]:
        check: dict[str, Any] = {"ok": self.ok, "state": self.state, "restarts": self.restarts}
        if not self.ok:
            check["error"] = self.error
            if self.restart_at is not None:
                check["restart_in_seconds"] = round(max(0.0, self.restart_at - now), 1)
        return check


class Supervisor:
    """Keeps the named long-lived tasks running until :meth:`stop`."""

    def __init__(
        self,
        *,
        on_restart: Callable[[str], None] | None = None,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        stable_after: float = STABLE_AFTER,
    ) -> None:
        self._on_restart = on_restart
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._stable_after = stable_after
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._health: dict[str, TaskHealth] = {}

    def start(self, name: str, loop: Loop) -> None:
        """Run ``loop()`` under ``name``; run it again whenever it raises or returns."""
        if name in self._tasks and not self._tasks[name].done():
            raise RuntimeError(f"background task {name} is already running")
        self._health[name] = TaskHealth("running")
        self._tasks[name] = asyncio.create_task(self._keep_running(name, loop), name=name)

    def health(self) -> dict[str, TaskHealth]:
        return dict(self._health)

    async def stop(self, *names: str) -> None:
        """Stop the named tasks (every task when none is named) and wait; never raises."""
        chosen = names or tuple(self._tasks)
        tasks = [self._tasks.pop(name) for name in chosen if name in self._tasks]
        for name in chosen:
            if name in self._health:
                self._health[name] = TaskHealth("stopped", self._health[name].restarts)
        for task in tasks:
            task.cancel()
        # _keep_running catches every Exception: each ends with its CancelledError.
        await asyncio.gather(*tasks, return_exceptions=True)
        if tasks:
            log.info("stopped background tasks: %s", ", ".join(t.get_name() for t in tasks))

    async def _keep_running(self, name: str, loop: Loop) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await loop()
                problem, exc_info = "returned", None
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"[:300]
                exc_info = exc
            if time.monotonic() - started >= self._stable_after:
                failures = 0
            failures += 1
            delay = backoff_delay(failures, first=self._first_delay, cap=self._max_delay)
            health = self._health[name]
            health.state, health.error = "restarting", problem
            health.restart_at = time.monotonic() + delay
            log.error(
                "background task %s failed (%s); restarting it in %g s",
                name,
                problem,
                delay,
                exc_info=exc_info,
            )
            await asyncio.sleep(delay)
            health.state, health.error, health.restart_at = "running", None, None
            health.restarts += 1
            if self._on_restart is not None:
                self._on_restart(name)
            log.warning("background task %s restarted (restart %d)", name, health.restarts)


class WorkSet:
    """Short-lived work started in the background, owned until it ends."""

    def __init__(self) -> None:
        self._work: set[asyncio.Task[None]] = set()

    def spawn(
        self,
        coro: Coroutine[Any, Any, None],
        *,
        what: str,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """Run ``coro``; an exception is logged (``what`` failed) with its traceback."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed", what)
            finally:
                if on_done is not None:
                    on_done()

        work = asyncio.create_task(guarded())
        self._work.add(work)
        work.add_done_callback(self._work.discard)

    def __len__(self) -> int:
        return len(self._work)

    async def wait(self) -> None:
        """Wait for every piece of work to end (none raises: failures were logged)."""
        if self._work:
            await asyncio.gather(*self._work, return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel every piece of work and wait for it to end."""
        for work in list(self._work):
            work.cancel()
        await self.wait()
