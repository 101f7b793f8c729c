"""The small interface the cogs call: admit, validate, create tasks, look them up.

Cogs never touch the ledger, KIE or the network directly; they hand over what Discord gave
them (an `Origin` and the options) and show what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable

import aiohttp

from bot import custom_ids, images, net
from bot.admission import Admission, Admitting, Origin, Refused, RequestParams
from bot.compare import Comparer
from bot.config import Settings
from bot.executors import UPLOAD_REUSE_WINDOW
from bot.flux import DEFAULT_MODEL, MODELS
from bot.i18n import Text
from bot.ledger import (
    ParentAction,
    StoredInput,
    Task,
    TaskAndInputStore,
    TaskKind,
    TaskParams,
    TaskState,
)
from bot.logs import task_context
from bot.metrics import Metrics
from bot.moderation import Moderation
from bot.runner import Runner
from bot.service_tasks import RESULT_REUSE_WINDOW, ExistingTasks
from bot.shared_work import leased
from bot.validation import (
    ASPECT_RATIOS,
    OUTPUT_FORMATS,
    InputRejected,
    check_choice,
    check_tolerance,
    clean_prompt,
)

log = logging.getLogger(__name__)

__all__ = [
    "RESULT_REUSE_WINDOW",
    "UPLOAD_REUSE_WINDOW",
    "Admission",
    "KontextService",
    "Origin",
    "Refused",
]


class KontextService(Admitting, ExistingTasks):
    def __init__(
        self,
        *,
        settings: Settings,
        ledger: TaskAndInputStore,
        runner: Runner,
        downloads: aiohttp.ClientSession,
        metrics: Metrics,
        moderation: Moderation,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._runner = runner
        self._downloads = downloads
        self._metrics = metrics
        self.moderation = moderation
        self._clock = clock
        self.compare = _comparer(settings, ledger, downloads, clock)
        self.accepting = True
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # ---- shutdown ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def taking(self) -> AsyncIterator[None]:
        """Wrap the taking of one request (admit → ledger write) so a shutdown can wait for it."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def idle(self) -> None:
        """Return once no request is being taken."""
        await self._idle.wait()

    # ---- validation (nothing spent) ------------------------------------------------------

    def build_params(
        self,
        *,
        prompt: str | None,
        edit: bool,
        aspect_ratio: str | None = None,
        model: str | None = None,
        output_format: str | None = None,
        enhance_prompt: bool | None = None,
        safety_tolerance: int | None = None,
    ) -> TaskParams:
        """Validate the options of /imagine, /edit or a modal; raise InputRejected."""
        text = clean_prompt(prompt)
        check_choice("aspect_ratio", aspect_ratio, ASPECT_RATIOS)
        check_choice("model", model, MODELS)
        check_choice("output_format", output_format, OUTPUT_FORMATS)
        tolerance = 2 if safety_tolerance is None else safety_tolerance
        check_tolerance(tolerance, edit=edit)
        unset = {"model": model, "aspect_ratio": aspect_ratio, "safety_tolerance": safety_tolerance}
        return RequestParams(
            prompt=text,
            model=model or DEFAULT_MODEL,
            aspect_ratio=aspect_ratio,
            output_format=output_format or "jpeg",
            enhance_prompt=bool(enhance_prompt),
            safety_tolerance=tolerance,
            defaulted=frozenset(name for name, value in unset.items() if value is None),
        )

    async def fetch_input(self, url: str) -> images.PreparedImage:
        """Download an input image from Discord now (its signed URLs expire) and validate it."""
        try:
            fetched = await net.safe_fetch(
                self._downloads,
                url,
                max_bytes=images.MAX_INPUT_BYTES,
                allow_private=self._settings.allow_private_urls,
            )
        except net.DownloadTooLarge:
            raise InputRejected(
                Text(
                    "The image is larger than {megabytes} MB.",
                    megabytes=images.MAX_INPUT_BYTES // (1024 * 1024),
                )
            ) from None
        except net.DownloadError as exc:
            log.info("input download failed: %s", exc)
            raise InputRejected(
                Text("The image could not be downloaded from Discord. Please attach it again.")
            ) from None
        try:
            return await images.in_worker(images.prepare_input, fetched.data)
        except images.ImageRejected as exc:
            raise InputRejected(exc.user_message) from None

    # ---- tasks ---------------------------------------------------------------------------

    async def create_task(
        self,
        admission: Admission,
        *,
        kind: TaskKind,
        params: TaskParams,
        reply_message_id: int | None,
        image: images.PreparedImage | None = None,
        input_image_url: str | None = None,
        parent_task_id: str | None = None,
        parent_action: ParentAction | None = None,
        count: int = 1,
        ref_name: str | None = None,
    ) -> list[Task]:
        """Charge the day's credits, write the task (QUEUED), hand it to the scheduler.

        `count` > 1 makes a set: one task per image, charged together (each holds its own
        cost, refunded on its own), sharing the reply and the input image (`ref_name`'s alone).
        Raise Refused when the daily credits ran out since `screen`."""
        origin, server = admission.origin, admission.server
        with self._moderated():
            cost = await self.moderation.charge(
                server,
                guild_id=origin.guild_id,
                user_id=origin.user_id,
                model=params.model,
                count=count,
            )
        first = _new_task(
            admission,
            now=self._clock(),
            callbacks_enabled=self._settings.callbacks_enabled,
            kind=kind,
            params=params,
            cost=cost,
            reply_message_id=reply_message_id,
            input_image_url=input_image_url,
            parent_task_id=parent_task_id,
            parent_action=parent_action,
        ).with_changes(ref_name=ref_name)
        tasks = [first] if count == 1 else _as_set(first, count, self._settings.callbacks_enabled)
        tasks = [leased(task, self._settings) for task in tasks]
        await self._ledger.insert(*tasks, lease_seconds=self._settings.task_lease_seconds)
        self.moderation.memory.add_open_tasks(origin.user_id, len(tasks))
        self.moderation.memory.note_submission(origin.user_id, first.created_at)
        if image is not None:
            await self._ledger.put_input(
                StoredInput(
                    task_id=first.input_key,
                    data=image.data,
                    filename=f"input.{image.extension}",
                    content_type=image.content_type,
                )
            )
        for task in tasks:
            self._enqueue(task)
        return tasks

    def _enqueue(self, task: Task) -> None:
        with task_context(task.id, task.guild_id, task.requester_id):
            log.info(
                "task %s queued: %s by user %s in guild %s%s",
                task.id,
                task.kind.value,
                task.requester_id,
                task.guild_id,
                f" (image {task.set_index} of {task.set_size})" if task.in_set else "",
            )
            self._runner.enqueue(task)


def _comparer(
    settings: Settings,
    inputs: TaskAndInputStore,
    downloads: aiohttp.ClientSession,
    clock: Callable[[], float],
) -> Comparer:
    """Compare's sources: the stored input, else KIE's URLs while KIE still serves them."""
    return Comparer(
        inputs=inputs,
        downloads=downloads,
        allow_private_urls=settings.allow_private_urls,
        upload_window=UPLOAD_REUSE_WINDOW,
        result_window=RESULT_REUSE_WINDOW,
        clock=clock,
    )


def _callback_secret(callbacks_enabled: bool) -> str | None:
    """The secret in a task's callback URL (each image of a set has its own)."""
    return secrets.token_urlsafe(24) if callbacks_enabled else None


def _new_task(
    admission: Admission,
    *,
    now: float,
    callbacks_enabled: bool,
    kind: TaskKind,
    params: TaskParams,
    cost: float,
    reply_message_id: int | None,
    input_image_url: str | None,
    parent_task_id: str | None,
    parent_action: ParentAction | None,
) -> Task:
    """A QUEUED task for the admitted request, not written yet."""
    origin = admission.origin
    return Task(
        id=custom_ids.new_task_id(),
        kind=kind,
        params=params,
        requester_id=origin.user_id,
        guild_id=origin.guild_id,
        channel_id=origin.channel_id,
        application_id=origin.application_id,
        interaction_id=origin.interaction_id,
        interaction_token=origin.interaction_token,
        created_at=now,
        updated_at=now,
        state=TaskState.QUEUED,
        reply_message_id=reply_message_id,
        input_image_url=input_image_url,
        parent_task_id=parent_task_id,
        parent_action=parent_action,
        callback_secret=_callback_secret(callbacks_enabled),
        cost=cost,
        upload_limit=origin.upload_limit,
        spoiler=admission.server.spoiler,
        private=admission.private,
        locale=origin.locale,
    )


def _as_set(first: Task, count: int, callbacks_enabled: bool) -> list[Task]:
    """The `count` tasks of a set: `first` and its siblings, each its own KIE task."""
    tasks = [first.with_changes(set_id=first.id, set_index=1, set_size=count)]
    for index in range(2, count + 1):
        tasks.append(
            first.with_changes(
                id=custom_ids.new_task_id(),
                set_id=first.id,
                set_index=index,
                set_size=count,
                callback_secret=_callback_secret(callbacks_enabled),
            )
        )
    return tasks
