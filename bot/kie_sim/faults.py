"""Scripted transport faults (:meth:`KieSimulator.fail_next`) and waits for the next request."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.kie_sim.answers import CODE_KEY, envelope
from bot.kie_sim.model import FAIL_ENDPOINTS, Fail, SimConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Records one answered request: (request, endpoint, HTTP status or 0, body code).
Recorder = Callable[[web.Request, str, int, object], None]

_MALFORMED = "<html>502 Bad Gateway</html>{"


class Faults:
    """The failures queued per endpoint, and who waits for an endpoint's next request."""

    def __init__(self, config: SimConfig, record: Recorder) -> None:
        self._config = config
        self._record = record
        self._queued: dict[str, deque[Fail]] = {}
        self._arrivals: dict[str, list[asyncio.Future[None]]] = {}

    def fail_next(self, endpoint: str, spec: Fail, count: int) -> None:
        if endpoint not in FAIL_ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {FAIL_ENDPOINTS}")
        if spec.after_handling and (spec.code is not None or spec.status != 200):
            raise ValueError("after_handling loses the real answer: use reset, hang or malformed")
        self._queued.setdefault(endpoint, deque()).extend([spec] * count)

    async def next_request(self, endpoint: str) -> None:
        """Return when the next request to ``endpoint`` arrives."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._arrivals.setdefault(endpoint, []).append(waiter)
        await waiter

    async def answer(
        self, request: web.Request, endpoint: str, handler: Handler
    ) -> web.StreamResponse:
        """Answer ``request`` with ``handler``, unless a queued failure says otherwise."""
        for waiter in self._arrivals.pop(endpoint, []):
            if not waiter.done():
                waiter.set_result(None)
        queue = self._queued.get(endpoint)
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
            resp = web.Response(status=fail.status, text=_MALFORMED, content_type="text/html")
        elif fail is not None and (fail.code is not None or fail.status != 200):
            code = fail.code if fail.code is not None else fail.status
            resp = envelope(
                self._config, code, f"Simulated failure {code}", None, status=fail.status
            )
        else:
            resp = await _handle(request, handler)
        self._record(request, endpoint, resp.status, resp.get(CODE_KEY))
        return resp

    async def _lose_answer(
        self, request: web.Request, endpoint: str, handler: Handler, fail: Fail
    ) -> web.StreamResponse:
        """Handle the request for real, then lose the answer (see ``fail_next``)."""
        resp = await _handle(request, handler)
        self._record(request, endpoint, 0 if fail.reset else resp.status, resp.get(CODE_KEY))
        if fail.hang > 0:
            await asyncio.sleep(fail.hang)
        if fail.reset:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing is written back
        if fail.malformed:
            return web.Response(text=_MALFORMED, content_type="text/html")
        return resp


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return exc
