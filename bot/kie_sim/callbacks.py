"""KIE's callbacks: the POST to a task's ``callBackUrl``, its retries, signature and duplicates."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bot.kie_sim.model import CALLBACK_MSGS, SimCallback, SimConfig, SimTask

log = logging.getLogger("bot.kie_sim.server")


def signature_headers(key: str, task_id: str, timestamp: int) -> dict[str, str]:
    """KIE's webhook signature: base64 HMAC-SHA256 of "{taskId}.{timestamp}" under `key`."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return {
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": base64.b64encode(digest).decode(),
    }


def callback_payload(task: SimTask) -> dict[str, Any]:
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


class CallbackSender:
    """Calls back for finished tasks and records every attempt in ``sent``."""

    def __init__(
        self,
        config: SimConfig,
        sent: list[SimCallback],
        *,
        session: Callable[[], aiohttp.ClientSession],
        next_request: Callable[[str], Awaitable[None]],
    ) -> None:
        self._config = config
        self._sent = sent
        self._session = session
        self._next_request = next_request

    async def deliver(self, task: SimTask, url: str) -> None:
        """Call back, retrying after ``config.callback_retry_delays`` until one is accepted."""
        payload = callback_payload(task)
        delays = (0.0, *self._config.callback_retry_delays)
        for delay in delays:
            if delay > 0:
                await asyncio.sleep(delay)
            if await self.post(task, url, payload):
                if self._config.duplicate_callbacks:
                    if self._config.duplicate_callback_on:
                        await self._next_request(self._config.duplicate_callback_on)
                    await self.post(task, url, payload)
                return
        log.info("sim gave up calling back %s for task %s", url, task.task_id)

    async def post(self, task: SimTask, url: str, payload: dict[str, Any]) -> bool:
        """One callback POST; True when it was answered with a 2xx."""
        headers = {"Content-Type": "application/json"}
        if self._config.hmac_key:
            headers |= signature_headers(self._config.hmac_key, task.task_id, int(time.time()))
        status: int | None = None
        sent = time.monotonic()
        try:
            async with self._session().post(
                url,
                data=json.dumps(payload).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._config.callback_timeout),
            ) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("sim callback to %s failed: %s", url, type(exc).__name__)
        self._sent.append(
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
