"""A faithful, scriptable KIE.AI simulator (kie-api.md §10), as an aiohttp application.

Everything lives on one host: the Flux Kontext API, the Common API, the File Upload API, and the
files it serves (``/files/result/…``, ``/files/origin/…``, ``/files/upload/…``, ``/files/dl/…``).

Outcomes are scripted with :meth:`KieSimulator.script` or prompt markers (``[sim:policy]``,
``[sim:fail]``, ``[sim:internal]``, ``[sim:createfail]``, ``[sim:delay=N]``); transport faults
with :meth:`KieSimulator.fail_next`. Tasks finish on asyncio timers after ``config.delay`` seconds,
which is when callbacks are sent, ``on_task_finished`` is called and the task is put on
:attr:`KieSimulator.finished`. :meth:`KieSimulator.advance` moves the simulator's clock for expiry.

Observation points for tests:

* :attr:`KieSimulator.calls` — every request (:class:`SimCall`), in order.
* :attr:`KieSimulator.tasks` — every created task (:class:`SimTask`) by taskId.
* :attr:`KieSimulator.finished` — a queue that receives each :class:`SimTask` as it finishes.
* :attr:`KieSimulator.callbacks` — every callback delivery attempt (:class:`SimCallback`).
* :attr:`KieSimulator.balances` — credits per API key (lazily initialised from ``config.credits``).

The parts: :mod:`~bot.kie_sim.model` (settings, records, clock), :mod:`~bot.kie_sim.tasks` (tasks
and their outcomes), :mod:`~bot.kie_sim.api` (generate, record-info, credit),
:mod:`~bot.kie_sim.uploads` (uploads, download-url), :mod:`~bot.kie_sim.files` (the files served),
:mod:`~bot.kie_sim.callbacks` and :mod:`~bot.kie_sim.faults`; this class wires them to one app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from bot.kie_sim.answers import envelope, upload_answer
from bot.kie_sim.api import FluxApi
from bot.kie_sim.background import Background
from bot.kie_sim.callbacks import CallbackSender, callback_payload
from bot.kie_sim.faults import Faults
from bot.kie_sim.files import FileStore
from bot.kie_sim.model import (
    MAX_INPUT,
    Fail,
    SimCall,
    SimCallback,
    SimClock,
    SimConfig,
    SimTask,
)
from bot.kie_sim.tasks import TaskBoard
from bot.kie_sim.uploads import UploadApi

__all__ = ["KieSimulator", "SimCall", "SimCallback", "SimConfig", "SimTask"]

log = logging.getLogger(__name__)

_PATHS = {
    "/api/v1/flux/kontext/generate": ("generate", "POST"),
    "/api/v1/flux/kontext/record-info": ("record-info", "GET"),
    "/api/v1/chat/credit": ("credit", "GET"),
    "/api/v1/common/download-url": ("download-url", "POST"),
    "/api/file-stream-upload": ("upload", "POST"),
    "/api/file-url-upload": ("upload", "POST"),
    "/api/file-base64-upload": ("upload", "POST"),
}


class KieSimulator:
    """The fake KIE service. ``await start()``, use ``base_url``, ``await stop()``."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.calls: list[SimCall] = []
        self.tasks: dict[str, SimTask] = {}
        self.callbacks: list[SimCallback] = []
        self.finished: asyncio.Queue[SimTask] = asyncio.Queue()
        self.balances: dict[str, float] = {}
        self.on_task_finished: Callable[[SimTask], None] | None = None
        self.base_url = ""
        self._clock = SimClock()
        self._background = Background()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._faults = Faults(self.config, self._record)
        self._files = FileStore(self.config, self._clock, self.tasks, self._base_url)
        self._board = TaskBoard(
            self.config,
            self._clock,
            self.tasks,
            files=self._files,
            background=self._background,
            base_url=self._base_url,
            session=self._client_session,
            finished=self._task_finished,
        )
        self._callbacks = CallbackSender(
            self.config,
            self.callbacks,
            session=self._client_session,
            next_request=self._faults.next_request,
        )
        self._flux = FluxApi(self.config, self._clock, self.tasks, self.balances, self._board)
        self._uploads = UploadApi(
            self.config, self._clock, self._files, self._base_url, self._client_session
        )
        self.app = web.Application(middlewares=[self._middleware], client_max_size=MAX_INPUT)
        for path in _PATHS:
            self.app.router.add_route("*", path, self._dispatch)
        self.app.router.add_route("*", "/files/{kind}/{token}/{name}", self._files.serve)
        self.app.router.add_route("*", "/files/{kind}/{name}", self._files.serve)
        self.app.router.add_route("*", "/{tail:.*}", self._not_found)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on ``host:port`` (0 = a free port); sets :attr:`base_url`."""
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": "kie-sim/1.0"}, timeout=aiohttp.ClientTimeout(total=60)
        )
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        addresses = self._runner.addresses
        bound = int(addresses[0][1]) if addresses else port
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.base_url = f"http://{shown}:{bound}"
        log.info("KIE simulator listening on %s", self.base_url)

    async def stop(self) -> None:
        """Stop serving; cancel timers, callbacks and input fetches; close the client session."""
        self._board.stop()
        await self._background.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ test controls

    def script(self, outcome: str, count: int = 1) -> None:
        """The next ``count`` created tasks end with ``outcome`` (see ``OUTCOMES``)."""
        self._board.script(outcome, count)

    def fail_next(
        self,
        endpoint: str,
        *,
        count: int = 1,
        status: int = 200,
        code: int | None = None,
        malformed: bool = False,
        reset: bool = False,
        hang: float = 0.0,
        after_handling: bool = False,
    ) -> None:
        """Make the next ``count`` requests to ``endpoint`` fail.

        ``malformed`` answers invalid JSON, ``reset`` drops the connection, ``code``/``status``
        answer ``{"code": code or status, ...}`` with HTTP ``status``; ``hang`` sleeps first (alone,
        it only delays the normal answer). Note that aiohttp clients silently re-send an
        idempotent request (GET) once after a dropped connection: use ``count=2`` to make a GET
        fail as seen by the caller.

        With ``after_handling`` the request is handled first (a generate creates its task and
        charges its credits; the call is recorded then) and only the answer is lost: ``hang``
        holds it back (a client with a shorter timeout never sees it), ``reset`` then drops the
        connection, ``malformed`` replaces it with invalid JSON.
        """
        spec = Fail(
            status=status,
            code=code,
            malformed=malformed,
            reset=reset,
            hang=hang,
            after_handling=after_handling,
        )
        self._faults.fail_next(endpoint, spec, count)

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (expiry of results, uploads and links; the rate
        window). Task timers and callback retries keep running in real time."""
        self._clock.advance(seconds)

    def complete(self, task_id: str) -> None:
        """Finish a task now (its scripted outcome applies)."""
        self._board.complete(task_id)

    def send_callback(self, task_id: str) -> asyncio.Task[bool]:
        """Call back for a finished task once more, now (as a late retry from KIE would)."""
        task = self.tasks[task_id]
        url = task.request.get("callBackUrl")
        if task.finished is None or not isinstance(url, str) or not url:
            raise ValueError(f"task {task_id} is not finished or has no callBackUrl")
        return self._background.spawn(self._callbacks.post(task, url, callback_payload(task)))

    async def drain(self) -> None:
        """Wait until every callback delivery (with its retries) and input fetch has ended."""
        await self._background.drain()

    def count(self, endpoint: str) -> int:
        """How many requests ``endpoint`` received."""
        return sum(1 for c in self.calls if c.endpoint == endpoint)

    def set_credits(self, amount: float, api_key: str | None = None) -> None:
        """Set the balance of ``api_key`` (or of every known key and the default)."""
        if api_key is not None:
            self.balances[api_key] = amount
            return
        self.config.credits = amount
        for key in self.balances:
            self.balances[key] = amount

    def now(self) -> float:
        """The simulator's clock: ``time.monotonic()`` plus everything :meth:`advance`d."""
        return self._clock.now()

    def callback_payload(self, task: SimTask) -> dict[str, Any]:
        """The JSON body KIE POSTs to ``callBackUrl`` for ``task``."""
        return callback_payload(task)

    def record_data(self, task: SimTask) -> dict[str, Any]:
        """record-info's ``data`` for ``task``, in the configured formats."""
        return self._flux.record_data(task)

    def _task_image(self, task: SimTask) -> bytes:
        """The result image of ``task`` (the benchmarks compare posts with it)."""
        return self._files.task_image(task)

    # ------------------------------------------------------------------ plumbing

    def _base_url(self) -> str:
        return self.base_url

    def _client_session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "the simulator is not started"
        return self._session

    def _task_finished(self, task: SimTask) -> None:
        self.finished.put_nowait(task)
        if self.on_task_finished is not None:
            try:
                self.on_task_finished(task)
            except Exception:
                log.exception("on_task_finished hook failed")
        callback = task.request.get("callBackUrl")
        if isinstance(callback, str) and callback:
            self._background.spawn(self._callbacks.deliver(task, callback))

    @staticmethod
    def _endpoint_of(path: str) -> str:
        if path in _PATHS:
            return _PATHS[path][0]
        if path.startswith("/files/"):
            return "file"
        return "other"

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        return await self._faults.answer(request, self._endpoint_of(request.path), handler)

    def _record(self, request: web.Request, endpoint: str, status: int, code: object) -> None:
        self.calls.append(
            SimCall(
                endpoint=endpoint,
                method=request.method,
                path=request.path,
                status=status,
                code=code if isinstance(code, int) else None,
                at=time.monotonic(),
            )
        )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        endpoint, method = _PATHS[request.path]
        if request.method != method:
            if endpoint == "upload":
                return upload_answer(405, "Method not allowed")
            resp = envelope(
                self.config, 405, f"Request method '{request.method}' not supported", None
            )
            resp.set_status(405)
            return resp
        if endpoint == "generate":
            return await self._flux.generate(request)
        if endpoint == "record-info":
            return self._flux.record_info(request)
        if endpoint == "credit":
            return self._flux.credit(request)
        if endpoint == "download-url":
            return await self._uploads.download_url(request)
        return await self._uploads.upload(request)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        resp = envelope(self.config, 404, "Not Found", None)
        resp.set_status(404)
        return resp
