"""The Flux Kontext API (generate, record-info) and the Common API's credit balance."""

from __future__ import annotations

import json
from collections import deque
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.kie_sim.answers import authorized_key, envelope, unauthorized
from bot.kie_sim.images import ASPECT_RATIOS
from bot.kie_sim.model import (
    FORMATS,
    MODELS,
    SAFETY_MSG,
    SimClock,
    SimConfig,
    SimTask,
    nulls_to_strings,
)
from bot.kie_sim.tasks import TaskBoard


class FluxApi:
    """Creates tasks (rate limit, validation, credits) and reports on them."""

    def __init__(
        self,
        config: SimConfig,
        clock: SimClock,
        tasks: dict[str, SimTask],
        balances: dict[str, float],
        board: TaskBoard,
    ) -> None:
        self._config = config
        self._clock = clock
        self._tasks = tasks
        self._balances = balances
        self._board = board
        self._windows: dict[str, deque[float]] = {}

    async def generate(self, request: web.Request) -> web.StreamResponse:
        key = authorized_key(self._config, request)
        if key is None:
            return unauthorized(self._config)
        if not self._within_rate_limit(key):
            return self._envelope(429, "Rate limit exceeded", None)
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
        cost = self._config.cost_max if model == "flux-kontext-max" else self._config.cost_pro
        balance = self._balances.setdefault(key, self._config.credits)
        if balance < cost:
            return self._envelope(402, "The current credits are insufficient", None)
        self._balances[key] = balance - cost
        task = self._board.create(key, body)
        if self._config.task_id_at_root:
            return self._envelope(200, "success", None, taskId=task.task_id)
        return self._envelope(200, "success", {"taskId": task.task_id})

    def record_info(self, request: web.Request) -> web.StreamResponse:
        if authorized_key(self._config, request) is None:
            return unauthorized(self._config)
        task_id = request.query.get("taskId", "")
        if not task_id:
            return self._envelope(422, "taskId is required", None)
        task = self._tasks.get(task_id)
        if task is None:
            if self._config.unknown_record == "null":
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
        if self._config.null_strings:
            return nulls_to_strings(data)
        return data

    def credit(self, request: web.Request) -> web.StreamResponse:
        key = authorized_key(self._config, request)
        if key is None:
            return unauthorized(self._config)
        balance = self._balances.setdefault(key, self._config.credits)
        # An int balance goes out as is: a test may set one too large for a float.
        value: float | int = balance
        if not isinstance(balance, int) and balance.is_integer():
            value = int(balance)
        return self._envelope(200, "success", value)

    def _within_rate_limit(self, key: str) -> bool:
        """Count this request in the key's rate window, unless the window is full."""
        window = self._windows.setdefault(key, deque())
        now = self._clock.now()
        while window and now - window[0] >= self._config.rate_window:
            window.popleft()
        if len(window) >= self._config.rate_limit:
            return False
        window.append(now)
        return True

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

    def _envelope(self, code: int, msg: str, data: Any, **extra: Any) -> web.Response:
        return envelope(self._config, code, msg, data, **extra)

    def _fmt_time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        fmt = self._config.timestamp_format
        if fmt == "plain":
            return value.strftime("%Y-%m-%d %H:%M:%S")
        if fmt == "epoch_ms":
            return int(value.timestamp() * 1000)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
