"""Typed shapes of KIE's requests and answers, parsed tolerantly (see kie-api.md §3, §4)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from bot.kie.errors import KieBadResponse

__all__ = [
    "CallbackEvent",
    "GenerateRequest",
    "SuccessFlag",
    "TaskRecord",
    "UploadedFile",
    "clean",
    "parse_callback",
    "parse_record",
    "parse_timestamp",
    "parse_uploaded",
]


class SuccessFlag(IntEnum):
    """``successFlag`` of record-info."""

    GENERATING = 0
    SUCCESS = 1
    CREATE_FAILED = 2
    GENERATE_FAILED = 3


_JSON_KEYS: tuple[tuple[str, str], ...] = (
    ("prompt", "prompt"),
    ("enable_translation", "enableTranslation"),
    ("upload_cn", "uploadCn"),
    ("input_image", "inputImage"),
    ("aspect_ratio", "aspectRatio"),
    ("output_format", "outputFormat"),
    ("prompt_upsampling", "promptUpsampling"),
    ("model", "model"),
    ("callback_url", "callBackUrl"),
    ("safety_tolerance", "safetyTolerance"),
    ("watermark", "watermark"),
)


@dataclass(frozen=True)
class GenerateRequest:
    """The body of ``POST /api/v1/flux/kontext/generate``; ``None`` fields are omitted."""

    prompt: str
    enable_translation: bool | None = None
    upload_cn: bool | None = None
    input_image: str | None = None
    aspect_ratio: str | None = None
    output_format: str | None = None
    prompt_upsampling: bool | None = None
    model: str | None = None
    callback_url: str | None = None
    safety_tolerance: int | None = None
    watermark: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON body, in KIE's documented field order."""
        out: dict[str, Any] = {}
        for attr, key in _JSON_KEYS:
            value = getattr(self, attr)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class TaskRecord:
    """``data`` of record-info."""

    task_id: str
    success_flag: SuccessFlag
    param_json: str | None
    origin_image_url: str | None
    result_image_url: str | None
    error_code: int | None
    error_message: str | None
    create_time: datetime | None
    complete_time: datetime | None

    @property
    def is_done(self) -> bool:
        """True once the task reached a terminal flag."""
        return self.success_flag != SuccessFlag.GENERATING

    @property
    def is_success(self) -> bool:
        """True when the image was generated."""
        return self.success_flag == SuccessFlag.SUCCESS

    @property
    def is_failed(self) -> bool:
        """True when creating or generating failed."""
        return self.success_flag in (SuccessFlag.CREATE_FAILED, SuccessFlag.GENERATE_FAILED)


@dataclass(frozen=True)
class UploadedFile:
    """``data`` of the upload endpoints."""

    download_url: str
    file_name: str | None
    file_path: str | None
    file_size: int | None
    mime_type: str | None


@dataclass(frozen=True)
class CallbackEvent:
    """The body KIE POSTs to ``callBackUrl``."""

    task_id: str
    code: int
    msg: str
    origin_image_url: str | None
    result_image_url: str | None


def clean(value: Any) -> Any:
    """``None``, the string ``"null"`` and ``""`` all become ``None``; other values pass."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip() in ("", "null", "NULL", "None"):
        return None
    return value


def _opt_str(value: Any) -> str | None:
    value = clean(value)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _opt_int(value: Any) -> int | None:
    value = clean(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


_PLAIN_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?$")


def parse_timestamp(value: Any) -> datetime | None:
    """Parse a KIE timestamp into a tz-aware UTC datetime.

    Accepts ISO-8601 (``Z``, offsets, fractions), ``YYYY-MM-DD HH:MM:SS`` (read as UTC), epoch
    milliseconds (int, float or numeric string); ``None``/``"null"``/``""`` and junk -> ``None``.
    """
    value = clean(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return _from_epoch(float(text))
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _from_epoch(number: float) -> datetime | None:
    # KIE's siblings use epoch milliseconds; a value that small can only be seconds.
    seconds = number / 1000.0 if abs(number) >= 1e11 else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_record(data: Any, *, endpoint: str = "record-info") -> TaskRecord:
    """Build a :class:`TaskRecord` from record-info's ``data`` (raises :class:`KieBadResponse`)."""
    if not isinstance(data, dict):
        raise KieBadResponse("record data is not an object", endpoint=endpoint)
    task_id = _opt_str(data.get("taskId")) or _opt_str(data.get("task_id"))
    if task_id is None:
        raise KieBadResponse("record has no taskId", endpoint=endpoint)
    flag_raw = _opt_int(data.get("successFlag"))
    try:
        flag = SuccessFlag(flag_raw if flag_raw is not None else -1)
    except ValueError:
        raise KieBadResponse(
            f"unknown successFlag {data.get('successFlag')!r}", endpoint=endpoint
        ) from None
    response = clean(data.get("response"))
    origin = result = None
    if isinstance(response, dict):
        origin = _opt_str(response.get("originImageUrl"))
        result = _opt_str(response.get("resultImageUrl"))
    param = data.get("paramJson")
    if isinstance(param, dict):
        param_json: str | None = json.dumps(param)
    else:
        param_json = _opt_str(param)
    return TaskRecord(
        task_id=task_id,
        success_flag=flag,
        param_json=param_json,
        origin_image_url=origin,
        result_image_url=result,
        error_code=_opt_int(data.get("errorCode")),
        error_message=_opt_str(data.get("errorMessage")),
        create_time=parse_timestamp(data.get("createTime")),
        complete_time=parse_timestamp(data.get("completeTime")),
    )


def parse_uploaded(data: Any, *, endpoint: str = "upload") -> UploadedFile:
    """Build an :class:`UploadedFile`; URL from ``downloadUrl``, ``fileUrl``, then ``url``."""
    if not isinstance(data, dict):
        raise KieBadResponse("upload data is not an object", endpoint=endpoint)
    url = (
        _opt_str(data.get("downloadUrl"))
        or _opt_str(data.get("fileUrl"))
        or _opt_str(data.get("url"))
    )
    if url is None:
        raise KieBadResponse("upload answer has no file URL", endpoint=endpoint)
    return UploadedFile(
        download_url=url,
        file_name=_opt_str(data.get("fileName")),
        file_path=_opt_str(data.get("filePath")),
        file_size=_opt_int(data.get("fileSize")),
        mime_type=_opt_str(data.get("mimeType")),
    )


def parse_callback(body: Any) -> CallbackEvent:
    """Parse a callback body; taskId from ``data.taskId``, ``data.task_id``, then ``taskId``."""
    if not isinstance(body, dict):
        raise KieBadResponse("callback body is not an object", endpoint="callback")
    code = _opt_int(body.get("code"))
    if code is None:
        raise KieBadResponse("callback has no code", endpoint="callback")
    data = clean(body.get("data"))
    if data is not None and not isinstance(data, dict):
        raise KieBadResponse("callback data is not an object", endpoint="callback")
    data = data or {}
    task_id = (
        _opt_str(data.get("taskId"))
        or _opt_str(data.get("task_id"))
        or _opt_str(body.get("taskId"))
    )
    if task_id is None:
        raise KieBadResponse("callback has no taskId", endpoint="callback")
    info = clean(data.get("info"))
    origin = result = None
    if isinstance(info, dict):
        origin = _opt_str(info.get("originImageUrl"))
        result = _opt_str(info.get("resultImageUrl"))
    return CallbackEvent(
        task_id=task_id,
        code=code,
        msg=_opt_str(body.get("msg")) or "",
        origin_image_url=origin,
        result_image_url=result,
    )
