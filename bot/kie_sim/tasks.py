"""The simulator's tasks: scripted outcomes, the input image fetch, and finishing on a timer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.kie_sim.background import Background
from bot.kie_sim.files import FileStore
from bot.kie_sim.images import sniff_image
from bot.kie_sim.model import (
    CALLBACK_MSGS,
    MARKER_RE,
    MARKERS,
    MAX_INPUT,
    OUTCOMES,
    SimClock,
    SimConfig,
    SimTask,
)

log = logging.getLogger("bot.kie_sim.server")

# (flag, errorCode, errorMessage) of each failed outcome.
_FAILURES = {
    "content_policy": (3, 400, CALLBACK_MSGS[400]),
    "generation_failed": (3, 501, CALLBACK_MSGS[501]),
    "internal_error": (3, 500, CALLBACK_MSGS[500]),
    "create_failed": (2, 500, "Failed to create the task"),
}


class TaskBoard:
    """Creates tasks with their scripted outcome and finishes each after its delay."""

    def __init__(
        self,
        config: SimConfig,
        clock: SimClock,
        tasks: dict[str, SimTask],
        *,
        files: FileStore,
        background: Background,
        base_url: Callable[[], str],
        session: Callable[[], aiohttp.ClientSession],
        finished: Callable[[SimTask], None],
    ) -> None:
        self._config = config
        self._clock = clock
        self._tasks = tasks
        self._files = files
        self._background = background
        self._base_url = base_url
        self._session = session
        self._finished = finished
        self._script: deque[str] = deque()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._input_fetches: dict[str, asyncio.Task[None]] = {}

    def script(self, outcome: str, count: int) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        self._script.extend([outcome] * count)

    def create(self, key: str, body: dict[str, Any]) -> SimTask:
        """A new task for a valid generate ``body``; it finishes after its delay."""
        prompt: str = body["prompt"]
        outcome = self._script.popleft() if self._script else "success"
        delay = self._config.delay
        for match in MARKER_RE.finditer(prompt):
            if match.group(2) is not None:
                delay = float(match.group(2))
            else:
                outcome = MARKERS[match.group(1)]
        task_id = secrets.token_hex(16)
        task = SimTask(
            task_id=task_id,
            api_key=key,
            request=dict(body),
            outcome=outcome,
            delay=delay,
            created=time.monotonic(),
            created_wall=self._clock.wall(),
            noise=self._config.result_noise,
        )
        self._tasks[task_id] = task
        image = body.get("inputImage")
        if isinstance(image, str):
            self._input_fetches[task_id] = self._background.spawn(self._fetch_input(task, image))
        loop = asyncio.get_running_loop()
        self._timers[task_id] = loop.call_later(max(0.0, delay), self._timer_fired, task_id)
        log.debug("sim created task %s (%s, %.2fs)", task_id, outcome, delay)
        return task

    def complete(self, task_id: str) -> None:
        """Finish a task now."""
        handle = self._timers.pop(task_id, None)
        if handle is not None:
            handle.cancel()
        self._finish(task_id)

    def stop(self) -> None:
        """Cancel every timer (the input fetches are the background's to cancel)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._input_fetches.clear()

    async def _fetch_input(self, task: SimTask, url: str) -> None:
        local = self._files.local_file(url)
        data: bytes | None = local[0] if local is not None else None
        if data is None:
            try:
                async with self._session().get(
                    url, timeout=aiohttp.ClientTimeout(total=self._config.input_fetch_timeout)
                ) as resp:
                    if resp.status != 200:
                        task.input_error = f"Failed to fetch the input image: HTTP {resp.status}"
                        return
                    data = await resp.content.read(MAX_INPUT + 1)
            except (aiohttp.ClientError, TimeoutError) as exc:
                task.input_error = f"Failed to fetch the input image: {type(exc).__name__}"
                return
        if len(data) > MAX_INPUT:
            task.input_error = "The input image is too large"
            return
        size = sniff_image(data)
        if size is None:
            task.input_error = "The input image is not a valid image"
            return
        task.input_size = size
        task.input_data = data

    def _timer_fired(self, task_id: str) -> None:
        self._timers.pop(task_id, None)
        self._finish(task_id)

    def _finish(self, task_id: str) -> None:
        task = self._tasks.get(task_id)
        if task is None or task.finished is not None:
            return
        fetch = self._input_fetches.get(task_id)
        if fetch is not None and not fetch.done():
            self._background.spawn(self._finish_after_fetch(task_id, fetch))
            return
        self._finalize(task)

    async def _finish_after_fetch(self, task_id: str, fetch: asyncio.Task[None]) -> None:
        with contextlib.suppress(Exception):
            await fetch
        task = self._tasks[task_id]
        if task.finished is None:
            self._finalize(task)

    def _finalize(self, task: SimTask) -> None:
        self._input_fetches.pop(task.task_id, None)
        if task.outcome == "success" and task.input_error is not None:
            task.flag, task.error_code, task.error_message = 3, 500, task.input_error
        elif task.outcome == "success":
            ext = "png" if task.output_format == "png" else "jpg"
            base_url = self._base_url()
            task.flag = 1
            task.result_url = f"{base_url}/files/result/{task.task_id}.{ext}"
            if not self._config.origin_url_null:
                task.origin_url = f"{base_url}/files/origin/{task.task_id}.{ext}"
        else:
            failure = _FAILURES.get(task.outcome, _FAILURES["create_failed"])
            task.flag, task.error_code, task.error_message = failure
        task.finished = time.monotonic()
        task.finished_sim = self._clock.now()
        task.finished_wall = self._clock.wall()
        log.debug("sim task %s finished with flag %d", task.task_id, task.flag)
        self._finished(task)
