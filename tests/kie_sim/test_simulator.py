"""The simulator's own rules: auth, validation, limits, lifecycle, expiry, callbacks, files."""

# ruff: noqa: ASYNC110  (polling the simulator's public state with short sleeps is deliberate)

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from PIL import Image

from bot.kie_sim import KieSimulator, SimTask

GEN = "/api/v1/flux/kontext/generate"
REC = "/api/v1/flux/kontext/record-info"


def png_bytes(size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, format="PNG")
    return out.getvalue()


async def finished(sim: KieSimulator, task_id: str) -> SimTask:
    async with asyncio.timeout(5):
        while sim.tasks[task_id].finished is None:
            await asyncio.sleep(0.01)
    return sim.tasks[task_id]


async def loop_passed(monotonic_deadline: float) -> None:
    """Return once the event loop has run every timer due by ``monotonic_deadline``.

    asyncio runs timer callbacks in deadline order, and this one is due later than the
    deadline, so a timer the simulator set for it would have fired first (not a timing guess).
    """
    loop = asyncio.get_running_loop()
    passed = asyncio.Event()
    loop.call_at(loop.time() + max(0.0, monotonic_deadline - time.monotonic()) + 0.1, passed.set)
    await passed.wait()


class Receiver:
    """A callback endpoint that fails the first `fail_first` deliveries with HTTP 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.got: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((await request.json(), dict(request.headers)))
        if len(self.got) <= self.fail_first:
            return web.Response(status=500)
        return web.Response(text="ok")


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/cb", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
    try:
        yield rec
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- auth & validation


async def test_auth_body_401_on_http_200(api: Any, sim: KieSimulator) -> None:
    """A missing or wrong key gives HTTP 200 with body code 401 on API endpoints, no task."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        status, body = await api.call("POST", GEN, json={"prompt": "x"}, headers=headers)
        assert status == 200
        assert body == {"code": 401, "msg": "You do not have access permissions", "data": None}
    assert sim.tasks == {}


async def test_auth_mirrored_status(api: Any, sim: KieSimulator) -> None:
    """With mirror_http_status the 401 is also the HTTP status."""
    sim.config.mirror_http_status = True
    status, body = await api.call("GET", "/api/v1/chat/credit", headers={})
    assert (status, body["code"]) == (401, 401)


async def test_any_key_accepted_when_unset(api: Any, sim: KieSimulator) -> None:
    """With api_key None any non-empty Bearer key works."""
    sim.config.api_key = None
    _, body = await api.call(
        "GET", "/api/v1/chat/credit", headers={"Authorization": "Bearer anything"}
    )
    assert body == {"code": 200, "msg": "success", "data": 1000}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, 422),
        ({"prompt": ""}, 422),
        ({"prompt": "   "}, 422),
        ({"prompt": 5}, 422),
        ({"prompt": "x", "model": "flux-dev"}, 422),
        ({"prompt": "x", "aspectRatio": "16:21"}, 422),
        ({"prompt": "x", "outputFormat": "webp"}, 422),
        ({"prompt": "x", "safetyTolerance": 7}, 500),
        ({"prompt": "x", "safetyTolerance": -1}, 500),
        ({"prompt": "x", "safetyTolerance": "2"}, 500),
        ({"prompt": "x", "safetyTolerance": 2.5}, 500),
        ({"prompt": "x", "inputImage": "http://h/a.png", "safetyTolerance": 3}, 500),
    ],
)
async def test_generate_validation(api: Any, sim: KieSimulator, body: Any, code: int) -> None:
    """Bad generate bodies get 422 (or 500 for safetyTolerance) on HTTP 200 and create nothing."""
    status, answer = await api.generate(**body)
    assert status == 200 and answer["code"] == code and answer["data"] is None
    if code == 500:
        assert answer["msg"] == (
            "The security tolerance level is out of range and should be 0-2 or 0-6"
        )
    assert sim.tasks == {}


async def test_valid_edge_values_accepted(api: Any, sim: KieSimulator) -> None:
    """safetyTolerance 6 (generate) and 2 (edit), every aspect ratio, both models are accepted."""
    await api.create(prompt="x", safetyTolerance=6, model="flux-kontext-max", aspectRatio="21:9")
    await api.create(prompt="x", safetyTolerance=2, inputImage="http://127.0.0.1:9/a.png")
    for ratio in ("16:9", "4:3", "1:1", "3:4", "9:16"):
        await api.create(prompt="x", aspectRatio=ratio, outputFormat="png")
    assert len(sim.tasks) == 7
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in sim.tasks)


async def test_wrong_methods_and_paths(api: Any) -> None:
    """Wrong methods get 405 and unknown paths 404, as KIE would."""
    status, body = await api.call("GET", GEN)
    assert status == 405 and body["code"] == 405
    status, body = await api.call("POST", REC)
    assert status == 405
    status, body = await api.call("GET", "/api/file-base64-upload")
    assert status == 405 and body["success"] is False
    status, body = await api.call("GET", "/api/v1/nope")
    assert status == 404 and body["code"] == 404


# --------------------------------------------------------------------------- limits & credits


async def test_rate_limit_window(api: Any, sim: KieSimulator) -> None:
    """The (limit+1)th create in the window is HTTP 429 with no task; the window then slides."""
    sim.config.rate_limit, sim.config.rate_window = 3, 10.0
    for _ in range(3):
        await api.create(prompt="x")
    status, body = await api.generate(prompt="x")
    assert status == 429
    assert body == {"code": 429, "msg": "Rate limit exceeded", "data": None}
    assert len(sim.tasks) == 3
    sim.advance(9.0)  # the simulator's clock, not real time: the window has not slid yet
    assert (await api.generate(prompt="x"))[0] == 429
    sim.advance(1.0)
    await api.create(prompt="x")
    assert len(sim.tasks) == 4


async def test_credits_charged_per_model_and_402(api: Any, sim: KieSimulator) -> None:
    """Pro and max cost their configured credits; a too-low balance gives 402 and no task."""
    sim.set_credits(16)
    await api.create(prompt="x", model="flux-kontext-max")
    await api.create(prompt="x")
    _, body = await api.call("GET", "/api/v1/chat/credit")
    assert body["data"] == 1
    status, body = await api.generate(prompt="x")
    assert status == 200 and body["code"] == 402
    assert len(sim.tasks) == 2


# --------------------------------------------------------------------------- lifecycle


async def test_lifecycle_and_record_shape(api: Any, sim: KieSimulator) -> None:
    """A task reports flag 0 with null response, then flag 1 with URLs, in the documented shape."""
    task_id = await api.create(prompt="a cat", aspectRatio="1:1")
    _, body = await api.record(task_id)
    data = body["data"]
    assert data["successFlag"] == 0 and data["response"] is None and data["completeTime"] is None
    assert json.loads(data["paramJson"]) == {"prompt": "a cat", "aspectRatio": "1:1"}
    assert data["createTime"].endswith("Z")
    task = await sim.finished.get()
    assert task.task_id == task_id and task.flag == 1
    _, body = await api.record(task_id)
    data = body["data"]
    assert data["successFlag"] == 1 and data["errorCode"] is None
    assert set(data["response"]) == {"originImageUrl", "resultImageUrl"}
    assert data["response"]["resultImageUrl"].startswith(sim.base_url)
    assert set(data) == {
        "taskId",
        "paramJson",
        "completeTime",
        "response",
        "successFlag",
        "errorCode",
        "errorMessage",
        "createTime",
    }


async def test_finish_fires_on_time_with_hook(api: Any, sim: KieSimulator) -> None:
    """Tasks finish on a timer after `delay` and call on_task_finished at that moment."""
    seen: list[tuple[str, int, float]] = []
    sim.on_task_finished = lambda t: seen.append((t.task_id, t.flag, time.monotonic()))
    sim.config.delay = 0.2
    task_id = await api.create(prompt="x")
    task = await asyncio.wait_for(sim.finished.get(), 10)
    assert task.task_id == task_id
    ((hooked_id, flag, hooked_at),) = seen
    assert (hooked_id, flag) == (task_id, 1)  # called once the task's outcome was set
    # Never early (a lower bound holds under any load); how late depends on the machine.
    assert task.finished is not None and task.finished - task.created >= 0.2 - 1e-3
    assert hooked_at >= task.finished


async def test_delay_marker_and_complete(api: Any, sim: KieSimulator) -> None:
    """[sim:delay=N] sets one task's delay; complete() finishes a task at once."""
    task_id = await api.create(prompt="slow [sim:delay=30]")
    assert sim.tasks[task_id].delay == 30
    sim.complete(task_id)
    _, body = await api.record(task_id)
    assert body["data"]["successFlag"] == 1


@pytest.mark.parametrize(
    ("how", "flag", "code"),
    [
        ("content_policy", 3, 400),
        ("generation_failed", 3, 501),
        ("internal_error", 3, 500),
        ("create_failed", 2, 500),
        ("[sim:policy]", 3, 400),
        ("[sim:fail]", 3, 501),
        ("[sim:internal]", 3, 500),
        ("[sim:createfail]", 2, 500),
    ],
)
async def test_scripted_outcomes(
    api: Any, sim: KieSimulator, how: str, flag: int, code: int
) -> None:
    """Scripted outcomes and prompt markers end tasks with the documented flag and errorCode."""
    if how.startswith("["):
        task_id = await api.create(prompt=f"p {how}")
    else:
        sim.script(how)
        task_id = await api.create(prompt="p")
    await finished(sim, task_id)
    _, body = await api.record(task_id)
    data = body["data"]
    assert (data["successFlag"], data["errorCode"]) == (flag, code)
    assert data["errorMessage"]
    assert data["response"] == {"originImageUrl": None, "resultImageUrl": None}
    later = await api.create(prompt="plain")
    await finished(sim, later)
    assert sim.tasks[later].flag == 1


@pytest.mark.parametrize("fmt", ["plain", "epoch_ms"])
async def test_timestamp_formats(api: Any, sim: KieSimulator, fmt: str) -> None:
    """createTime switches to 'YYYY-MM-DD HH:MM:SS' or epoch milliseconds."""
    sim.config.timestamp_format = fmt
    task_id = await api.create(prompt="x")
    _, body = await api.record(task_id)
    value = body["data"]["createTime"]
    if fmt == "plain":
        assert isinstance(value, str) and len(value) == 19 and value[10] == " "
    else:
        assert isinstance(value, int) and abs(value / 1000 - time.time()) < 5


async def test_null_strings_and_unknown_record_forms(api: Any, sim: KieSimulator) -> None:
    """null_strings renders "null"; unknown ids give 422 or the data-null form."""
    sim.config.null_strings = True
    task_id = await api.create(prompt="x")
    _, body = await api.record(task_id)
    assert body["data"]["response"] == "null" and body["data"]["completeTime"] == "null"
    _, body = await api.record("f" * 32)
    assert body == {"code": 422, "msg": "The record does not exist", "data": None}
    sim.config.unknown_record = "null"
    _, body = await api.record("f" * 32)
    assert body == {"code": 200, "msg": "success", "data": None}


async def test_task_id_at_root(api: Any, sim: KieSimulator) -> None:
    """task_id_at_root moves taskId out of data."""
    sim.config.task_id_at_root = True
    _, body = await api.generate(prompt="x")
    assert body["data"] is None and body["taskId"] in sim.tasks


# --------------------------------------------------------------------------- images & expiry


@pytest.mark.parametrize(
    ("ratio", "fmt", "size", "pil"),
    [
        ("16:9", "jpeg", (256, 144), "JPEG"),
        ("9:16", "png", (144, 256), "PNG"),
        ("1:1", "png", (256, 256), "PNG"),
        ("21:9", "jpeg", (256, 110), "JPEG"),
        (None, None, (256, 144), "JPEG"),
    ],
)
async def test_result_images_real(
    api: Any, sim: KieSimulator, ratio: str | None, fmt: str | None, size: Any, pil: str
) -> None:
    """Result images decode with Pillow in the requested format and aspect ratio."""
    body: dict[str, Any] = {"prompt": "a lighthouse at dusk"}
    if ratio:
        body["aspectRatio"] = ratio
    if fmt:
        body["outputFormat"] = fmt
    task_id = await api.create(**body)
    task = await finished(sim, task_id)
    assert task.result_url is not None
    status, data, ctype = await api.get_file(task.result_url)
    assert status == 200 and ctype == f"image/{pil.lower()}"
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == pil and im.size == size


async def test_expiry_with_advance(api: Any, sim: KieSimulator) -> None:
    """originImageUrl expires after 10 min, resultImageUrl after 14 days (simulated clock)."""
    task_id = await api.create(prompt="x")
    task = await finished(sim, task_id)
    assert task.origin_url and task.result_url
    assert (await api.get_file(task.origin_url))[0] == 200
    sim.advance(601)
    assert (await api.get_file(task.origin_url))[0] == 404
    assert (await api.get_file(task.result_url))[0] == 200
    sim.advance(14 * 86400)
    assert (await api.get_file(task.result_url))[0] == 404


async def test_origin_url_null_and_noise(api: Any, sim: KieSimulator) -> None:
    """origin_url_null gives a null originImageUrl; result_noise makes much bigger files."""
    sim.config.origin_url_null = True
    quiet_id = await api.create(prompt="x", outputFormat="png")
    sim.config.result_noise = True  # applies to tasks created from now on
    noisy_id = await api.create(prompt="x", outputFormat="png")
    quiet, noisy = await finished(sim, quiet_id), await finished(sim, noisy_id)
    _, body = await api.record(quiet_id)
    assert body["data"]["response"]["originImageUrl"] is None
    assert quiet.result_url and noisy.result_url
    small = (await api.get_file(quiet.result_url))[1]
    big = (await api.get_file(noisy.result_url))[1]
    assert len(big) > 5 * len(small)


# --------------------------------------------------------------------------- input images


async def test_input_image_fetched_and_ratio_kept(api: Any, sim: KieSimulator) -> None:
    """An edit fetches inputImage; without aspectRatio the result keeps the input's ratio."""
    status, up = await api.call(
        "POST",
        "/api/file-base64-upload",
        json={"base64Data": base64.b64encode(png_bytes((300, 200))).decode(), "uploadPath": "t"},
    )
    assert status == 200
    task_id = await api.create(prompt="edit", inputImage=up["data"]["downloadUrl"])
    task = await finished(sim, task_id)
    assert task.flag == 1 and task.input_size == (300, 200)
    assert task.result_url is not None
    _, data, _ = await api.get_file(task.result_url)
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (256, 171)


async def test_input_image_bytes_are_kept_exactly_as_fetched(api: Any, sim: KieSimulator) -> None:
    """The simulator records the input it received, so tests can check what KIE was sent."""
    sent = png_bytes((40, 30))
    status, up = await api.call(
        "POST",
        "/api/file-base64-upload",
        json={"base64Data": base64.b64encode(sent).decode(), "uploadPath": "t"},
    )
    assert status == 200
    task_id = await api.create(prompt="edit", inputImage=up["data"]["downloadUrl"])
    assert (await finished(sim, task_id)).input_data == sent


@pytest.mark.parametrize("kind", ["missing", "not_image", "refused"])
async def test_input_image_failure_fails_task(api: Any, sim: KieSimulator, kind: str) -> None:
    """An unreachable or non-image inputImage fails the task (flag 3, errorCode 500)."""
    if kind == "missing":
        url = sim.base_url + "/files/upload/nope/x.png"
    elif kind == "refused":
        url = "http://127.0.0.1:9/x.png"
    else:
        _, up = await api.call(
            "POST",
            "/api/file-base64-upload",
            json={"base64Data": base64.b64encode(b"hello").decode(), "uploadPath": "t"},
        )
        url = up["data"]["downloadUrl"]
    task_id = await api.create(prompt="edit", inputImage=url)
    task = await finished(sim, task_id)
    assert task.flag == 3 and task.error_code == 500
    assert task.error_message and "input image" in task.error_message


# --------------------------------------------------------------------------- callbacks


async def test_callback_success_payload(api: Any, sim: KieSimulator, receiver: Receiver) -> None:
    """On success the callback carries code 200, the documented msg and data.info URLs."""
    task_id = await api.create(prompt="x", callBackUrl=receiver.url)
    task = await finished(sim, task_id)
    async with asyncio.timeout(3):
        while not receiver.got:
            await asyncio.sleep(0.01)
    body, headers = receiver.got[0]
    assert body == {
        "code": 200,
        "msg": "BFL image generated successfully.",
        "data": {
            "taskId": task_id,
            "info": {"originImageUrl": task.origin_url, "resultImageUrl": task.result_url},
        },
    }
    assert "X-Webhook-Signature" not in headers
    await sim.drain()  # a second delivery would have been sent before this returns
    assert len(receiver.got) == 1


async def test_callback_failure_payload(api: Any, sim: KieSimulator, receiver: Receiver) -> None:
    """A policy failure calls back code 400 with the policy msg and empty URLs."""
    task_id = await api.create(prompt="x [sim:policy]", callBackUrl=receiver.url)
    await finished(sim, task_id)
    async with asyncio.timeout(3):
        while not receiver.got:
            await asyncio.sleep(0.01)
    body = receiver.got[0][0]
    assert body["code"] == 400
    assert body["msg"] == "Your prompt was flagged by Website as violating content policies."
    assert body["data"]["info"] == {"originImageUrl": "", "resultImageUrl": ""}


async def test_callback_retries_then_gives_up(
    api: Any, sim: KieSimulator, receiver: Receiver
) -> None:
    """Failed deliveries are retried at the configured delays: 1 try + 3 retries, then stop."""
    receiver.fail_first = 100
    task_id = await api.create(prompt="x", callBackUrl=receiver.url)
    await finished(sim, task_id)
    await sim.drain()
    assert len(receiver.got) == 4
    assert [c.status for c in sim.callbacks] == [500, 500, 500, 500]
    gaps = [b.at - a.at for a, b in zip(sim.callbacks, sim.callbacks[1:], strict=False)]
    assert all(g >= 0.015 for g in gaps)


async def test_callback_retry_succeeds(api: Any, sim: KieSimulator, receiver: Receiver) -> None:
    """After two failures the third delivery succeeds and no more are sent."""
    receiver.fail_first = 2
    task_id = await api.create(prompt="x", callBackUrl=receiver.url)
    await finished(sim, task_id)
    await sim.drain()
    assert [c.status for c in sim.callbacks] == [500, 500, 200]


async def test_callback_hmac_and_duplicates(
    api: Any, sim: KieSimulator, receiver: Receiver
) -> None:
    """With hmac_key, headers carry base64 HMAC-SHA256(taskId.ts); duplicates are delivered."""
    sim.config.hmac_key = "whsec-123"
    sim.config.duplicate_callbacks = True
    task_id = await api.create(prompt="x", callBackUrl=receiver.url)
    await finished(sim, task_id)
    await sim.drain()
    assert len(receiver.got) == 2
    assert receiver.got[0][0] == receiver.got[1][0]
    headers = receiver.got[0][1]
    ts = headers["X-Webhook-Timestamp"]
    assert abs(int(ts) - time.time()) < 5
    expected = base64.b64encode(
        hmac.new(b"whsec-123", f"{task_id}.{ts}".encode(), hashlib.sha256).digest()
    ).decode()
    assert hmac.compare_digest(headers["X-Webhook-Signature"], expected)


async def test_callback_timeout_counts_as_failure(api: Any, sim: KieSimulator) -> None:
    """A receiver slower than callback_timeout is a failed delivery (status None) and retried."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response()

    app = web.Application()
    app.router.add_post("/cb", slow)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sim.config.callback_timeout = 0.1
    sim.config.callback_retry_delays = (0.01,)
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/cb"
        task_id = await api.create(prompt="x", callBackUrl=url)
        await finished(sim, task_id)
        await sim.drain()
        assert [c.status for c in sim.callbacks] == [None, None]
        assert all(c.at - c.sent >= 0.1 - 1e-3 for c in sim.callbacks)
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- uploads & links


async def test_upload_stream_envelope_and_ttl(api: Any, sim: KieSimulator) -> None:
    """Multipart upload answers the documented envelope; the file is served until upload_ttl."""
    form = aiohttp.FormData()
    form.add_field("file", png_bytes(), filename="a.png", content_type="image/png")
    form.add_field("uploadPath", "images/user")
    status, body = await api.call(
        "POST", "/api/file-stream-upload", data=form, headers={"Authorization": "Bearer " + "x"}
    )
    assert status == 401 and body["success"] is False and body["code"] == 401
    form = aiohttp.FormData()
    form.add_field("file", png_bytes(), filename="a.png", content_type="image/png")
    form.add_field("uploadPath", "images/user")
    status, body = await api.call(
        "POST",
        "/api/file-stream-upload",
        data=form,
        headers={"Authorization": api.headers["Authorization"]},
    )
    assert status == 200 and body["success"] is True and body["code"] == 200
    data = body["data"]
    assert set(data) == {
        "fileName",
        "filePath",
        "downloadUrl",
        "fileSize",
        "mimeType",
        "uploadedAt",
    }
    assert data["filePath"] == "images/user/a.png" and data["mimeType"] == "image/png"
    assert (await api.get_file(data["downloadUrl"]))[1] == png_bytes()
    sim.advance(86401)
    assert (await api.get_file(data["downloadUrl"]))[0] == 404


async def test_upload_errors_use_http_status(api: Any) -> None:
    """Upload endpoints answer 400 for a missing uploadPath or bad base64, with success false."""
    status, body = await api.call(
        "POST", "/api/file-base64-upload", json={"base64Data": "aGVsbG8="}
    )
    assert status == 400 and body["msg"] == "Missing required parameter: uploadPath"
    status, body = await api.call(
        "POST", "/api/file-base64-upload", json={"base64Data": "@@@", "uploadPath": "x"}
    )
    assert status == 400 and body["msg"].startswith("Base64 decoding failed")
    status, body = await api.call(
        "POST", "/api/file-url-upload", json={"fileUrl": "http://127.0.0.1:9/x", "uploadPath": "x"}
    )
    assert status == 400 and body["success"] is False


async def test_download_url_rules(api: Any, sim: KieSimulator) -> None:
    """download-url accepts only simulator URLs (else 422) and its links expire after 20 min."""
    task_id = await api.create(prompt="x")
    task = await finished(sim, task_id)
    status, body = await api.call(
        "POST", "/api/v1/common/download-url", json={"url": "https://example.com/a.png"}
    )
    assert status == 200 and body["code"] == 422
    _, body = await api.call("POST", "/api/v1/common/download-url", json={"url": task.result_url})
    assert body["code"] == 200 and isinstance(body["data"], str)
    link = body["data"]
    assert (await api.get_file(link))[0] == 200
    sim.advance(1201)
    assert (await api.get_file(link))[0] == 404


# --------------------------------------------------------------------------- fault injection


async def test_fail_next_kinds(api: Any, sim: KieSimulator) -> None:
    """fail_next answers the given status/code, invalid JSON, a drop, or a delay, count times."""
    sim.fail_next("credit", code=455, count=2)
    assert (await api.call("GET", "/api/v1/chat/credit"))[1]["code"] == 455
    assert (await api.call("GET", "/api/v1/chat/credit"))[1]["code"] == 455
    assert (await api.call("GET", "/api/v1/chat/credit"))[1]["code"] == 200
    sim.fail_next("credit", status=500)
    assert (await api.call("GET", "/api/v1/chat/credit"))[0] == 500
    sim.fail_next("credit", malformed=True)
    assert (await api.call("GET", "/api/v1/chat/credit"))[1] is None
    sim.fail_next("download-url", reset=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.call("POST", "/api/v1/common/download-url", json={"url": "x"})
    assert sim.calls[-1].status == 0
    sim.fail_next("credit", hang=0.2)
    started = time.monotonic()
    _, body = await api.call("GET", "/api/v1/chat/credit")
    assert body["code"] == 200 and time.monotonic() - started >= 0.19
    assert sim.count("credit") == 6
    assert [c.code for c in sim.calls if c.endpoint == "credit"][:3] == [455, 455, 200]
    with pytest.raises(ValueError):
        sim.fail_next("nope")
    with pytest.raises(ValueError):
        sim.script("maybe")


async def test_lost_answers_after_the_create(api: Any, sim: KieSimulator, key: str) -> None:
    """after_handling creates and charges the task, then drops, garbles or withholds the answer."""
    sim.set_credits(100)
    sim.fail_next("generate", reset=True, after_handling=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.generate(prompt="x")
    sim.fail_next("generate", malformed=True, after_handling=True)
    assert await api.generate(prompt="x") == (200, None)
    sim.fail_next("generate", hang=30, after_handling=True)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await api.generate(prompt="x")
    assert len(sim.tasks) == 3
    assert sim.balances[key] == 100 - 3 * sim.config.cost_pro
    # Recorded when handled: the drop as status 0, the others with the real answer's code.
    assert [(c.status, c.code) for c in sim.calls] == [(0, 200), (200, 200), (200, 200)]
    with pytest.raises(ValueError):
        sim.fail_next("generate", code=500, after_handling=True)


async def test_duplicate_on_a_request_and_resend(
    api: Any, sim: KieSimulator, receiver: Receiver
) -> None:
    """duplicate_callback_on holds the duplicate until that endpoint is called; send_callback
    calls back once more."""
    sim.config.duplicate_callbacks = True
    sim.config.duplicate_callback_on = "credit"
    task_id = await api.create(prompt="x", callBackUrl=receiver.url)
    await finished(sim, task_id)
    async with asyncio.timeout(3):
        while not sim.callbacks:
            await asyncio.sleep(0.01)
    assert len(receiver.got) == 1  # the first one is answered; the duplicate waits
    await api.call("GET", "/api/v1/chat/credit")
    await sim.drain()
    assert len(receiver.got) == 2
    first, duplicate = sim.callbacks
    assert first.at <= duplicate.sent <= duplicate.at
    assert await sim.send_callback(task_id)
    assert [c.status for c in sim.callbacks] == [200, 200, 200]
    assert receiver.got[0][0] == receiver.got[2][0]


async def test_stop_cancels_pending_work(api: Any, sim: KieSimulator) -> None:
    """stop() cancels pending task timers: nothing finishes afterwards."""
    seen: list[SimTask] = []
    sim.on_task_finished = seen.append
    sim.config.delay = 0.1
    task_id = await api.create(prompt="x")
    await sim.stop()
    await loop_passed(sim.tasks[task_id].created + 0.1)
    assert seen == []
