"""Pure parsing and mapping: timestamps, callbacks, records, the request body, error_for_code."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.kie import (
    GenerateRequest,
    KieBadResponse,
    KieError,
    KieGenerationFailed,
    KieInsufficientCredits,
    KieRateLimited,
    KieServerError,
    KieValidationError,
    SuccessFlag,
    error_for_code,
    parse_callback,
    parse_timestamp,
)
from bot.kie.models import parse_record, parse_uploaded

WHEN = datetime(2024, 3, 20, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-20T10:30:00Z",
        "2024-03-20T10:30:00.000Z",
        "2024-03-20T12:30:00+02:00",
        "2024-03-20T10:30:00",
        "2024-03-20 10:30:00",
        1710930600000,
        "1710930600000",
        1710930600000.0,
    ],
)
def test_parse_timestamp_formats(value: object) -> None:
    """ISO (Z/offset/fraction/naive), plain and epoch-ms timestamps give the same UTC instant."""
    parsed = parse_timestamp(value)
    assert parsed == WHEN
    assert parsed is not None and parsed.tzinfo is not None


@pytest.mark.parametrize("value", [None, "null", "", "garbage", True, {"a": 1}])
def test_parse_timestamp_empty_or_junk(value: object) -> None:
    """Null-likes and junk parse to None instead of raising."""
    assert parse_timestamp(value) is None


def test_generate_request_to_json_order_and_omission() -> None:
    """to_json uses KIE's camelCase names in documented order and drops None fields."""
    req = GenerateRequest(
        prompt="p",
        enable_translation=True,
        upload_cn=False,
        input_image="https://x/y.png",
        aspect_ratio="1:1",
        output_format="png",
        prompt_upsampling=False,
        model="flux-kontext-pro",
        callback_url="https://cb",
        safety_tolerance=0,
        watermark="w",
    )
    assert list(req.to_json()) == [
        "prompt",
        "enableTranslation",
        "uploadCn",
        "inputImage",
        "aspectRatio",
        "outputFormat",
        "promptUpsampling",
        "model",
        "callBackUrl",
        "safetyTolerance",
        "watermark",
    ]
    assert req.to_json()["safetyTolerance"] == 0 and req.to_json()["uploadCn"] is False
    assert GenerateRequest(prompt="only").to_json() == {"prompt": "only"}


def test_parse_callback_success_and_fallbacks() -> None:
    """Callbacks read data.info URLs; taskId from data.taskId, data.task_id, then the root."""
    ok = parse_callback(
        {
            "code": 200,
            "msg": "BFL image generated successfully.",
            "data": {"taskId": "t1", "info": {"originImageUrl": "o", "resultImageUrl": "r"}},
        }
    )
    assert (ok.task_id, ok.code, ok.origin_image_url, ok.result_image_url) == ("t1", 200, "o", "r")
    snake = parse_callback({"code": 501, "msg": "x", "data": {"task_id": "t2", "info": {}}})
    assert snake.task_id == "t2" and snake.result_image_url is None
    root = parse_callback({"code": 400, "msg": "m", "taskId": "t3", "data": None})
    assert root.task_id == "t3"
    failed = parse_callback(
        {"code": 501, "msg": "m", "data": {"taskId": "t4", "info": {"resultImageUrl": ""}}}
    )
    assert failed.result_image_url is None and failed.origin_image_url is None


def test_parse_callback_ignores_response_key() -> None:
    """Only data.info counts; a record-style data.response is not read as the callback's URLs."""
    ev = parse_callback(
        {"code": 200, "msg": "", "data": {"taskId": "t", "response": {"resultImageUrl": "r"}}}
    )
    assert ev.result_image_url is None


@pytest.mark.parametrize(
    "body", [None, [], "x", {"msg": "no code"}, {"code": 200, "data": {}}, {"code": 200, "data": 3}]
)
def test_parse_callback_rejects_bad_bodies(body: object) -> None:
    """Malformed callback bodies raise KieBadResponse."""
    with pytest.raises(KieBadResponse):
        parse_callback(body)


def test_parse_record_tolerates_null_strings() -> None:
    """A record full of "null" strings parses with None fields and the right flag."""
    rec = parse_record(
        {
            "taskId": "t",
            "successFlag": "1",
            "paramJson": "null",
            "response": {"originImageUrl": "null", "resultImageUrl": "https://r"},
            "errorCode": "null",
            "errorMessage": "null",
            "createTime": "2026-01-06 08:17:04",
            "completeTime": "null",
        }
    )
    assert rec.success_flag is SuccessFlag.SUCCESS and rec.is_success
    assert rec.param_json is None and rec.origin_image_url is None
    assert rec.result_image_url == "https://r"
    assert rec.error_code is None and rec.error_message is None
    assert rec.create_time == datetime(2026, 1, 6, 8, 17, 4, tzinfo=UTC)
    assert rec.complete_time is None


def test_parse_record_rejects_unknown_flag() -> None:
    """An unknown successFlag or missing taskId is a bad response, not a crash."""
    with pytest.raises(KieBadResponse):
        parse_record({"taskId": "t", "successFlag": 9})
    with pytest.raises(KieBadResponse):
        parse_record({"successFlag": 1})


def test_parse_uploaded_url_fallbacks() -> None:
    """Upload answers use downloadUrl, then fileUrl, then url."""
    assert parse_uploaded({"downloadUrl": "a", "fileUrl": "b"}).download_url == "a"
    assert parse_uploaded({"fileUrl": "b", "url": "c"}).download_url == "b"
    assert parse_uploaded({"url": "c", "fileSize": "12"}).file_size == 12
    with pytest.raises(KieBadResponse):
        parse_uploaded({"fileName": "x"})


def test_error_for_code_falls_back_to_http_status() -> None:
    """Body code wins; without it the HTTP status decides; unknown 5xx are retryable."""
    assert isinstance(error_for_code(402, "x", http_status=200), KieInsufficientCredits)
    assert isinstance(error_for_code(None, None, http_status=429), KieRateLimited)
    assert isinstance(error_for_code(200, "odd", http_status=422), KieValidationError)
    unknown = error_for_code(None, "", http_status=503)
    assert isinstance(unknown, KieServerError) and unknown.retryable and unknown.code == 503
    other = error_for_code(418, "teapot")
    assert type(other) is KieError and not other.retryable and other.code == 418


def test_error_messages_are_user_safe_and_truncated() -> None:
    """user_message never echoes server text; str() truncates long server messages."""
    err = error_for_code(501, "secret internal trace " * 50, endpoint="generate")
    assert isinstance(err, KieGenerationFailed)
    assert err.user_message == "The image generation failed — try Re-roll."
    assert "trace" not in err.user_message
    assert len(str(err)) < 260 and str(err).startswith("generate code=501")


def test_documented_user_messages() -> None:
    """The documented default user messages are attached to their classes."""
    assert "top up" in error_for_code(402, None).user_message
    assert error_for_code(400, None).user_message == (
        "Your prompt or image was flagged by the content filter."
    )
    assert error_for_code(455, None).user_message == "KIE is under maintenance right now."
    assert error_for_code(422, None).user_message == "KIE refused the request's parameters."
    assert "API key was refused" in error_for_code(401, None).user_message
