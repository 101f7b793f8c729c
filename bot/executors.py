"""The effects that talk to KIE and Discord: each one does its I/O and answers with an event.

The runner hands the event to `bot.lifecycle.decide`; none of these decide anything themselves
(no retry, no failure): they only say what happened, in the lifecycle's vocabulary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot import images
from bot.config import Settings
from bot.kie import (
    GenerateRequest,
    KieAuthError,
    KieBadResponse,
    KieClient,
    KieConnectError,
    KieError,
    KieRateLimited,
    KieTransportError,
    KieValidationError,
    SuccessFlag,
    TaskRecord,
)
from bot.language import needs_translation
from bot.ledger import InputStore, RefStore, Task, TaskKind, TaskStore
from bot.lifecycle.events import (
    CreateAnswerLost,
    CreateRefused,
    Delivered,
    DeliveryRefused,
    Event,
    FetchFailed,
    InputMissing,
    Progress,
    RateLimited,
    RecordInfo,
    RecordMissing,
    RecordRefused,
    RecordUnavailable,
    Submitted,
)
from bot.metrics import Metrics
from bot.ports import NotPublished, Publisher, ResultImage
from bot.prefetch import Prefetches

log = logging.getLogger(__name__)

RESULT_MAX_BYTES = 50 * 1024 * 1024
# Results downloaded and not yet posted, at most: each holds its bytes (and discord.py's
# multipart copy) until Discord has them, so when many tasks finish together (1,000 resumed
# after a restart) memory stays bounded; 4 posts at once is more than the poll pace feeds.
MAX_DELIVERIES_AT_ONCE = 4
# A result prefetched on a callback and not asked for (record-info failed, or named another
# URL) is dropped after this long; record-info normally answers within milliseconds.
PREFETCH_KEPT = 30.0
POLL_CONCURRENCY = 16
UPLOAD_REUSE_WINDOW = 20 * 3600  # KIE keeps uploads at least 24 h


class Submitter:
    """Submit: upload an edit's input image, then create the KIE task."""

    def __init__(
        self,
        kie: KieClient,
        tasks: TaskStore,
        inputs: InputStore,
        settings: Settings,
        *,
        refs: RefStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kie = kie
        self._tasks = tasks
        self._inputs = inputs
        self._settings = settings
        self._refs = refs
        self._clock = clock

    async def submit(self, task: Task) -> Event:
        try:
            input_url = await self._input_url(task)
            kie_task_id = await self._kie.generate(self._request(task, input_url))
        except _InputMissing:
            return InputMissing()
        except KieError as exc:
            log.warning("%s for task %s failed: %s", exc.endpoint or "submission", task.id, exc)
            return submit_event(exc)
        return Submitted(kie_task_id)

    def _request(self, task: Task, input_url: str | None) -> GenerateRequest:
        return GenerateRequest(
            prompt=task.params.prompt,
            enable_translation=needs_translation(task.params.prompt),
            input_image=input_url,
            aspect_ratio=task.params.aspect_ratio,
            output_format=task.params.output_format,
            prompt_upsampling=task.params.enhance_prompt,
            model=task.params.model,
            callback_url=self._callback_url(task),
            safety_tolerance=task.params.safety_tolerance,
        )

    async def _input_url(self, task: Task) -> str | None:
        if task.kind != TaskKind.EDIT:
            return None
        if task.input_image_url:
            return task.input_image_url
        stored = await self._inputs.get_input(task.input_key)
        if stored is None and task.ref_name is not None:
            return await self._reference_url(task)
        if stored is None:
            raise _InputMissing
        ext = stored.filename.rsplit(".", 1)[-1] if "." in stored.filename else "png"
        uploaded = await self._kie.upload_file(
            stored.data, f"{task.id}.{ext}", content_type=stored.content_type
        )
        await self._tasks.update(task.id, input_image_url=uploaded.download_url)
        return uploaded.download_url

    async def _reference_url(self, task: Task) -> str:
        """A saved reference alone is the input (/imagine ref:): KIE's upload of it while KIE
        keeps it, else it is uploaded again and that upload remembered for the next task."""
        if self._refs is None or task.guild_id is None or task.ref_name is None:
            raise _InputMissing
        ref = await self._refs.get_ref(task.guild_id, task.ref_name)
        if ref is None:
            raise _InputMissing
        now = self._clock()
        if (
            ref.kie_url
            and ref.kie_url_at is not None
            and now - ref.kie_url_at < UPLOAD_REUSE_WINDOW
        ):
            url = ref.kie_url
        else:
            ext = ref.filename.rsplit(".", 1)[-1] if "." in ref.filename else "png"
            uploaded = await self._kie.upload_file(
                ref.data, f"{task.id}.{ext}", content_type=ref.content_type
            )
            url = uploaded.download_url
            await self._refs.set_ref_upload(task.guild_id, ref.name, url, now)
        await self._tasks.update(task.id, input_image_url=url)
        return url

    def _callback_url(self, task: Task) -> str | None:
        base = self._settings.public_base_url
        if base is None or not task.callback_secret:
            return None
        return f"{base}/kie/callback/{task.callback_secret}"


class RecordReader:
    """Fetch: ask record-info about a generating task, a bounded number at a time."""

    def __init__(self, kie: KieClient) -> None:
        self._kie = kie
        self._slots = asyncio.Semaphore(POLL_CONCURRENCY)

    async def read(self, task: Task) -> Event:
        assert task.kie_task_id is not None
        async with self._slots:
            try:
                record = await self._kie.record_info(task.kie_task_id)
            except KieValidationError:
                return RecordMissing()
            except KieAuthError as exc:
                return RecordRefused(exc.code)
            except KieError as exc:
                log.warning("record-info for %s failed (%s)", task.id, exc)
                return RecordUnavailable()
        event = record_event(record)
        if event.progress == Progress.FAILED:
            log.info("KIE reports task %s failed: code %s", task.id, event.error_code)
        return event


class ResultDeliverer:
    """Publish the result: download it from KIE, check it is an image, hand it to the Publisher.

    A verified callback's result URL may be downloaded ahead (`prefetch`), while record-info
    confirms the result; the bytes are posted only when record-info's URL is the same.
    """

    def __init__(self, kie: KieClient, publisher: Publisher, metrics: Metrics) -> None:
        self._kie = kie
        self._publisher = publisher
        self._metrics = metrics
        self._slots = asyncio.Semaphore(MAX_DELIVERIES_AT_ONCE)
        self.prefetches = Prefetches(
            self._fetch_unconfirmed, limit=MAX_DELIVERIES_AT_ONCE, keep_for=PREFETCH_KEPT
        )

    def prefetch(self, task_id: str, url: str) -> None:
        """Start downloading a verified callback's result URL for `task_id` (see Prefetches)."""
        if self.prefetches.start(task_id, url):
            log.debug("prefetching task %s's result", task_id)

    async def deliver(self, task: Task) -> Event:
        assert task.result_url is not None
        detected = time.monotonic()
        async with self._slots:
            return await self._download_and_post(task, detected)

    async def _download_and_post(self, task: Task, detected: float) -> Event:
        assert task.result_url is not None
        data = await self.prefetches.take(task.id, task.result_url)
        try:
            if data is None:
                data = await self._kie.fetch_result(task.result_url, max_bytes=RESULT_MAX_BYTES)
        except (KieError, ValueError) as exc:
            # A KIE error that retrying cannot fix (the result expired, or is too large)
            # ends the task now instead of after every delivery attempt.
            log.warning("result download of %s failed: %s", task.id, exc)
            return FetchFailed(permanent=isinstance(exc, KieError) and not exc.retryable)
        # The magic bytes, not a full decode: decoding a 1 MB result took ~16 ms of the ~20 ms
        # between KIE's callback and the post, and the bytes go to Discord unchanged.
        fmt = images.sniff(data)
        if fmt is None:
            log.warning("result download of %s failed: not an image", task.id)
            return FetchFailed(permanent=False)
        self.prefetches.confirmed(task.result_url)
        extension = "png" if fmt == "png" else "jpg"
        outcome = await self._publisher.post_result(
            task, ResultImage(data, extension, spoiler=task.spoiler)
        )
        if isinstance(outcome, NotPublished):
            log.warning("delivery of %s failed: %s (%s)", task.id, outcome.refusal, outcome.detail)
            return DeliveryRefused(outcome.refusal)
        self._metrics.delivery_latency.observe(time.monotonic() - detected)
        return Delivered(outcome.message_id, outcome.channel_id)

    async def _fetch_unconfirmed(self, url: str) -> bytes:
        return await self._kie.fetch_result(url, max_bytes=RESULT_MAX_BYTES, fall_back=False)


class _InputMissing(Exception):
    pass


def submit_event(exc: KieError) -> Event:
    """What a failed upload or create means to the lifecycle."""
    if isinstance(exc, KieRateLimited):
        return RateLimited()
    if _may_have_created(exc):
        return CreateAnswerLost(maybe_created=True)
    if isinstance(exc, KieTransportError) and not isinstance(exc, KieConnectError):
        return CreateAnswerLost(maybe_created=False)  # an upload that got no answer
    return CreateRefused(exc.code, retryable=exc.retryable)


def _may_have_created(exc: KieError) -> bool:
    """A generate whose answer was lost or unreadable: KIE may have created the task."""
    if exc.endpoint != "generate":
        return False
    if isinstance(exc, KieBadResponse):
        return True
    return isinstance(exc, KieTransportError) and not isinstance(exc, KieConnectError)


def _took(record: TaskRecord) -> float | None:
    """How long KIE says it worked on the task (its own clock at both ends), if it says."""
    if record.create_time is None or record.complete_time is None:
        return None
    seconds = (record.complete_time - record.create_time).total_seconds()
    return seconds if seconds >= 0 else None


def record_event(record: TaskRecord) -> RecordInfo:
    if record.success_flag == SuccessFlag.GENERATING:
        return RecordInfo(Progress.PENDING)
    if record.success_flag == SuccessFlag.SUCCESS:
        url = record.result_image_url or record.origin_image_url
        return RecordInfo(Progress.SUCCESS, result_url=url, generation_seconds=_took(record))
    return RecordInfo(Progress.FAILED, error_code=record.error_code)
