"""The bot's own HTTP server: /healthz, /metrics and KIE's callbacks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from bot.config import Secret
from bot.kie import KieError, parse_callback
from bot.ledger import OPEN_STATES, LedgerError, MetaStore, RefStore, Task, TaskStore
from bot.loop_lag import LagMonitor
from bot.metrics import CONTENT_TYPE_LATEST, Metrics
from bot.supervisor import TaskHealth

log = logging.getLogger(__name__)

SIGNATURE_MAX_AGE = 300  # seconds; KIE documents no window, we refuse replays older than this
MAX_CALLBACK_BYTES = 64 * 1024
LAG_LIMIT = 1.0
POLL_LOOP_STALE = 10.0
LEDGER_CHECK_TIMEOUT = 3.0  # a locked or stuck database answers "unhealthy", not a hang


@dataclass
class HealthSources:
    discord: Callable[[], dict[str, Any]]  # {"ok": …, "error": why not, when not}
    background: Callable[[], Mapping[str, TaskHealth]]  # the supervised tasks, by name
    poll_loop_last_tick: Callable[[], float]


class WebLedger(TaskStore, MetaStore, RefStore, Protocol):
    """What the web server reads: open tasks, callback secrets, a health write, and what the
    saved references hold (for the storage gauges)."""


class CallbackReceiver(Protocol):
    """The runner's side of a verified callback."""

    async def called_back(self, task: Task, result_url: str | None) -> None:
        """Act on the callback for `task` here, or tell the process that holds it."""


class WebServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        ledger: WebLedger,
        metrics: Metrics,
        lag: LagMonitor,
        health: HealthSources,
        callbacks: CallbackReceiver,
        hmac_key: Secret | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._port = port
        self._ledger = ledger
        self._metrics = metrics
        self._lag = lag
        self._health = health
        self._hmac_key = hmac_key
        self._clock = clock
        self._callbacks = callbacks
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=MAX_CALLBACK_BYTES)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/metrics", self.metrics)
        self.app.router.add_post("/kie/callback/{secret}", self.kie_callback)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        log.info("HTTP server listening on %s:%s", self._host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("HTTP server stopped")

    async def healthz(self, request: web.Request) -> web.Response:
        checks: dict[str, dict[str, Any]] = {}
        checks["discord"] = self._health.discord()
        try:
            async with asyncio.timeout(LEDGER_CHECK_TIMEOUT):
                await self._ledger.check_writable()
            checks["ledger"] = {"ok": True}
        except LedgerError as exc:
            checks["ledger"] = {"ok": False, "error": str(exc)[:200]}
        except TimeoutError:
            checks["ledger"] = {"ok": False, "error": "a test write took too long"}
        checks.update(self._background_checks())
        ok = all(c["ok"] for c in checks.values())
        failed = [name for name, c in checks.items() if not c["ok"]]
        body = {"status": "ok" if ok else "unhealthy", "failed": failed, "checks": checks}
        return web.json_response(body, status=200 if ok else 503)

    def _background_checks(self) -> dict[str, dict[str, Any]]:
        """One check per supervised task (down while it waits for its restart); the poll loop
        must also tick, and the lag monitor's samples must stay under LAG_LIMIT."""
        now = time.monotonic()
        checks = {}
        for name, task in sorted(self._health.background().items()):
            check = task.as_check(now)
            if name == "poll_loop" and task.state == "running":
                stale = now - self._health.poll_loop_last_tick()
                check["ok"] = stale < POLL_LOOP_STALE
                check["last_tick_seconds_ago"] = round(stale, 3)
            elif name == "event_loop_lag":
                lag = self._lag.percentile(0.99)
                check["ok"] = check["ok"] and lag < LAG_LIMIT
                check["p99_seconds"] = round(lag, 4)
            checks[name] = check
        return checks

    async def metrics(self, request: web.Request) -> web.Response:
        self._metrics.loop_lag.set(self._lag.last)
        self._set_shard_gauges()
        try:
            # Open tasks by state, from the ledger (the source of truth) at each scrape.
            counts = dict.fromkeys(sorted(OPEN_STATES), 0)
            for task in await self._ledger.open_tasks():
                counts[task.state] = counts.get(task.state, 0) + 1
            for state, count in counts.items():
                self._metrics.tasks_by_state.labels(state=state.value).set(count)
            refs, ref_bytes = await self._ledger.ref_storage()
            self._metrics.reference_images.set(refs)
            self._metrics.reference_bytes.set(ref_bytes)
        except LedgerError as exc:
            log.warning("could not count tasks for /metrics: %s", exc)
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def _set_shard_gauges(self) -> None:
        shards: dict[str, dict[str, Any]] = self._health.discord().get("shards") or {}
        for shard, state in shards.items():
            self._metrics.shard_connected.labels(shard=shard).set(1 if state["connected"] else 0)
            if state["latency_seconds"] is not None:
                self._metrics.shard_latency.labels(shard=shard).set(state["latency_seconds"])

    async def kie_callback(self, request: web.Request) -> web.Response:
        """Answer at once; the work (record-info, delivery) happens after the answer."""
        secret = request.match_info["secret"]
        task = await self._ledger.find_by_callback_secret(secret)
        if task is None or not hmac.compare_digest(task.callback_secret or "", secret):
            return _error(404, "unknown task")
        try:
            raw = await request.read()
            body = json.loads(raw)
            event = parse_callback(body)
        except (ValueError, KieError):
            return _error(400, "malformed callback")
        if self._hmac_key is not None and not self._signature_ok(request, event.task_id):
            log.warning("callback for task %s refused: bad or stale signature", task.id)
            return _error(401, "bad signature")
        if task.kie_task_id is not None and event.task_id != task.kie_task_id:
            return _error(400, "task id does not match")
        # The body's result URL is only prefetched: the callback nudges a record-info check,
        # and the bytes are posted only when record-info names the same URL.
        log.info("KIE callback for task %s (code %s)", task.id, event.code)
        await self._callbacks.called_back(task, event.result_image_url or event.origin_image_url)
        return web.json_response({"code": 200, "msg": "received"})

    def _signature_ok(self, request: web.Request, task_id: str) -> bool:
        assert self._hmac_key is not None
        timestamp = request.headers.get("X-Webhook-Timestamp", "")
        signature = request.headers.get("X-Webhook-Signature", "")
        try:
            ts = int(timestamp)
        except ValueError:
            return False
        if abs(self._clock() - ts) > SIGNATURE_MAX_AGE:
            return False
        digest = hmac.new(
            self._hmac_key.get().encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256
        ).digest()
        expected = base64.b64encode(digest).decode()
        return hmac.compare_digest(expected.encode(), signature.encode())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
