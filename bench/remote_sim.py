"""The KIE simulator in a process of its own, as KIE is for a real bot.

In one process the simulator and the fake Discord share an event loop: the simulator's answer
to record-info waits while it serves a 1 MB download, and the fake cannot read an upload
while the simulator works. ``Rig(separate_sim=True)`` runs the simulator here instead, as
``python -m bench.remote_sim CONFIG_JSON``; the benchmark process keeps the fake Discord.

The child reports on stdout, one JSON object a line: first ``{"base_url": ...}``, then
``{"done": ...}`` when a task finishes (the moment its callback POST starts) and
``{"record_info": ...}`` for every record-info it answers. Times are ``time.monotonic()``,
which on Linux is one clock for every process of the machine, so the parent compares them
with its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.kie_sim import KieSimulator, SimConfig


@dataclass
class RemoteTask:
    """What the parent knows of one simulated task (the fields the benchmarks read)."""

    task_id: str
    request: dict[str, Any]
    flag: int | None = None
    result_url: str | None = None


@dataclass
class RemoteSim:
    """The parent's handle: ``await start()``, ``base_url``, ``tasks``, ``await stop()``.

    ``on_done(task_id, at)`` and ``on_record_info(task_id, at, flag)`` are called as the
    child reports."""

    config: SimConfig
    on_done: Callable[[str, float], None]
    on_record_info: Callable[[str, float, int | None], None]
    base_url: str = ""
    tasks: dict[str, RemoteTask] = field(default_factory=dict)
    calls: list[Any] = field(default_factory=list)  # KIE's 429s are not counted here
    _proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = dataclasses.asdict(self.config)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.remote_sim",
            json.dumps(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        first = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        if not first:
            raise RuntimeError("the simulator's process ended before it served")
        self.base_url = json.loads(first)["base_url"]
        self._reader = asyncio.create_task(self._read(self._proc.stdout))

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self._proc.wait(), 30)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            self._take(json.loads(line))

    def _take(self, event: dict[str, Any]) -> None:
        if "done" in event:
            task = RemoteTask(event["done"], event["request"], event["flag"], event["result_url"])
            self.tasks[task.task_id] = task
            self.on_done(task.task_id, event["at"])
        elif "record_info" in event:
            self.on_record_info(event["record_info"], event["at"], event["flag"])


# ---- the child ---------------------------------------------------------------------------------


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def prerender(sim: KieSimulator, images: dict[tuple[str, Any], bytes], task: Any) -> None:
    """Draw a finished task's result now, so the simulator's Pillow time is not counted as
    the bot's. One image per format and ratio, kept in `images` and reused: drawing a noisy
    1 MB image takes ~0.5 s of CPU, which would delay every other transfer it serves."""
    if task.flag == 1:
        key = (task.output_format, task.request.get("aspectRatio"))
        if key not in images:
            images[key] = sim._task_image(task)
        task.image = images[key]


def _serving(sim: KieSimulator) -> None:
    images: dict[tuple[str, Any], bytes] = {}

    def finished(task: Any) -> None:
        prerender(sim, images, task)
        at = time.monotonic()
        request = {"prompt": task.request.get("prompt")}
        _emit(
            {"done": task.task_id, "at": at, "request": request}
            | {"flag": task.flag, "result_url": task.result_url}
        )

    @web.middleware
    async def record_info_probe(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        resp = await handler(request)
        if request.path.endswith("/record-info"):
            task_id = request.query.get("taskId", "")
            task = sim.tasks.get(task_id)
            flag = task.flag if task else None
            _emit({"record_info": task_id, "at": time.monotonic(), "flag": flag})
        return resp

    sim.on_task_finished = finished
    sim.app.middlewares.append(record_info_probe)


async def _serve(config: SimConfig) -> None:
    sim = KieSimulator(config)
    _serving(sim)
    await sim.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    _emit({"base_url": sim.base_url})
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main() -> None:
    fields = json.loads(sys.argv[1])
    fields["callback_retry_delays"] = tuple(fields["callback_retry_delays"])
    asyncio.run(_serve(SimConfig(**fields)))


if __name__ == "__main__":
    main()
