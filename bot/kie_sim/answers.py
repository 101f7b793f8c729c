"""How the simulator answers: KIE's JSON envelopes, the upload answers, and the key check."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from bot.kie_sim.model import SimConfig, bearer_key

# The body code of an answer, for the call log (``SimCall.code``).
CODE_KEY: web.ResponseKey[int] = web.ResponseKey("kie_code")


def envelope(
    config: SimConfig, code: int, msg: str, data: Any, *, status: int | None = None, **extra: Any
) -> web.Response:
    """``{"code", "msg", "data"}``; HTTP 200 unless a 429 or ``mirror_http_status`` says not."""
    if status is None:
        status = 200
        if code == 429 or (config.mirror_http_status and code != 200):
            status = code if 400 <= code <= 599 else 200
    body: dict[str, Any] = {"code": code, "msg": msg, "data": data, **extra}
    resp = web.json_response(body, status=status)
    resp[CODE_KEY] = code
    return resp


def upload_answer(status: int, msg: str, data: dict[str, Any] | None = None) -> web.Response:
    """The File Upload API's ``{"success", "code", "msg"[, "data"]}`` with HTTP ``status``."""
    body: dict[str, Any] = {"success": status == 200, "code": status, "msg": msg}
    if data is not None:
        body["data"] = data
    resp = web.json_response(body, status=status)
    resp[CODE_KEY] = status
    return resp


def authorized_key(config: SimConfig, request: web.Request) -> str | None:
    """The request's API key when it is accepted (any key unless ``config.api_key`` is set)."""
    key = bearer_key(request.headers.get("Authorization"))
    if key is None:
        return None
    if config.api_key is not None and not hmac.compare_digest(key, config.api_key):
        return None
    return key


def unauthorized(config: SimConfig) -> web.Response:
    return envelope(config, 401, "You do not have access permissions", None)
