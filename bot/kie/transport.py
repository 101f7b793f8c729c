"""The HTTP side of the KIE client: one request, its envelope check, and the retry policies.

A call fails when the HTTP status is not 2xx **or** the body's ``code`` is not 200; the error class
comes from the body code, falling back to the HTTP status (kie-api.md §5). The API key lives only
in the Authorization header: aiohttp exceptions, whose ``request_info`` carries the request
headers, are never chained (``raise ... from None``) nor formatted into messages.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.kie.errors import (
    KieBadResponse,
    KieConnectError,
    KieError,
    KieTransportError,
    error_for_code,
)

__all__ = ["KieTransport", "RetryPolicy"]

log = logging.getLogger("bot.kie.client")


class RetryPolicy(enum.Enum):
    """When a failed call is sent again."""

    NEVER = enum.auto()
    # Once, and only when no connection was made (no byte of the request was sent).
    CONNECT_ONLY = enum.auto()
    # Up to ``max_retries`` extra attempts on retryable errors (idempotent calls).
    RETRYABLE = enum.auto()


class KieTransport:
    """Sends one KIE request (with headers, timeout and retries) and checks its JSON envelope."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str,
        *,
        request_timeout: float,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        user_agent: str,
        observer: Callable[[str, str], None] | None,
    ) -> None:
        self.session = session
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": user_agent,
            "Accept": "application/json",
        }
        self.timeout = aiohttp.ClientTimeout(total=request_timeout)
        self.max_retries = max(0, max_retries)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._observer = observer

    def __repr__(self) -> str:
        return f"KieTransport(max_retries={self.max_retries})"

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0.0, min(self._backoff_max, self._backoff_base * (2**attempt)))

    async def call(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        policy: RetryPolicy,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> dict[str, Any]:
        """The answer's envelope (code 200), after the retries ``policy`` allows."""
        attempts = 1 + (self.max_retries if policy is RetryPolicy.RETRYABLE else 0)
        if policy is RetryPolicy.CONNECT_ONLY:
            attempts = 2
        for attempt in range(attempts):
            try:
                return await self._once(
                    endpoint, method, url, json_body=json_body, params=params, form=form
                )
            except _ConnectFailed as exc:
                err: KieError = exc.error
                can_retry = policy is not RetryPolicy.NEVER
            except KieError as exc:
                err = exc
                can_retry = policy is RetryPolicy.RETRYABLE and exc.retryable
            if not can_retry or attempt + 1 >= attempts:
                raise err
            delay = self.backoff(attempt)
            log.debug("%s failed (%s); retry %d in %.2fs", endpoint, err, attempt + 1, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        json_body: dict[str, Any] | None,
        params: dict[str, str] | None,
        form: Callable[[], aiohttp.FormData] | None,
    ) -> dict[str, Any]:
        start = time.monotonic()
        status, raw = await self._send(
            endpoint, method, url, start, json_body=json_body, params=params, form=form
        )
        return self._envelope(endpoint, status, raw, start)

    async def _send(
        self,
        endpoint: str,
        method: str,
        url: str,
        start: float,
        *,
        json_body: dict[str, Any] | None,
        params: dict[str, str] | None,
        form: Callable[[], aiohttp.FormData] | None,
    ) -> tuple[int, bytes]:
        """The HTTP status and raw body; transport failures become KIE errors."""
        headers = dict(self._headers)
        kwargs: dict[str, Any] = {"headers": headers, "timeout": self.timeout}
        if form is not None:
            kwargs["data"] = form()
        else:
            headers["Content-Type"] = "application/json"
            if json_body is not None:
                kwargs["data"] = json.dumps(json_body).encode()
        if params is not None:
            kwargs["params"] = params
        try:
            async with self.session.request(method, url, **kwargs) as resp:
                return resp.status, await resp.read()
        except aiohttp.ClientConnectorError as exc:
            self._log_outcome(endpoint, "transport", start)
            raise _ConnectFailed(
                KieConnectError(f"cannot connect ({type(exc).__name__})", endpoint=endpoint)
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._log_outcome(endpoint, "transport", start)
            kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise KieTransportError(f"transport failure ({kind})", endpoint=endpoint) from None

    def _envelope(self, endpoint: str, status: int, raw: bytes, start: float) -> dict[str, Any]:
        """The body when the status is 2xx and its code 200; otherwise the matching KIE error."""
        try:
            body: Any = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
            if 200 <= status < 300:
                self._log_outcome(endpoint, "bad_response", start)
                raise KieBadResponse(
                    f"invalid JSON (HTTP {status})", endpoint=endpoint, http_status=status
                ) from None
        code = _body_code(body)
        msg = body.get("msg") if isinstance(body, dict) else None
        msg_text = msg if isinstance(msg, str) else ""
        ok_status = 200 <= status < 300
        if ok_status and code == 200 and isinstance(body, dict):
            if body.get("success") is False:
                self._log_outcome(endpoint, "bad_response", start)
                raise KieBadResponse(
                    "success=false with code 200", endpoint=endpoint, http_status=status
                )
            self._log_outcome(endpoint, "200", start)
            return body
        if ok_status and code is None:
            self._log_outcome(endpoint, "bad_response", start)
            raise KieBadResponse(
                "answer has no numeric code", endpoint=endpoint, http_status=status
            )
        err = error_for_code(
            code if code != 200 else None, msg_text, endpoint=endpoint, http_status=status
        )
        self._log_outcome(endpoint, str(err.code), start)
        raise err

    def _log_outcome(self, endpoint: str, outcome: str, start: float) -> None:
        log.debug("KIE %s -> %s in %.0f ms", endpoint, outcome, (time.monotonic() - start) * 1e3)
        if self._observer is None:
            return
        try:
            self._observer(endpoint, outcome)
        except Exception:
            log.exception("KIE observer failed for %s", endpoint)


class _ConnectFailed(Exception):
    """Internal: the connection was never established (safe to retry even a POST once)."""

    def __init__(self, error: KieTransportError) -> None:
        super().__init__(str(error))
        self.error = error


def _body_code(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None
