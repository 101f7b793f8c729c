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
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from bot.kie_sim.images import ASPECT_RATIOS, render, size_for, sniff_image

__all__ = ["KieSimulator", "SimCall", "SimCallback", "SimConfig", "SimTask"]

log = logging.getLogger(__name__)

OUTCOMES = ("success", "content_policy", "generation_failed", "internal_error", "create_failed")
FAIL_ENDPOINTS = ("generate", "record-info", "credit", "upload", "download-url", "file")
MODELS = ("flux-kontext-pro", "flux-kontext-max")
FORMATS = ("jpeg", "png")
SAFETY_MSG = "The security tolerance level is out of range and should be 0-2 or 0-6"
CALLBACK_MSGS = {
    200: "BFL image generated successfully.",
    400: "Your prompt was flagged by Website as violating content policies.",
    500: "Internal Error, Please try again later.",
    501: "Image generation task failed",
}
_MARKERS = {
    "policy": "content_policy",
    "fail": "generation_failed",
    "internal": "internal_error",
    "createfail": "create_failed",
}
_MARKER_RE = re.compile(r"\[sim:(policy|fail|internal|createfail|delay=([0-9]*\.?[0-9]+))\]")
_MAX_INPUT = 50 * 1024 * 1024
_CODE_KEY: web.ResponseKey[int] = web.ResponseKey("kie_code")
_MIME_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}

_PATHS = {
    "/api/v1/flux/kontext/generate": ("generate", "POST"),
    "/api/v1/flux/kontext/record-info": ("record-info", "GET"),
    "/api/v1/chat/credit": ("credit", "GET"),
    "/api/v1/common/download-url": ("download-url", "POST"),
    "/api/file-stream-upload": ("upload", "POST"),
    "/api/file-url-upload": ("upload", "POST"),
    "/api/file-base64-upload": ("upload", "POST"),
}


@dataclass
class SimConfig:
    """Knobs of the simulator; mutable at run time."""

    api_key: str | None = None
    delay: float = 8.0
    rate_limit: int = 20
    rate_window: float = 10.0
    credits: float = 1000.0
    cost_pro: float = 5.0
    cost_max: float = 10.0
    result_ttl: float = 14 * 86400
    origin_ttl: float = 600
    upload_ttl: float = 86400
    download_url_ttl: float = 1200
    mirror_http_status: bool = False
    timestamp_format: str = "iso"
    null_strings: bool = False
    unknown_record: str = "422"
    task_id_at_root: bool = False
    origin_url_null: bool = False
    callback_retry_delays: tuple[float, ...] = (60.0, 300.0, 900.0)
    callback_timeout: float = 15.0
    duplicate_callbacks: bool = False
    # With duplicate_callbacks: send the duplicate when the next request to this endpoint
    # arrives (e.g. "file": KIE repeats itself while the bot downloads the result).
    duplicate_callback_on: str | None = None
    hmac_key: str | None = None
    result_long_side: int = 1024
    result_noise: bool = False
    input_fetch_timeout: float = 30.0


@dataclass
class SimCall:
    """One request the simulator answered (``code`` is the body code, if any)."""

    endpoint: str
    method: str
    path: str
    status: int
    code: int | None
    at: float


@dataclass
class SimCallback:
    """One callback delivery attempt; ``status`` is None when it failed without an answer.

    ``sent`` is when the POST started and ``at`` when it ended (``time.monotonic()``).
    """

    url: str
    payload: dict[str, Any]
    status: int | None
    headers: dict[str, str]
    at: float
    sent: float = 0.0


@dataclass
class SimTask:
    """A task as the simulator keeps it (times are ``time.monotonic()``)."""

    task_id: str
    api_key: str
    request: dict[str, Any]
    outcome: str
    delay: float
    created: float
    created_wall: datetime
    flag: int = 0
    finished: float | None = None
    finished_wall: datetime | None = None
    finished_sim: float | None = None
    error_code: int | None = None
    error_message: str | None = None
    result_url: str | None = None
    origin_url: str | None = None
    input_size: tuple[int, int] | None = None
    input_error: str | None = None
    noise: bool = False
    image: bytes | None = None

    @property
    def output_format(self) -> str:
        fmt = self.request.get("outputFormat") or "jpeg"
        return fmt if fmt in FORMATS else "jpeg"

    @property
    def callback_code(self) -> int:
        return 200 if self.flag == 1 else (self.error_code or 500)


@dataclass
class _Fail:
    status: int
    code: int | None
    malformed: bool
    reset: bool
    hang: float
    after_handling: bool = False


@dataclass
class _Stored:
    data: bytes
    mime: str
    name: str
    created_sim: float
    ttl_attr: str = "upload_ttl"


def _ok_key(header: str | None) -> str | None:
    if not header or not header.startswith("Bearer "):
        return None
    key = header[len("Bearer ") :].strip()
    return key or None


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
        self._offset = 0.0
        self._script: deque[str] = deque()
        self._fails: dict[str, deque[_Fail]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._input_fetches: dict[str, asyncio.Task[None]] = {}
        self._uploads: dict[str, _Stored] = {}
        self._links: dict[str, tuple[str, float]] = {}
        self._arrivals: dict[str, list[asyncio.Future[None]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._middleware], client_max_size=_MAX_INPUT)
        for path in _PATHS:
            self.app.router.add_route("*", path, self._dispatch)
        self.app.router.add_route("*", "/files/{kind}/{token}/{name}", self._serve_file)
        self.app.router.add_route("*", "/files/{kind}/{name}", self._serve_file)
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
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        pending = [*self._background, *self._input_fetches.values()]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        self._input_fetches.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ test controls

    def script(self, outcome: str, count: int = 1) -> None:
        """The next ``count`` created tasks end with ``outcome`` (see ``OUTCOMES``)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        self._script.extend([outcome] * count)

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
        if endpoint not in FAIL_ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {FAIL_ENDPOINTS}")
        if after_handling and (code is not None or status != 200):
            raise ValueError("after_handling loses the real answer: use reset, hang or malformed")
        spec = _Fail(
            status=status,
            code=code,
            malformed=malformed,
            reset=reset,
            hang=hang,
            after_handling=after_handling,
        )
        self._fails.setdefault(endpoint, deque()).extend([spec] * count)

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (expiry of results, uploads and links; the rate
        window). Task timers and callback retries keep running in real time."""
        self._offset += seconds

    def complete(self, task_id: str) -> None:
        """Finish a task now (its scripted outcome applies)."""
        handle = self._timers.pop(task_id, None)
        if handle is not None:
            handle.cancel()
        self._finish(task_id)

    def send_callback(self, task_id: str) -> asyncio.Task[bool]:
        """Call back for a finished task once more, now (as a late retry from KIE would)."""
        task = self.tasks[task_id]
        url = task.request.get("callBackUrl")
        if task.finished is None or not isinstance(url, str) or not url:
            raise ValueError(f"task {task_id} is not finished or has no callBackUrl")
        return self._spawn(self._post_callback(task, url, self.callback_payload(task)))

    async def drain(self) -> None:
        """Wait until every callback delivery (with its retries) has ended."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

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
        return time.monotonic() + self._offset

    # ------------------------------------------------------------------ plumbing

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
        endpoint = self._endpoint_of(request.path)
        for waiter in self._arrivals.pop(endpoint, []):
            if not waiter.done():
                waiter.set_result(None)
        queue = self._fails.get(endpoint)
        fail = queue.popleft() if queue else None
        if fail is not None and fail.after_handling:
            return await self._lose_answer(request, endpoint, handler, fail)
        if fail is not None and fail.hang > 0:
            await asyncio.sleep(fail.hang)
        resp: web.StreamResponse
        if fail is not None and fail.reset:
            self._record(request, endpoint, 0, None)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # the handler task ends; nothing is written back
        if fail is not None and fail.malformed:
            resp = web.Response(
                status=fail.status, text="<html>502 Bad Gateway</html>{", content_type="text/html"
            )
        elif fail is not None and (fail.code is not None or fail.status != 200):
            code = fail.code if fail.code is not None else fail.status
            resp = self._envelope(code, f"Simulated failure {code}", None, status=fail.status)
        else:
            try:
                resp = await handler(request)
            except web.HTTPException as exc:
                resp = exc
        self._record(request, endpoint, resp.status, resp.get(_CODE_KEY))
        return resp

    async def _lose_answer(
        self,
        request: web.Request,
        endpoint: str,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        fail: _Fail,
    ) -> web.StreamResponse:
        """Handle the request for real, then lose the answer (see ``fail_next``)."""
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            resp = exc
        self._record(request, endpoint, 0 if fail.reset else resp.status, resp.get(_CODE_KEY))
        if fail.hang > 0:
            await asyncio.sleep(fail.hang)
        if fail.reset:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing is written back
        if fail.malformed:
            return web.Response(text="<html>502 Bad Gateway</html>{", content_type="text/html")
        return resp

    def _record(self, request: web.Request, endpoint: str, status: int, code: Any) -> None:
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

    def _envelope(
        self, code: int, msg: str, data: Any, *, status: int | None = None, **extra: Any
    ) -> web.Response:
        if status is None:
            status = 200
            if code == 429 or (self.config.mirror_http_status and code != 200):
                status = code if 400 <= code <= 599 else 200
        body: dict[str, Any] = {"code": code, "msg": msg, "data": data, **extra}
        resp = web.json_response(body, status=status)
        resp[_CODE_KEY] = code
        return resp

    def _upload_answer(
        self, status: int, msg: str, data: dict[str, Any] | None = None
    ) -> web.Response:
        body: dict[str, Any] = {"success": status == 200, "code": status, "msg": msg}
        if data is not None:
            body["data"] = data
        resp = web.json_response(body, status=status)
        resp[_CODE_KEY] = status
        return resp

    def _auth(self, request: web.Request) -> str | None:
        key = _ok_key(request.headers.get("Authorization"))
        if key is None:
            return None
        if self.config.api_key is not None and not hmac.compare_digest(key, self.config.api_key):
            return None
        return key

    def _unauthorized(self) -> web.Response:
        return self._envelope(401, "You do not have access permissions", None)

    async def _next_request(self, endpoint: str) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._arrivals.setdefault(endpoint, []).append(waiter)
        await waiter

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _wall(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def _fmt_time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        fmt = self.config.timestamp_format
        if fmt == "plain":
            return value.strftime("%Y-%m-%d %H:%M:%S")
        if fmt == "epoch_ms":
            return int(value.timestamp() * 1000)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        endpoint, method = _PATHS[request.path]
        if request.method != method:
            if endpoint == "upload":
                return self._upload_answer(405, "Method not allowed")
            resp = self._envelope(405, f"Request method '{request.method}' not supported", None)
            resp.set_status(405)
            return resp
        if endpoint == "generate":
            return await self._generate(request)
        if endpoint == "record-info":
            return self._record_info(request)
        if endpoint == "credit":
            return self._credit(request)
        if endpoint == "download-url":
            return await self._download_url(request)
        return await self._upload(request)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        resp = self._envelope(404, "Not Found", None)
        resp.set_status(404)
        return resp

    # ------------------------------------------------------------------ generate

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        key = self._auth(request)
        if key is None:
            return self._unauthorized()
        window = self._windows.setdefault(key, deque())
        now = self.now()
        while window and now - window[0] >= self.config.rate_window:
            window.popleft()
        if len(window) >= self.config.rate_limit:
            return self._envelope(429, "Rate limit exceeded", None)
        window.append(now)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return self._envelope(422, "Request body is not valid JSON", None)
        if not isinstance(body, dict):
            return self._envelope(422, "Request body must be a JSON object", None)
        problem = self._validate(body)
        if problem is not None:
            return problem
        model = body.get("model") or "flux-kontext-pro"
        cost = self.config.cost_max if model == "flux-kontext-max" else self.config.cost_pro
        balance = self.balances.setdefault(key, self.config.credits)
        if balance < cost:
            return self._envelope(402, "The current credits are insufficient", None)
        self.balances[key] = balance - cost
        task = self._create_task(key, body)
        if self.config.task_id_at_root:
            return self._envelope(200, "success", None, taskId=task.task_id)
        return self._envelope(200, "success", {"taskId": task.task_id})

    def _validate(self, body: dict[str, Any]) -> web.Response | None:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return self._envelope(422, "prompt is required", None)
        model = body.get("model")
        if model is not None and model not in MODELS:
            return self._envelope(422, f"model must be one of {', '.join(MODELS)}", None)
        ratio = body.get("aspectRatio")
        if ratio is not None and ratio not in ASPECT_RATIOS:
            return self._envelope(422, "aspectRatio is invalid", None)
        fmt = body.get("outputFormat")
        if fmt is not None and fmt not in FORMATS:
            return self._envelope(422, "outputFormat must be jpeg or png", None)
        image = body.get("inputImage")
        if image is not None and (
            not isinstance(image, str) or not image.startswith(("http://", "https://"))
        ):
            return self._envelope(422, "inputImage must be an http(s) URL", None)
        callback = body.get("callBackUrl")
        if callback is not None and (
            not isinstance(callback, str) or not callback.startswith(("http://", "https://"))
        ):
            return self._envelope(422, "callBackUrl must be an http(s) URL", None)
        tol = body.get("safetyTolerance")
        if tol is not None:
            limit = 2 if image else 6
            if isinstance(tol, bool) or not isinstance(tol, int) or not 0 <= tol <= limit:
                return self._envelope(500, SAFETY_MSG, None)
        return None

    def _create_task(self, key: str, body: dict[str, Any]) -> SimTask:
        prompt: str = body["prompt"]
        outcome = self._script.popleft() if self._script else "success"
        delay = self.config.delay
        for match in _MARKER_RE.finditer(prompt):
            if match.group(2) is not None:
                delay = float(match.group(2))
            else:
                outcome = _MARKERS[match.group(1)]
        task_id = secrets.token_hex(16)
        task = SimTask(
            task_id=task_id,
            api_key=key,
            request=dict(body),
            outcome=outcome,
            delay=delay,
            created=time.monotonic(),
            created_wall=self._wall(),
            noise=self.config.result_noise,
        )
        self.tasks[task_id] = task
        image = body.get("inputImage")
        if isinstance(image, str):
            self._input_fetches[task_id] = asyncio.ensure_future(self._fetch_input(task, image))
        loop = asyncio.get_running_loop()
        self._timers[task_id] = loop.call_later(max(0.0, delay), self._timer_fired, task_id)
        log.debug("sim created task %s (%s, %.2fs)", task_id, outcome, delay)
        return task

    async def _fetch_input(self, task: SimTask, url: str) -> None:
        local = self._local_file(url)
        data: bytes | None = local[0] if local is not None else None
        if data is None:
            assert self._session is not None
            try:
                async with self._session.get(
                    url, timeout=aiohttp.ClientTimeout(total=self.config.input_fetch_timeout)
                ) as resp:
                    if resp.status != 200:
                        task.input_error = f"Failed to fetch the input image: HTTP {resp.status}"
                        return
                    data = await resp.content.read(_MAX_INPUT + 1)
            except (aiohttp.ClientError, TimeoutError) as exc:
                task.input_error = f"Failed to fetch the input image: {type(exc).__name__}"
                return
        if len(data) > _MAX_INPUT:
            task.input_error = "The input image is too large"
            return
        size = sniff_image(data)
        if size is None:
            task.input_error = "The input image is not a valid image"
            return
        task.input_size = size

    def _timer_fired(self, task_id: str) -> None:
        self._timers.pop(task_id, None)
        self._finish(task_id)

    def _finish(self, task_id: str) -> None:
        task = self.tasks.get(task_id)
        if task is None or task.finished is not None:
            return
        fetch = self._input_fetches.get(task_id)
        if fetch is not None and not fetch.done():
            self._spawn(self._finish_after_fetch(task_id, fetch))
            return
        self._finalize(task)

    async def _finish_after_fetch(self, task_id: str, fetch: asyncio.Task[None]) -> None:
        with contextlib.suppress(Exception):
            await fetch
        task = self.tasks[task_id]
        if task.finished is None:
            self._finalize(task)

    def _finalize(self, task: SimTask) -> None:
        self._input_fetches.pop(task.task_id, None)
        outcome = task.outcome
        if outcome == "success" and task.input_error is not None:
            task.flag, task.error_code, task.error_message = 3, 500, task.input_error
        elif outcome == "success":
            ext = "png" if task.output_format == "png" else "jpg"
            task.flag = 1
            task.result_url = f"{self.base_url}/files/result/{task.task_id}.{ext}"
            if not self.config.origin_url_null:
                task.origin_url = f"{self.base_url}/files/origin/{task.task_id}.{ext}"
        elif outcome == "content_policy":
            task.flag, task.error_code, task.error_message = 3, 400, CALLBACK_MSGS[400]
        elif outcome == "generation_failed":
            task.flag, task.error_code, task.error_message = 3, 501, CALLBACK_MSGS[501]
        elif outcome == "internal_error":
            task.flag, task.error_code, task.error_message = 3, 500, CALLBACK_MSGS[500]
        else:
            task.flag, task.error_code, task.error_message = 2, 500, "Failed to create the task"
        task.finished = time.monotonic()
        task.finished_sim = self.now()
        task.finished_wall = self._wall()
        log.debug("sim task %s finished with flag %d", task.task_id, task.flag)
        self.finished.put_nowait(task)
        if self.on_task_finished is not None:
            try:
                self.on_task_finished(task)
            except Exception:
                log.exception("on_task_finished hook failed")
        callback = task.request.get("callBackUrl")
        if isinstance(callback, str) and callback:
            self._spawn(self._deliver(task, callback))

    # ------------------------------------------------------------------ callbacks

    def callback_payload(self, task: SimTask) -> dict[str, Any]:
        """The JSON body KIE POSTs to ``callBackUrl`` for ``task``."""
        code = task.callback_code
        ok = code == 200
        return {
            "code": code,
            "msg": CALLBACK_MSGS.get(code, CALLBACK_MSGS[500]),
            "data": {
                "taskId": task.task_id,
                "info": {
                    "originImageUrl": (task.origin_url or "") if ok else "",
                    "resultImageUrl": (task.result_url or "") if ok else "",
                },
            },
        }

    async def _deliver(self, task: SimTask, url: str) -> None:
        payload = self.callback_payload(task)
        delays = (0.0, *self.config.callback_retry_delays)
        for delay in delays:
            if delay > 0:
                await asyncio.sleep(delay)
            if await self._post_callback(task, url, payload):
                if self.config.duplicate_callbacks:
                    if self.config.duplicate_callback_on:
                        await self._next_request(self.config.duplicate_callback_on)
                    await self._post_callback(task, url, payload)
                return
        log.info("sim gave up calling back %s for task %s", url, task.task_id)

    async def _post_callback(self, task: SimTask, url: str, payload: dict[str, Any]) -> bool:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if self.config.hmac_key:
            ts = str(int(time.time()))
            digest = hmac.new(
                self.config.hmac_key.encode(), f"{task.task_id}.{ts}".encode(), hashlib.sha256
            ).digest()
            headers["X-Webhook-Timestamp"] = ts
            headers["X-Webhook-Signature"] = base64.b64encode(digest).decode()
        status: int | None = None
        sent = time.monotonic()
        try:
            async with self._session.post(
                url,
                data=json.dumps(payload).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.config.callback_timeout),
            ) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("sim callback to %s failed: %s", url, type(exc).__name__)
        self.callbacks.append(
            SimCallback(
                url=url,
                payload=payload,
                status=status,
                headers=headers,
                at=time.monotonic(),
                sent=sent,
            )
        )
        return status is not None and 200 <= status < 300

    # ------------------------------------------------------------------ record-info / credit

    def _record_info(self, request: web.Request) -> web.StreamResponse:
        if self._auth(request) is None:
            return self._unauthorized()
        task_id = request.query.get("taskId", "")
        if not task_id:
            return self._envelope(422, "taskId is required", None)
        task = self.tasks.get(task_id)
        if task is None:
            if self.config.unknown_record == "null":
                return self._envelope(200, "success", None)
            return self._envelope(422, "The record does not exist", None)
        return self._envelope(200, "success", self.record_data(task))

    def record_data(self, task: SimTask) -> dict[str, Any]:
        """record-info's ``data`` for ``task``, in the configured formats."""
        response: dict[str, Any] | None = None
        if task.finished is not None:
            response = {"originImageUrl": task.origin_url, "resultImageUrl": task.result_url}
        data: dict[str, Any] = {
            "taskId": task.task_id,
            "paramJson": json.dumps(task.request),
            "completeTime": self._fmt_time(task.finished_wall),
            "response": response,
            "successFlag": task.flag,
            "errorCode": task.error_code,
            "errorMessage": task.error_message if task.error_message is not None else "",
            "createTime": self._fmt_time(task.created_wall),
        }
        if task.finished is None:
            data["errorMessage"] = None
        if self.config.null_strings:
            return _nulls_to_strings(data)
        return data

    def _credit(self, request: web.Request) -> web.StreamResponse:
        key = self._auth(request)
        if key is None:
            return self._unauthorized()
        balance = self.balances.setdefault(key, self.config.credits)
        # An int balance goes out as is: a test may set one too large for a float.
        value: float | int = balance
        if not isinstance(balance, int) and balance.is_integer():
            value = int(balance)
        return self._envelope(200, "success", value)

    # ------------------------------------------------------------------ download-url

    async def _download_url(self, request: web.Request) -> web.StreamResponse:
        if self._auth(request) is None:
            return self._unauthorized()
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return self._envelope(422, "Request body is not valid JSON", None)
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            return self._envelope(422, "url is required", None)
        if self._local_file(url, check_expiry=False) is None:
            return self._envelope(422, "Only files generated by kie.ai can be downloaded", None)
        if self._local_file(url) is None:
            return self._envelope(404, "The file does not exist or has expired", None)
        token = secrets.token_hex(16)
        self._links[token] = (url, self.now() + self.config.download_url_ttl)
        name = url.rsplit("/", 1)[-1]
        return self._envelope(200, "success", f"{self.base_url}/files/dl/{token}/{name}")

    # ------------------------------------------------------------------ uploads

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        if self._auth(request) is None:
            return self._upload_answer(401, "Authentication failed: Invalid API Key")
        path = request.path
        file_name: str | None
        if path == "/api/file-stream-upload":
            try:
                form = await request.post()
            except Exception:
                return self._upload_answer(400, "Request must be multipart/form-data")
            upload_path = form.get("uploadPath")
            field_ = form.get("file")
            if not isinstance(field_, web.FileField):
                return self._upload_answer(400, "Missing required parameter: file")
            data = field_.file.read()
            raw_name = form.get("fileName")
            file_name = (raw_name if isinstance(raw_name, str) else None) or field_.filename
            mime = field_.content_type
        else:
            try:
                body = await request.json()
            except (ValueError, UnicodeDecodeError):
                return self._upload_answer(400, "Request body is not valid JSON")
            if not isinstance(body, dict):
                return self._upload_answer(400, "Request body must be a JSON object")
            upload_path = body.get("uploadPath")
            raw = body.get("fileName")
            file_name = raw if isinstance(raw, str) else None
            if path == "/api/file-url-upload":
                fetched = await self._fetch_for_upload(body.get("fileUrl"))
                if isinstance(fetched, web.Response):
                    return fetched
                data, mime = fetched
            else:
                decoded = _decode_base64(body.get("base64Data"))
                if decoded is None:
                    return self._upload_answer(400, "Base64 decoding failed: Invalid Base64 format")
                data, mime = decoded
        if not isinstance(upload_path, str):
            return self._upload_answer(400, "Missing required parameter: uploadPath")
        if sniff_image(data) is not None and (not mime or mime == "application/octet-stream"):
            mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        mime = mime or "application/octet-stream"
        if not file_name:
            file_name = f"{secrets.token_hex(8)}.{_MIME_EXT.get(mime, 'bin')}"
        file_name = file_name.replace("/", "_")
        token = secrets.token_hex(12)
        self._uploads[token] = _Stored(data=data, mime=mime, name=file_name, created_sim=self.now())
        clean_path = upload_path.strip("/")
        now = self._wall()
        return self._upload_answer(
            200,
            "File uploaded successfully",
            {
                "fileName": file_name,
                "filePath": f"{clean_path}/{file_name}" if clean_path else file_name,
                "downloadUrl": f"{self.base_url}/files/upload/{token}/{file_name}",
                "fileSize": len(data),
                "mimeType": mime,
                "uploadedAt": now.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{now.microsecond // 1000:03d}Z",
            },
        )

    async def _fetch_for_upload(self, url: Any) -> tuple[bytes, str] | web.Response:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return self._upload_answer(400, "Missing required parameter: fileUrl")
        local = self._local_file(url)
        if local is not None:
            return local[0], local[1]
        assert self._session is not None
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
                if resp.status != 200:
                    return self._upload_answer(400, f"Failed to download file: HTTP {resp.status}")
                data = await resp.content.read(_MAX_INPUT + 1)
                mime = resp.content_type
        except (aiohttp.ClientError, TimeoutError):
            return self._upload_answer(400, "Failed to download file from URL")
        if len(data) > _MAX_INPUT:
            return self._upload_answer(400, "File too large")
        return data, mime

    # ------------------------------------------------------------------ files

    def _local_file(self, url: str, *, check_expiry: bool = True) -> tuple[bytes, str] | None:
        """The bytes and MIME type behind a URL this simulator issued, or None."""
        prefix = f"{self.base_url}/files/"
        if not self.base_url or not url.startswith(prefix):
            return None
        parts = url[len(prefix) :].split("?", 1)[0].split("/")
        return self._lookup(parts, check_expiry=check_expiry)

    def _lookup(self, parts: list[str], *, check_expiry: bool) -> tuple[bytes, str] | None:
        now = self.now()
        if len(parts) == 2 and parts[0] in ("result", "origin"):
            task = self.tasks.get(parts[1].rsplit(".", 1)[0])
            if task is None or task.flag != 1 or task.finished_sim is None:
                return None
            url = task.result_url if parts[0] == "result" else task.origin_url
            if url is None or not url.endswith("/" + parts[1]):
                return None
            ttl = self.config.result_ttl if parts[0] == "result" else self.config.origin_ttl
            if check_expiry and now - task.finished_sim > ttl:
                return None
            return self._task_image(task), (
                "image/png" if task.output_format == "png" else "image/jpeg"
            )
        if len(parts) == 3 and parts[0] == "upload":
            stored = self._uploads.get(parts[1])
            if stored is None or stored.name != parts[2]:
                return None
            if check_expiry and now - stored.created_sim > self.config.upload_ttl:
                return None
            return stored.data, stored.mime
        if len(parts) == 3 and parts[0] == "dl":
            link = self._links.get(parts[1])
            if link is None or (check_expiry and now > link[1]):
                return None
            return self._local_file(link[0], check_expiry=False)
        return None

    def _task_image(self, task: SimTask) -> bytes:
        if task.image is None:
            ratio_name = task.request.get("aspectRatio")
            if ratio_name in ASPECT_RATIOS:
                ratio = ASPECT_RATIOS[ratio_name]
            elif task.input_size is not None:
                ratio = task.input_size
            else:
                ratio = ASPECT_RATIOS["16:9"]
            size = size_for(ratio, self.config.result_long_side)
            prompt = _MARKER_RE.sub("", str(task.request.get("prompt", ""))).strip()
            task.image = render(
                prompt,
                size=size,
                fmt=task.output_format,
                noise=task.noise,
                seed=int(task.task_id[:6], 16),
            )
        return task.image

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="Method Not Allowed")
        parts = request.path[len("/files/") :].split("/")
        found = self._lookup(parts, check_expiry=True)
        if found is None:
            return web.Response(status=404, text="Not Found")
        data, mime = found
        return web.Response(body=data, content_type=mime)


def _nulls_to_strings(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            out[key] = "null"
        elif isinstance(item, dict):
            out[key] = _nulls_to_strings(item)
        else:
            out[key] = item
    return out


def _decode_base64(value: Any) -> tuple[bytes, str] | None:
    if not isinstance(value, str) or not value:
        return None
    mime = ""
    if value.startswith("data:"):
        header, sep, value = value.partition(",")
        if not sep or not header.endswith(";base64"):
            return None
        mime = header[len("data:") : -len(";base64")]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data, mime
