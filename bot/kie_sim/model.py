"""The simulator's vocabulary: its settings, what it records, its tasks, and its clock."""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
MARKERS = {
    "policy": "content_policy",
    "fail": "generation_failed",
    "internal": "internal_error",
    "createfail": "create_failed",
}
MARKER_RE = re.compile(r"\[sim:(policy|fail|internal|createfail|delay=([0-9]*\.?[0-9]+))\]")
MAX_INPUT = 50 * 1024 * 1024
MIME_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


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
    input_data: bytes | None = None  # the input image's bytes, exactly as fetched
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
class Fail:
    """One scripted failure of the next request to an endpoint (see ``fail_next``)."""

    status: int
    code: int | None
    malformed: bool
    reset: bool
    hang: float
    after_handling: bool = False


@dataclass
class StoredFile:
    """An uploaded file (its expiry counts from ``created_sim``)."""

    data: bytes
    mime: str
    name: str
    created_sim: float
    ttl_attr: str = "upload_ttl"


def bearer_key(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None."""
    if not header or not header.startswith("Bearer "):
        return None
    key = header[len("Bearer ") :].strip()
    return key or None


class SimClock:
    """The simulator's clock: real time plus everything :meth:`advance`d (for expiry)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def now(self) -> float:
        """``time.monotonic()`` plus the offset."""
        return time.monotonic() + self.offset

    def wall(self) -> datetime:
        """The wall-clock time plus the offset."""
        return datetime.now(UTC) + timedelta(seconds=self.offset)


def nulls_to_strings(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with every None (nested too) as the string "null", as KIE sometimes sends."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            out[key] = "null"
        elif isinstance(item, dict):
            out[key] = nulls_to_strings(item)
        else:
            out[key] = item
    return out


def decode_base64(value: Any) -> tuple[bytes, str] | None:
    """The bytes and MIME type of base64 (or a base64 data URL), or None when invalid."""
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
