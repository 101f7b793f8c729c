"""The KIE client against the simulator: every endpoint, error mapping, tolerance, retries."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from PIL import Image

from bot.kie import (
    GenerateRequest,
    KieAuthError,
    KieBadResponse,
    KieClient,
    KieContentPolicy,
    KieError,
    KieFeatureDisabled,
    KieGenerationFailed,
    KieInsufficientCredits,
    KieMaintenance,
    KieMethodNotAllowed,
    KieNotFound,
    KieRateLimited,
    KieServerError,
    KieTransportError,
    KieUpstreamTimeout,
    KieValidationError,
    SuccessFlag,
    TaskRecord,
)
from bot.kie_sim import KieSimulator

MakeClient = Callable[..., KieClient]

CODE_CLASSES: list[tuple[int, type[KieError], bool]] = [
    (400, KieContentPolicy, False),
    (401, KieAuthError, False),
    (402, KieInsufficientCredits, False),
    (404, KieNotFound, False),
    (405, KieMethodNotAllowed, False),
    (408, KieUpstreamTimeout, True),
    (422, KieValidationError, False),
    (429, KieRateLimited, True),
    (455, KieMaintenance, True),
    (500, KieServerError, True),
    (501, KieGenerationFailed, False),
    (505, KieFeatureDisabled, False),
]


async def wait_done(client: KieClient, task_id: str) -> TaskRecord:
    async with asyncio.timeout(5.0):
        while True:
            record = await client.record_info(task_id)
            if record.is_done:
                return record
            await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_generate_poll_and_fetch_result(client: KieClient, sim: KieSimulator) -> None:
    """A text-to-image task goes GENERATING -> SUCCESS and its result downloads as a real image."""
    task_id = await client.generate(
        GenerateRequest(prompt="a red fox", aspect_ratio="1:1", output_format="png")
    )
    assert len(task_id) == 32
    first = await client.record_info(task_id)
    assert first.success_flag is SuccessFlag.GENERATING
    assert first.result_image_url is None and not first.is_done
    record = await wait_done(client, task_id)
    assert record.is_success and not record.is_failed
    assert record.result_image_url and record.origin_image_url
    assert record.error_code is None and record.error_message is None
    assert record.create_time is not None and record.create_time.tzinfo is not None
    assert record.complete_time is not None and record.complete_time >= record.create_time
    data = await client.fetch_result(record.result_image_url, max_bytes=10_000_000)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        assert im.size[0] == im.size[1]


async def test_generate_sends_every_field_in_camel_case(
    client: KieClient, sim: KieSimulator
) -> None:
    """All 11 GenerateRequest fields reach KIE as camelCase keys; None ones are omitted."""
    request = GenerateRequest(
        prompt="p",
        enable_translation=False,
        upload_cn=False,
        aspect_ratio="4:3",
        output_format="jpeg",
        prompt_upsampling=True,
        model="flux-kontext-max",
        callback_url="http://127.0.0.1:9/cb",
        safety_tolerance=6,
        watermark="wm",
    )
    task_id = await client.generate(request)
    sent = sim.tasks[task_id].request
    assert sent == request.to_json()
    assert "inputImage" not in sent
    assert sent["callBackUrl"] == "http://127.0.0.1:9/cb"
    assert sent["safetyTolerance"] == 6
    record = await client.record_info(task_id)
    assert record.param_json is not None and '"enableTranslation": false' in record.param_json


@pytest.mark.parametrize(("code", "cls", "retryable"), CODE_CLASSES)
async def test_body_code_maps_to_error_class(
    sim: KieSimulator,
    session: aiohttp.ClientSession,
    code: int,
    cls: type[KieError],
    retryable: bool,
    make_client: MakeClient,
) -> None:
    """Each KIE body code (sent with HTTP 200) raises its own error class with a user message."""
    client = make_client(sim, session, max_retries=0)
    sim.fail_next("credit", code=code)
    with pytest.raises(cls) as info:
        await client.credits()
    assert type(info.value) is cls
    assert info.value.code == code
    assert info.value.retryable is retryable
    assert info.value.user_message and "Simulated" not in info.value.user_message
    assert "credit" in str(info.value) and str(code) in str(info.value)


async def test_code_200_is_success(client: KieClient, sim: KieSimulator) -> None:
    """Body code 200 with HTTP 200 is a success and returns the balance as a float."""
    assert await client.credits() == 1000.0
    sim.set_credits(12.5)
    assert await client.credits() == 12.5


async def test_http_status_used_when_body_has_no_code(
    sim: KieSimulator, session: aiohttp.ClientSession, make_client: MakeClient
) -> None:
    """A non-JSON HTTP 503/404 answer maps from the HTTP status."""
    client = make_client(sim, session, max_retries=0)
    sim.fail_next("credit", status=503, malformed=True)
    with pytest.raises(KieServerError) as info:
        await client.credits()
    assert info.value.code == 503 and info.value.retryable
    sim.fail_next("record-info", status=404, malformed=True)
    with pytest.raises(KieNotFound):
        await client.record_info("x")


async def test_mirrored_http_status_still_maps_body_code(
    sim: KieSimulator, session: aiohttp.ClientSession, make_client: MakeClient, api_key: str
) -> None:
    """With the HTTP status mirroring the body code, 401 still maps to KieAuthError."""
    sim.config.mirror_http_status = True
    client = make_client(sim, session, api_key="wrong-key")
    with pytest.raises(KieAuthError) as info:
        await client.credits()
    assert info.value.http_status == 401


async def test_wrong_key_gives_auth_error(
    sim: KieSimulator, session: aiohttp.ClientSession, make_client: MakeClient, api_key: str
) -> None:
    """A refused key (body code 401 on HTTP 200) raises KieAuthError, not retried."""
    client = make_client(sim, session, api_key="nope")
    with pytest.raises(KieAuthError) as info:
        await client.record_info("abc")
    assert info.value.http_status == 200
    assert sim.count("record-info") == 1


@pytest.mark.parametrize("fmt", ["iso", "plain", "epoch_ms"])
async def test_timestamp_formats_parse_to_utc(
    client: KieClient, sim: KieSimulator, fmt: str
) -> None:
    """createTime/completeTime parse to tz-aware UTC in every format KIE may use."""
    sim.config.timestamp_format = fmt
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.complete(task_id)
    record = await client.record_info(task_id)
    now = datetime.now(UTC)
    assert record.create_time is not None and record.complete_time is not None
    assert record.create_time.utcoffset() == timedelta(0)
    assert abs(record.create_time - now) < timedelta(seconds=5)
    assert abs(record.complete_time - now) < timedelta(seconds=5)


async def test_null_strings_read_as_none(client: KieClient, sim: KieSimulator) -> None:
    """The literal string "null" in record-info fields is read like null."""
    sim.config.null_strings = True
    task_id = await client.generate(GenerateRequest(prompt="t"))
    record = await client.record_info(task_id)
    assert record.complete_time is None
    assert record.error_code is None and record.error_message is None
    assert record.result_image_url is None
    sim.config.origin_url_null = True
    sim.complete(task_id)
    done = await client.record_info(task_id)
    assert done.is_success and done.origin_image_url is None and done.result_image_url


async def test_null_origin_url(client: KieClient, sim: KieSimulator) -> None:
    """A success with originImageUrl null still yields the result URL."""
    sim.config.origin_url_null = True
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.complete(task_id)
    record = await client.record_info(task_id)
    assert record.is_success
    assert record.origin_image_url is None
    assert record.result_image_url is not None and task_id in record.result_image_url


async def test_task_id_at_root(client: KieClient, sim: KieSimulator) -> None:
    """taskId at the envelope root (data missing) is still found."""
    sim.config.task_id_at_root = True
    task_id = await client.generate(GenerateRequest(prompt="t"))
    assert task_id in sim.tasks


@pytest.mark.parametrize("form", ["422", "null"])
async def test_unknown_record(client: KieClient, sim: KieSimulator, form: str) -> None:
    """An unknown taskId raises KieValidationError 422, both as code 422 and as data null."""
    sim.config.unknown_record = form
    with pytest.raises(KieValidationError) as info:
        await client.record_info("0" * 32)
    assert info.value.code == 422
    assert "does not exist" in str(info.value)
    assert sim.count("record-info") == 1


@pytest.mark.parametrize(
    "fault", [{"code": 500}, {"reset": True}, {"malformed": True}, {"status": 502}]
)
async def test_record_info_retried_after_retryable_failure(
    client: KieClient, sim: KieSimulator, fault: dict[str, object]
) -> None:
    """record-info is retried after a 500 / a dropped connection / invalid JSON and succeeds."""
    task_id = await client.generate(GenerateRequest(prompt="t"))
    # aiohttp itself silently re-sends a GET once after a dropped connection, so two resets are
    # needed for the client to see one failure; either way the third request succeeds.
    sim.fail_next("record-info", count=2, **fault)  # type: ignore[arg-type]
    record = await client.record_info(task_id)
    assert record.task_id == task_id
    assert sim.count("record-info") == 3


async def test_record_info_gives_up_after_max_retries(
    sim: KieSimulator, session: aiohttp.ClientSession, make_client: MakeClient
) -> None:
    """Persistent 500s stop after 1 + max_retries attempts."""
    client = make_client(sim, session, max_retries=2)
    sim.fail_next("record-info", code=500, count=5)
    with pytest.raises(KieServerError):
        await client.record_info("x")
    assert sim.count("record-info") == 3


async def test_record_info_timeout_is_transport_error_and_retried(
    sim: KieSimulator, session: aiohttp.ClientSession, make_client: MakeClient
) -> None:
    """A hanging answer times out (KieTransportError) and the retry succeeds."""
    client = make_client(sim, session, request_timeout=0.2)
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.fail_next("record-info", hang=0.6)
    record = await client.record_info(task_id)
    assert record.task_id == task_id
    client0 = make_client(sim, session, request_timeout=0.2, max_retries=0)
    sim.fail_next("credit", hang=0.6)
    with pytest.raises(KieTransportError) as info:
        await client0.credits()
    assert info.value.retryable and info.value.code is None


async def test_validation_non_retryable_not_retried(client: KieClient, sim: KieSimulator) -> None:
    """A 422 on record-info is not retried."""
    sim.fail_next("record-info", code=422)
    with pytest.raises(KieValidationError):
        await client.record_info("x")
    assert sim.count("record-info") == 1


@pytest.mark.parametrize("fault", [{"code": 500}, {"reset": True}, {"status": 500}])
async def test_generate_not_retried(
    client: KieClient, sim: KieSimulator, fault: dict[str, object]
) -> None:
    """generate is never retried after a 500 or a dropped connection (a task may exist)."""
    sim.fail_next("generate", **fault)  # type: ignore[arg-type]
    with pytest.raises((KieServerError, KieTransportError)):
        await client.generate(GenerateRequest(prompt="t"))
    assert sim.count("generate") == 1


async def test_generate_429_not_retried_by_default(client: KieClient, sim: KieSimulator) -> None:
    """A 429 on generate is raised at once when retries_on_429 is 0."""
    sim.fail_next("generate", status=429)
    with pytest.raises(KieRateLimited):
        await client.generate(GenerateRequest(prompt="t"))
    assert sim.count("generate") == 1


async def test_generate_retried_after_429_when_asked(client: KieClient, sim: KieSimulator) -> None:
    """With retries_on_429, generate waits out the window after a 429 and then succeeds."""
    sim.fail_next("generate", status=429, count=2)
    started = asyncio.get_running_loop().time()
    task_id = await client.generate(GenerateRequest(prompt="t"), retries_on_429=2)
    elapsed = asyncio.get_running_loop().time() - started
    assert task_id in sim.tasks
    assert sim.count("generate") == 3
    assert elapsed >= 2 * client.rate_limit_wait * 0.9
    sim.fail_next("generate", status=429, count=3)
    with pytest.raises(KieRateLimited):
        await client.generate(GenerateRequest(prompt="t"), retries_on_429=2)


async def test_21st_create_in_window_is_rate_limited(client: KieClient, sim: KieSimulator) -> None:
    """The 21st generate within the rate window is a real HTTP 429 and creates no task."""
    ids = [await client.generate(GenerateRequest(prompt=f"p{i}")) for i in range(20)]
    assert len(set(ids)) == 20
    with pytest.raises(KieRateLimited) as info:
        await client.generate(GenerateRequest(prompt="one too many"))
    assert info.value.http_status == 429 and info.value.code == 429
    assert len(sim.tasks) == 20
    assert sim.calls[-1].status == 429


async def test_insufficient_credits(client: KieClient, sim: KieSimulator) -> None:
    """When the balance is below the model's cost, generate raises KieInsufficientCredits."""
    sim.set_credits(7)
    await client.generate(GenerateRequest(prompt="t"))  # pro costs 5
    assert await client.credits() == 2
    with pytest.raises(KieInsufficientCredits) as info:
        await client.generate(GenerateRequest(prompt="t"))
    assert "top up" in info.value.user_message


async def test_upload_file_stream(client: KieClient, session: aiohttp.ClientSession) -> None:
    """upload_file posts multipart and returns a URL that serves the same bytes."""
    png = io.BytesIO()
    Image.new("RGB", (30, 20), (1, 2, 3)).save(png, format="PNG")
    uploaded = await client.upload_file(png.getvalue(), "in.png", content_type="image/png")
    assert uploaded.file_name == "in.png" and uploaded.file_path == "kontext-bot/in.png"
    assert uploaded.file_size == len(png.getvalue()) and uploaded.mime_type == "image/png"
    async with session.get(uploaded.download_url) as resp:
        assert await resp.read() == png.getvalue()


async def test_upload_base64_and_url(client: KieClient, session: aiohttp.ClientSession) -> None:
    """upload_base64 (data URL) and upload_from_url store the bytes and return download URLs."""
    blob = b"\x89PNG-not-really" * 10
    b64 = await client.upload_base64(blob, file_name="b.bin", mime_type="image/png")
    assert b64.mime_type == "image/png" and b64.file_size == len(blob)
    plain = await client.upload_base64(b"abc")
    assert plain.file_size == 3 and plain.file_name
    copied = await client.upload_from_url(b64.download_url, file_name="copy.bin")
    assert copied.file_name == "copy.bin"
    async with session.get(copied.download_url) as resp:
        assert await resp.read() == blob


async def test_upload_auth_error_uses_http_status(
    sim: KieSimulator, session: aiohttp.ClientSession, make_client: MakeClient, api_key: str
) -> None:
    """Upload endpoints answer a bad key with a real HTTP 401, mapped to KieAuthError."""
    client = make_client(sim, session, api_key="bad")
    with pytest.raises(KieAuthError) as info:
        await client.upload_base64(b"abc")
    assert info.value.http_status == 401


async def test_upload_reset_not_retried(client: KieClient, sim: KieSimulator) -> None:
    """An upload whose connection drops after sending is not retried (a file may be stored)."""
    sim.fail_next("upload", reset=True)
    with pytest.raises(KieTransportError):
        await client.upload_base64(b"abc")
    assert sim.count("upload") == 1


async def test_upload_retried_once_when_connect_fails(
    session: aiohttp.ClientSession, api_key: str
) -> None:
    """An upload to a refused port is attempted exactly twice (nothing was sent either time)."""
    seen: list[tuple[str, str]] = []
    base = f"http://127.0.0.1:{free_port()}"
    client = KieClient(
        session,
        api_key,
        base_url=base,
        upload_base_url=base,
        backoff_base=0.01,
        observer=lambda e, o: seen.append((e, o)),
    )
    with pytest.raises(KieTransportError):
        await client.upload_base64(b"abc")
    assert seen == [("upload", "transport"), ("upload", "transport")]


async def test_observer_sees_each_attempt(
    sim: KieSimulator, session: aiohttp.ClientSession, make_client: MakeClient
) -> None:
    """The observer gets (endpoint, outcome) for every HTTP attempt, including retried ones."""
    seen: list[tuple[str, str]] = []
    client = make_client(sim, session, observer=lambda e, o: seen.append((e, o)))
    sim.fail_next("credit", code=455)
    await client.credits()
    assert seen == [("credit", "455"), ("credit", "200")]


async def test_download_url(client: KieClient, sim: KieSimulator) -> None:
    """download-url turns a simulator file URL into a working link; foreign URLs give 422."""
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.complete(task_id)
    record = await client.record_info(task_id)
    assert record.result_image_url
    link = await client.download_url(record.result_image_url)
    assert link.startswith(sim.base_url) and link != record.result_image_url
    with pytest.raises(KieValidationError):
        await client.download_url("https://example.com/cat.png")


async def test_fetch_result_falls_back_to_download_url(
    client: KieClient, sim: KieSimulator
) -> None:
    """When the direct download fails, fetch_result downloads the download-url link instead."""
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.complete(task_id)
    record = await client.record_info(task_id)
    assert record.result_image_url
    sim.fail_next("file", status=404)
    data = await client.fetch_result(record.result_image_url, max_bytes=10_000_000)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
    assert sim.count("download-url") == 1
    assert sim.count("file") == 2


async def test_fetch_result_without_fall_back_tries_the_url_once(
    client: KieClient, sim: KieSimulator
) -> None:
    """A URL record-info has not confirmed (a callback's, prefetched) is fetched directly,
    once: its failure is raised and download-url is never asked about it."""
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.complete(task_id)
    record = await client.record_info(task_id)
    assert record.result_image_url
    sim.fail_next("file", status=404)
    with pytest.raises(KieTransportError):
        await client.fetch_result(record.result_image_url, max_bytes=10_000_000, fall_back=False)
    assert (sim.count("download-url"), sim.count("file")) == (0, 1)


async def test_fetch_result_expired_is_final(client: KieClient, sim: KieSimulator) -> None:
    """A result past its TTL (direct 404, download-url 404) raises a non-retryable KieNotFound."""
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.complete(task_id)
    record = await client.record_info(task_id)
    assert record.result_image_url
    sim.advance(15 * 86400)
    with pytest.raises(KieNotFound) as info:
        await client.fetch_result(record.result_image_url, max_bytes=10_000_000)
    assert not info.value.retryable
    assert sim.count("download-url") == 1


async def test_fetch_result_too_large(client: KieClient, sim: KieSimulator) -> None:
    """A result above max_bytes is refused without falling back."""
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.complete(task_id)
    record = await client.record_info(task_id)
    assert record.result_image_url
    with pytest.raises(KieBadResponse) as info:
        await client.fetch_result(record.result_image_url, max_bytes=100)
    assert not info.value.retryable
    assert sim.count("download-url") == 0


async def test_default_download_refuses_private_addresses(
    sim: KieSimulator, session: aiohttp.ClientSession, api_key: str
) -> None:
    """Without a custom downloader, results on 127.0.0.1 are refused (SSRF guard) after fallback."""
    client = KieClient(
        session, api_key, base_url=sim.base_url, upload_base_url=sim.base_url, max_retries=0
    )
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.complete(task_id)
    record = await client.record_info(task_id)
    assert record.result_image_url
    with pytest.raises(KieTransportError):
        await client.fetch_result(record.result_image_url, max_bytes=10_000_000)
    assert sim.count("file") == 0


async def test_task_outcome_failure_visible_in_record(client: KieClient, sim: KieSimulator) -> None:
    """A content-policy task ends with flag 3 and errorCode 400 (not an API-call error)."""
    sim.script("content_policy")
    task_id = await client.generate(GenerateRequest(prompt="t"))
    sim.complete(task_id)
    record = await client.record_info(task_id)
    assert record.is_failed and record.success_flag is SuccessFlag.GENERATE_FAILED
    assert record.error_code == 400 and record.error_message
    assert record.result_image_url is None


async def test_api_key_never_leaks(
    sim: KieSimulator,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    make_client: MakeClient,
    api_key: str,
) -> None:
    """The API key is in no error str/repr, no client repr, no DEBUG log of failing calls."""
    secret = "sk-LEAKCHECK-0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    client = make_client(sim, session, api_key=secret, max_retries=1)
    errors: list[BaseException] = []
    for call in (client.credits(), client.generate(GenerateRequest(prompt="x"))):
        with pytest.raises(KieAuthError) as info:
            await call
        errors.append(info.value)
    sim.fail_next("record-info", reset=True, count=10)
    with pytest.raises(KieTransportError) as transport:
        await make_client(sim, session, api_key=api_key, max_retries=1).record_info("x")
    errors.append(transport.value)
    dead = KieClient(
        session, secret, base_url="http://127.0.0.1:1", upload_base_url="x", backoff_base=0.01
    )
    with pytest.raises(KieTransportError) as refused:
        await dead.credits()
    errors.append(refused.value)
    assert any(r.name.startswith("bot.kie") for r in caplog.records)
    for exc in errors:
        for text in (str(exc), repr(exc), exc.user_message if isinstance(exc, KieError) else ""):
            assert secret not in text and api_key not in text
        assert exc.__cause__ is None
    assert secret not in repr(client) and secret not in repr(dead)
    assert secret not in caplog.text and api_key not in caplog.text
    assert "Bearer" not in caplog.text
