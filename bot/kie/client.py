"""The one KIE client: Flux Kontext generate / record-info, the Common API and the File Upload API.

Every call has a timeout, an explicit User-Agent and ``Authorization: Bearer <key>``. A call fails
when the HTTP status is not 2xx **or** the body's ``code`` is not 200; the error class comes from
the body code, falling back to the HTTP status (kie-api.md §5).

Retry policy (the job-creating POST is never retried blindly):

* ``record_info``, ``credits``, ``download_url`` and result downloads are idempotent: they are
  retried on retryable errors with exponential backoff and full jitter, up to ``max_retries`` extra
  attempts.
* ``generate`` is never retried, except after a 429 when ``retries_on_429 > 0``: KIE drops
  rate-limited requests instead of queueing them, so nothing was created and it is safe to send
  again after waiting out a whole rate window (``rate_limit_wait`` seconds, 10 by default).
* The upload POSTs are retried once, and only when the connection could not be established at all
  (``aiohttp.ClientConnectorError``): then no byte of the request was sent, so no file can have been
  stored. Any failure after that point (reset mid-request, timeout, 5xx) is raised to the caller.

The API key lives only in the Authorization header. It is never logged (DEBUG logs carry the
endpoint, outcome and elapsed time), and aiohttp exceptions, whose ``request_info`` carries the
request headers, are never chained (``raise ... from None``) nor formatted into messages.

The request itself, its envelope check and the retry loop live in :mod:`bot.kie.transport`; this
module holds the endpoints and the result download.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bot.i18n import N_
from bot.kie.errors import (
    KieBadResponse,
    KieError,
    KieNotFound,
    KieRateLimited,
    KieTransportError,
    KieValidationError,
)
from bot.kie.models import GenerateRequest, TaskRecord, UploadedFile, parse_record, parse_uploaded
from bot.kie.transport import KieTransport, RetryPolicy
from bot.net import DownloadTooLarge, safe_fetch

__all__ = ["KieClient"]

log = logging.getLogger(__name__)

GENERATE_PATH = "/api/v1/flux/kontext/generate"
RECORD_INFO_PATH = "/api/v1/flux/kontext/record-info"
CREDIT_PATH = "/api/v1/chat/credit"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
STREAM_UPLOAD_PATH = "/api/file-stream-upload"
URL_UPLOAD_PATH = "/api/file-url-upload"
BASE64_UPLOAD_PATH = "/api/file-base64-upload"


class KieClient:
    """Async client for KIE.AI; one instance per bot, sharing one ``aiohttp.ClientSession``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str,
        *,
        base_url: str,
        upload_base_url: str,
        request_timeout: float = 30.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        user_agent: str = "kontext-bot/0.1 (+https://github.com/kontext-bot)",
        observer: Callable[[str, str], None] | None = None,
        download: Callable[[str, int], Awaitable[bytes]] | None = None,
        rate_limit_wait: float = 10.0,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._transport = KieTransport(
            session,
            api_key,
            request_timeout=request_timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            user_agent=user_agent,
            observer=observer,
        )
        self._base_url = base_url.rstrip("/")
        self._upload_base_url = upload_base_url.rstrip("/")
        self._download = download or self._default_download
        self.rate_limit_wait = rate_limit_wait

    def __repr__(self) -> str:
        return f"KieClient(base_url={self._base_url!r}, upload_base_url={self._upload_base_url!r})"

    # ------------------------------------------------------------------ public API

    async def generate(self, request: GenerateRequest, *, retries_on_429: int = 0) -> str:
        """Create a Flux Kontext task and return its taskId (never retried except after a 429)."""
        body = request.to_json()
        attempt = 0
        while True:
            try:
                envelope = await self._transport.call(
                    "generate",
                    "POST",
                    self._base_url + GENERATE_PATH,
                    policy=RetryPolicy.NEVER,
                    json_body=body,
                )
            except KieRateLimited:
                if attempt >= retries_on_429:
                    raise
                attempt += 1
                log.info(
                    "generate rate-limited; waiting %.1fs before retry %d/%d",
                    self.rate_limit_wait,
                    attempt,
                    retries_on_429,
                )
                await asyncio.sleep(self.rate_limit_wait)
                continue
            data = envelope.get("data")
            task_id: Any = data.get("taskId") if isinstance(data, dict) else None
            if not task_id:
                task_id = envelope.get("taskId")
            if not isinstance(task_id, str) or not task_id or task_id == "null":
                raise KieBadResponse("no taskId in generate answer", endpoint="generate")
            return task_id

    async def record_info(self, task_id: str) -> TaskRecord:
        """Fetch a task's record (retried); unknown ids raise :class:`KieValidationError`."""
        envelope = await self._transport.call(
            "record-info",
            "GET",
            self._base_url + RECORD_INFO_PATH,
            policy=RetryPolicy.RETRYABLE,
            params={"taskId": task_id},
        )
        data = envelope.get("data")
        if data is None or data == "null":
            raise KieValidationError("The record does not exist", endpoint="record-info")
        return parse_record(data)

    async def credits(self) -> float:
        """The account's remaining credits (retried)."""
        envelope = await self._transport.call(
            "credit", "GET", self._base_url + CREDIT_PATH, policy=RetryPolicy.RETRYABLE
        )
        data = envelope.get("data")
        if isinstance(data, bool):
            raise KieBadResponse("credit data is a boolean", endpoint="credit")
        if isinstance(data, int | float):
            return float(data)
        if isinstance(data, str):
            try:
                return float(data)
            except ValueError:
                pass
        raise KieBadResponse("credit data is not a number", endpoint="credit")

    async def upload_file(
        self,
        data: bytes,
        file_name: str,
        *,
        upload_path: str = "kontext-bot",
        content_type: str | None = None,
    ) -> UploadedFile:
        """Upload bytes with ``POST /api/file-stream-upload`` (multipart)."""

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field(
                "file",
                data,
                filename=file_name,
                content_type=content_type or "application/octet-stream",
            )
            fd.add_field("uploadPath", upload_path)
            fd.add_field("fileName", file_name)
            return fd

        return await self._upload(STREAM_UPLOAD_PATH, form=form)

    async def upload_from_url(
        self, file_url: str, *, upload_path: str = "kontext-bot", file_name: str | None = None
    ) -> UploadedFile:
        """Let KIE fetch ``file_url`` and store it (``POST /api/file-url-upload``)."""
        body: dict[str, Any] = {"fileUrl": file_url, "uploadPath": upload_path}
        if file_name:
            body["fileName"] = file_name
        return await self._upload(URL_UPLOAD_PATH, json_body=body)

    async def upload_base64(
        self,
        data: bytes,
        *,
        upload_path: str = "kontext-bot",
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> UploadedFile:
        """Upload small files as base64 (a data URL when ``mime_type`` is given)."""
        encoded = base64.b64encode(data).decode("ascii")
        payload = f"data:{mime_type};base64,{encoded}" if mime_type else encoded
        body: dict[str, Any] = {"base64Data": payload, "uploadPath": upload_path}
        if file_name:
            body["fileName"] = file_name
        return await self._upload(BASE64_UPLOAD_PATH, json_body=body)

    async def _upload(
        self,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> UploadedFile:
        """POST to one of the three upload endpoints; resent only if no connection was made."""
        envelope = await self._transport.call(
            "upload",
            "POST",
            self._upload_base_url + path,
            policy=RetryPolicy.CONNECT_ONLY,
            json_body=json_body,
            form=form,
        )
        return parse_uploaded(envelope.get("data"))

    async def download_url(self, url: str) -> str:
        """Exchange a KIE file URL for a temporary (20 min) download link (retried)."""
        envelope = await self._transport.call(
            "download-url",
            "POST",
            self._base_url + DOWNLOAD_URL_PATH,
            policy=RetryPolicy.RETRYABLE,
            json_body={"url": url},
        )
        data = envelope.get("data")
        if not isinstance(data, str) or not data or data == "null":
            raise KieBadResponse("download-url data is not a URL", endpoint="download-url")
        return data

    async def fetch_result(self, url: str, *, max_bytes: int, fall_back: bool = True) -> bytes:
        """Download a result file; on failure, fall back to a download-url link (retried).

        Raises a retryable :class:`KieTransportError` when both ways fail, a non-retryable
        :class:`KieNotFound` when download-url says the file is gone (expired), and a
        non-retryable :class:`KieBadResponse` when the file is larger than ``max_bytes``.
        Without ``fall_back`` (a URL record-info has not confirmed yet) only the direct
        download is tried, once, and its failure raised as a :class:`KieTransportError`.
        """
        try:
            return await self._download(url, max_bytes)
        except DownloadTooLarge:
            raise _result_too_large() from None
        except Exception as exc:
            first = type(exc).__name__
            if not fall_back:
                raise KieTransportError(
                    f"result download failed ({first})", endpoint="download"
                ) from None
            log.info("direct result download failed (%s); asking download-url", first)
        try:
            link = await self.download_url(url)
        except (KieNotFound, KieValidationError) as exc:
            # KIE says the file is gone (past its 14 days) or is not one of its files:
            # asking again cannot bring it back.
            raise KieNotFound(
                f"result unavailable ({first}); download-url refused it ({exc})",
                endpoint="download",
                user_message=N_("The finished image is no longer available from KIE."),
            ) from None
        except KieError as exc:
            raise KieTransportError(
                f"result download failed ({first}); download-url failed ({exc})",
                endpoint="download",
            ) from None
        last = ""
        for attempt in range(self._transport.max_retries + 1):
            try:
                return await self._download(link, max_bytes)
            except DownloadTooLarge:
                raise _result_too_large() from None
            except Exception as exc:
                last = type(exc).__name__
                if attempt < self._transport.max_retries:
                    await asyncio.sleep(self._transport.backoff(attempt))
        raise KieTransportError(
            f"result download failed ({first}); download-url link failed too ({last})",
            endpoint="download",
        )

    # ------------------------------------------------------------------ internals

    async def _default_download(self, url: str, max_bytes: int) -> bytes:
        fetched = await safe_fetch(
            self._transport.session,
            url,
            max_bytes=max_bytes,
            allow_private=False,
            timeout=self._transport.timeout.total or 30.0,
        )
        return fetched.data


def _result_too_large() -> KieBadResponse:
    """A finished image over the size the caller can take: fetching it again cannot help."""
    return KieBadResponse(
        "result larger than allowed",
        endpoint="download",
        retryable=False,
        user_message=N_("The generated image is too large to post."),
    )
